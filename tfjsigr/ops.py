"""Tensor maths shared by the penalties, attacks and metrics, as pure TensorFlow functions.

Every function here works on tensors only (no Keras state), so the penalties can be checked
against closed forms and reused outside `RegularizedModel`. Shapes: `x` is a batch of inputs
(B, ...), `logits` is (B, C), labels are integer class ids (B,) or one-hot (B, C).
"""

import tensorflow as tf


def per_example_squared_norm(tensor):
    """Squared L2 norm of each example of a batch: sum over every axis but the first."""
    tensor = tf.cast(tensor, tf.float32)
    return tf.reduce_sum(tf.square(tf.reshape(tensor, [tf.shape(tensor)[0], -1])), axis=1)


def per_example_cross_entropy(labels, logits):
    """Softmax cross-entropy of each example, for integer or one-hot labels."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is not None and labels.shape.rank == logits.shape.rank:
        return tf.nn.softmax_cross_entropy_with_logits(tf.cast(labels, tf.float32), logits)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)


def integer_labels(labels, logits):
    """Class ids (B,) from integer or one-hot labels."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is not None and labels.shape.rank == logits.shape.rank:
        return tf.argmax(labels, axis=-1, output_type=tf.int32)
    return tf.cast(tf.reshape(labels, [-1]), tf.int32)


def certainty_insensitivity(logits):
    """-(1/C) sum_k log p_k per example: Ross & Doshi-Velez's label-free variant."""
    return -tf.reduce_mean(tf.nn.log_softmax(tf.cast(logits, tf.float32)), axis=-1)


def true_class_logit(labels, logits):
    """z_y per example."""
    logits = tf.cast(logits, tf.float32)
    return tf.gather(logits, integer_labels(labels, logits), axis=1, batch_dims=1)


def random_unit_vectors(batch_size, num_classes, dtype=tf.float32, seed=None):
    """One vector drawn uniformly on the unit sphere of R^C per example, shape (B, C)."""
    v = tf.random.normal([batch_size, num_classes], dtype=dtype, seed=seed)
    return v / tf.norm(v, axis=-1, keepdims=True)


def jacobian_frobenius_from_projections(projected_gradients, num_classes):
    """Estimate of ||J_b||_F^2 per example from random projections.

    Args:
        projected_gradients: list of n tensors (B, ...), each d(v_mu . z)/dx with v_mu uniform on
            the unit sphere, one v per example.
        num_classes: C, the number of logits.

    Returns:
        (B,) unbiased estimate (C / n) sum_mu ||v_mu^T J_b||^2.
    """
    squared = tf.add_n([per_example_squared_norm(g) for g in projected_gradients])
    return tf.cast(num_classes, tf.float32) * squared / len(projected_gradients)


def top_k_mask(saliency, fraction):
    """Mask that is 0 on the top `fraction` most salient features of each example, 1 elsewhere.

    Ties at the threshold are resolved by `tf.math.top_k`'s order, so exactly
    ceil(fraction * d) features per example are left free (mask 0).

    Args:
        saliency: (B, ...) non-negative saliency.
        fraction: share of features treated as salient, in [0, 1].

    Returns:
        float32 mask shaped like `saliency`.
    """
    shape = tf.shape(saliency)
    flat = tf.reshape(tf.cast(saliency, tf.float32), [shape[0], -1])
    features = tf.shape(flat)[1]
    # The tolerance keeps 0.2 * 10 from rounding up to 3 through float error.
    k = tf.cast(tf.math.ceil(fraction * tf.cast(features, tf.float32) - 1e-4), tf.int32)
    _, salient = tf.math.top_k(flat, k=k, sorted=False)
    batch_index = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(salient))
    indices = tf.stack([batch_index, salient], axis=-1)
    freed = tf.scatter_nd(indices, tf.ones_like(salient, tf.float32), tf.shape(flat))
    return tf.reshape(1.0 - tf.minimum(freed, 1.0), shape)


def smooth_saliency(saliency, kernel_size):
    """Box-filter smoothing of an NHWC saliency map (mean over each channel's neighbourhood)."""
    if kernel_size <= 1:
        return saliency
    return tf.nn.avg_pool2d(saliency, kernel_size, strides=1, padding="SAME")


def random_subset(batch_size, fraction, seed=None):
    """Indices of ceil(fraction * B) examples drawn without replacement, in random order."""
    count = tf.cast(tf.math.ceil(fraction * tf.cast(batch_size, tf.float32) - 1e-4), tf.int32)
    return tf.random.shuffle(tf.range(batch_size), seed=seed)[: tf.maximum(count, 1)]


def unit_directions(vectors):
    """v_b / ||v_b|| per example (0 where v_b = 0), with no gradient flowing through."""
    vectors = tf.stop_gradient(tf.cast(vectors, tf.float32))
    norms = tf.sqrt(per_example_squared_norm(vectors))
    shape = tf.concat([[-1], tf.ones([tf.rank(vectors) - 1], tf.int32)], axis=0)
    return vectors / tf.reshape(tf.maximum(norms, 1e-12), shape)


def tile_batch(tensor, repeats):
    """`repeats` copies of a batch, stacked along the first axis: (repeats * B, ...)."""
    tensor = tf.convert_to_tensor(tensor)
    return tf.tile(tensor, tf.concat([[repeats], tf.ones([tf.rank(tensor) - 1], tf.int32)], axis=0))


def gaussian_perturbations(x, directions, step, mask=None, seed=None):
    """Inputs x + s M u for `directions` draws u ~ N(0, I_d) per example, s = step / sqrt(d).

    Returns:
        (perturbed inputs (directions * B, ...), blocks of B in draw order; the step s).
    """
    x = tf.cast(x, tf.float32)
    tiled = tile_batch(x, directions)
    u = tf.random.normal(tf.shape(tiled), seed=seed)
    if mask is not None:
        u *= tile_batch(tf.cast(mask, tf.float32), directions)
    size = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), tf.float32)
    scaled = step / tf.sqrt(size)
    return tiled + scaled * u, scaled


def squared_difference_quotient(perturbed, clean, step):
    """Mean over directions of ||(f(x + s u) - f(x)) / s||^2 per example.

    Args:
        perturbed: f at the perturbed inputs, (n * B, ...) in n blocks of B (or (n * B,)).
        clean: f at the clean inputs, (B, ...) (or (B,)).
        step: the step s (a scalar).

    Returns:
        (B,) float32: ((f(x + s u) - f(x)) / s)^2 for scalar f, the squared L2 norm for vectors,
        averaged over the n directions.
    """
    perturbed, clean = tf.cast(perturbed, tf.float32), tf.cast(clean, tf.float32)
    directions = tf.shape(perturbed)[0] // tf.shape(clean)[0]
    quotient = (tf.reshape(perturbed, tf.concat([[directions], tf.shape(clean)], 0)) - clean) / step
    squared = tf.square(quotient)
    if clean.shape.rank > 1:
        squared = tf.reduce_sum(tf.reshape(squared, [directions, tf.shape(clean)[0], -1]), axis=-1)
    return tf.reduce_mean(squared, axis=0)


def batch_mean(values, sample_weight=None):
    """Mean over the batch, weighted the way Keras' `sum_over_batch_size` reduction weights."""
    values = tf.cast(values, tf.float32)
    if sample_weight is not None:
        values = values * tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
    return tf.reduce_mean(values)
