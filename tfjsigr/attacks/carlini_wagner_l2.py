"""Carlini & Wagner L2 attack (2017), compiled (cleverhans' version fails on Keras 3 optimizers)."""

import tensorflow as tf

from tfjsigr import ops


def _margin(logits, labels, confidence):
    """max(z_y - max_{k != y} z_k + confidence, 0) per example."""
    one_hot = tf.one_hot(labels, tf.shape(logits)[1])
    real = tf.reduce_sum(one_hot * logits, 1)
    other = tf.reduce_max(logits - one_hot * 1e4, 1)
    return tf.maximum(0.0, real - other + confidence)


def _to_box(w, clip_min, clip_max):
    return (tf.tanh(w) + 1.0) / 2.0 * (clip_max - clip_min) + clip_min


def carlini_wagner_l2(
    model_fn,
    x,
    y,
    clip_min=0.0,
    clip_max=1.0,
    binary_search_steps=5,
    max_iterations=100,
    learning_rate=0.05,
    initial_const=1.0,
    confidence=0.0,
):
    """Untargeted minimum-L2 attack: Adam on tanh-space inputs, binary search on the constant.

    Minimizes ||x' - x||_2^2 + c * max(z_y - max_{k!=y} z_k + confidence, 0) per example, halving
    or growing c by binary search; keeps the smallest misclassified x' found (x itself when none).

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...) within [clip_min, clip_max], float32.
        y: integer or one-hot labels.
        clip_min: lower bound of valid inputs.
        clip_max: upper bound of valid inputs.
        binary_search_steps: number of values of c tried per example.
        max_iterations: Adam steps per value of c.
        learning_rate: Adam step size (tanh space).
        initial_const: first value of c.
        confidence: margin required of the adversarial class.

    Returns:
        Adversarial inputs within [clip_min, clip_max].
    """
    if clip_min is None or clip_max is None or not clip_min < clip_max:
        raise ValueError(f"carlini_wagner_l2 needs clip_min < clip_max, got {clip_min}, {clip_max}")
    if binary_search_steps < 1 or max_iterations < 1 or not learning_rate > 0:
        raise ValueError("binary_search_steps, max_iterations and learning_rate must be positive")
    x = tf.convert_to_tensor(x, tf.float32)
    labels = ops.integer_labels(tf.convert_to_tensor(y), model_fn(x[:1]))
    w0 = tf.atanh(
        tf.clip_by_value((x - clip_min) / (clip_max - clip_min) * 2.0 - 1.0, -1.0, 1.0) * 0.999999
    )
    batch = tf.shape(x)[0]
    per_example = lambda v: tf.reshape(v, [-1] + [1] * (x.shape.rank - 1))

    def adam_run(const, best_l2, best_x):
        def step(t, w, m, v, succeeded, best_l2, best_x):
            with tf.GradientTape() as tape:
                tape.watch(w)
                x_new = _to_box(w, clip_min, clip_max)
                logits = model_fn(x_new)
                l2 = ops.per_example_squared_norm(x_new - x)
                loss = tf.reduce_sum(l2 + const * _margin(logits, labels, confidence))
            g = tape.gradient(loss, w)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * tf.square(g)
            t = t + 1
            step_size = learning_rate * tf.sqrt(1.0 - 0.999**t) / (1.0 - 0.9**t)
            fooled = tf.not_equal(tf.argmax(logits, 1, output_type=tf.int32), labels)
            improved = tf.logical_and(fooled, l2 < best_l2)
            best_l2 = tf.where(improved, l2, best_l2)
            best_x = tf.where(per_example(improved), x_new, best_x)
            w = w - step_size * m / (tf.sqrt(v) + 1e-8)
            return t, w, m, v, tf.logical_or(succeeded, fooled), best_l2, best_x

        zeros = tf.zeros_like(x)
        _, _, _, _, succeeded, best_l2, best_x = tf.while_loop(
            lambda t, *_: t < max_iterations,
            step,
            (tf.constant(0.0), w0, zeros, zeros, tf.zeros([batch], tf.bool), best_l2, best_x),
        )
        return succeeded, best_l2, best_x

    def search(i, const, low, high, best_l2, best_x):
        succeeded, best_l2, best_x = adam_run(const, best_l2, best_x)
        high = tf.where(succeeded, tf.minimum(high, const), high)
        low = tf.where(succeeded, low, tf.maximum(low, const))
        const = tf.where(high < 1e9, (low + high) / 2.0, const * 10.0)
        return i + 1, const, low, high, best_l2, best_x

    _, _, _, _, _, best_x = tf.while_loop(
        lambda i, *_: i < binary_search_steps,
        search,
        (
            tf.constant(0),
            tf.fill([batch], float(initial_const)),
            tf.zeros([batch]),
            tf.fill([batch], 1e10),
            tf.fill([batch], float("inf")),
            x,
        ),
    )
    return tf.stop_gradient(best_x)
