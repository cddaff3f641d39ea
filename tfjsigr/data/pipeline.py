"""tf.data input pipelines: seeded shuffle, optional augmentation, batch, prefetch."""

import tensorflow as tf


def make_dataset(images, labels, batch_size, shuffle=False, seed=0, augment=False, pad=4):
    """A batched `tf.data.Dataset` of (image, label) pairs.

    Args:
        images: float32 NHWC array in [0, 1].
        labels: int32 class ids.
        batch_size: global batch size (a distribution strategy splits it across replicas).
        shuffle: reshuffle every epoch, in an order fixed by `seed`.
        seed: seed of the shuffle and the augmentation.
        augment: random crop (after `pad` pixels of zero padding) and horizontal flip, the
            usual CIFAR augmentation; leave off for digits and clothing.
        pad: padding of the random crop.

    Returns:
        The dataset, prefetched.
    """
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if augment:
        shape = images.shape[1:]
        dataset = dataset.map(
            lambda image, label: (_crop_and_flip(image, shape, pad, seed), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _crop_and_flip(image, shape, pad, seed):
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    cropped = tf.image.random_crop(padded, shape, seed=seed)
    return tf.image.random_flip_left_right(cropped, seed=seed)
