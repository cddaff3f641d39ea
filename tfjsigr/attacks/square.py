"""Square attack (Andriushchenko et al., ECCV 2020, arXiv 1912.00049), L-inf and L2.

A score-based black-box random search, following the reference implementation as AutoAttack
runs it (fra31/auto-attack, autoattack/square.py) and the authors' code (max-andr/square-attack):
the margin loss z_y - max_{k!=y} z_k, the schedule of p (`p_selection`, rescaled to the query
budget), the window side round(sqrt(p * H * W)), vertical-stripe (L-inf) or pseudo-gaussian
(L2) initialization, and the acceptance rule (keep a proposal if it lowers the margin).

Differences from the reference, all batched equivalents or fixes:
- every example draws its own window positions, signs and pattern transposes (the reference
  draws one window and one transpose per iteration for the whole batch, except in its L-inf
  numpy code); each example's marginal distribution is the reference's;
- window starts are uniform over [0, H - s] (the reference's randint(0, H - s) never starts a
  window at H - s, so the last row and column are never changed by a 1-pixel window);
- the L-inf redraw of signs until the window changes the image (the reference's `while`) stops
  after 32 draws, where the reference would loop forever (only possible if the clip range is
  one point);
- the L2 initialization's grid of bumps is centred on each axis and keeps only whole bumps
  (the reference centres the width with the height's offset and fails on images where
  H // (H // 5) > 5);
- an example the search did not fool comes back as its best point (lowest margin), as in the
  authors' code; AutoAttack returns the clean input for it (both are classified correctly).
"""

import math

import numpy as np
import tensorflow as tf

from tfjsigr import ops
from tfjsigr.attacks.projected_gradient_descent import _clip, check_attack_arguments
from tfjsigr.attacks.spsa import margin_loss

# Draws per iteration reserved in the stateless seed (iteration * _DRAWS + draw index).
_DRAWS = 64
# L-inf: sign draws per window before giving up on changing the image (reference: unbounded).
_MAX_SIGN_DRAWS = 32
# The reference's threshold below which a window counts as unchanged.
_UNCHANGED = 1e-7


# Iterations (of 10,000) after which p halves: the reference's schedule.
_BREAKPOINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_selection(iteration, queries, p_init=0.8):
    """The reference's piecewise-constant share p of the image changed at `iteration` (0-based).

    The breakpoints are for 10,000 queries; other budgets rescale the iteration to them
    (AutoAttack's `resc_schedule=True`), with the reference's truncation int(it / n * 10000).
    """
    it = int(iteration / queries * 10000)
    return p_init / 2 ** sum(it > last for last in _BREAKPOINTS)


def halvings(iteration, queries):
    """In-graph number of halvings of p at `iteration`: p_selection's, float64 as in Python."""
    it = tf.floor(tf.cast(iteration, tf.float64) / tf.cast(queries, tf.float64) * 10000.0)
    return tf.add_n([tf.cast(it > last, tf.int32) for last in _BREAKPOINTS])


def window_side(p, height, width, channels, norm):
    """The reference's side of the square window for share p of the image."""
    n_features = channels * height * width
    if norm == np.inf:
        side = max(round(math.sqrt(p * n_features / channels)), 1)
    else:
        side = max(round(math.sqrt(p * n_features / channels)), 3)
        side += 1 - side % 2
    return min(side, min(height, width))


def _pseudo_gaussian_rectangle(rows, cols):
    """The reference's eta_rectangles: nested rectangles weighted 1/(k+1)^2, unit L2 norm."""
    delta = np.zeros([rows, cols])
    if rows == 0 or cols == 0:
        return delta
    top, left = rows // 2, cols // 2
    for k in range(max(rows // 2 + 1, cols // 2 + 1)):
        delta[
            max(top, 0) : min(top + 2 * k + 1, rows), max(left, 0) : min(left + 2 * k + 1, cols)
        ] += 1.0 / (k + 1) ** 2
        top, left = top - 1, left - 1
    return delta / np.sqrt(np.sum(delta**2))


def meta_pseudo_gaussian(side):
    """The reference's eta(s) before its random transpose: +bump over -bump, unit L2 norm."""
    delta = np.zeros([side, side])
    delta[: side // 2] = _pseudo_gaussian_rectangle(side // 2, side)
    delta[side // 2 :] = -_pseudo_gaussian_rectangle(side - side // 2, side)
    return (delta / np.sqrt(np.sum(delta**2))).astype(np.float32)


def _schedule(p_init, height, width, channels, norm):
    """Window side per number of halvings of p, and each side's L2 bump (zero-padded)."""
    sides = [
        window_side(p_init / 2**k, height, width, channels, norm)
        for k in range(len(_BREAKPOINTS) + 1)
    ]
    etas = np.zeros([len(sides), sides[0], sides[0]], np.float32)
    if norm == 2:
        for k, side in enumerate(sides):
            etas[k, :side, :side] = meta_pseudo_gaussian(side)
    return np.asarray(sides, np.int32), etas


def square(
    model_fn,
    x,
    y,
    eps,
    queries=5000,
    p_init=0.8,
    norm=np.inf,
    clip_min=0.0,
    clip_max=1.0,
    seed=None,
):
    """Random search changing one square window of each still-correct example per query.

    L-inf: starts from vertical stripes of +-eps; each query sets a random window to +-eps (a
    sign per channel, redrawn until the window changes the image). L2: starts from a grid of
    pseudo-gaussian bumps scaled to norm eps; each query moves the perturbation's mass in two
    random windows into a new bump in the first. A proposal is kept if it lowers the margin
    z_y - max_{k!=y} z_k. Uses only the model's outputs. Examples misclassified when clean
    are returned unchanged; the others leave the search once misclassified, so each query is
    one forward pass of the still-correct examples, and it stops once none is left.

    Args:
        model_fn: callable from NHWC inputs to logits.
        x: clean inputs (B, H, W, C), float32, with static H, W, C.
        y: integer or one-hot labels.
        eps: radius of the ball (a Python number).
        queries: iterations after the initialization (each one query of the still-correct
            examples); the schedule of p is rescaled to it.
        p_init: initial share of the image in the window (0.8: the reference's default).
        norm: np.inf or 2.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        seed: integer seed of the stateless draws (None: one drawn from numpy's global state).

    Returns:
        Adversarial inputs, within eps of x in the norm and within [clip_min, clip_max].
    """
    check_attack_arguments(eps, norm, clip_min, clip_max, steps=queries)
    if not 0 < p_init <= 1:
        raise ValueError(f"p_init must be in (0, 1], got {p_init}")
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 4 or None in x.shape[1:]:
        raise ValueError(f"square needs NHWC inputs of static image shape, got shape {x.shape}")
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    if eps == 0:
        return tf.stop_gradient(_clip(x, clip_min, clip_max))
    _, height, width, channels = x.shape
    sides, etas = _schedule(p_init, height, width, channels, norm)
    arguments = (
        x,
        y,
        tf.constant(eps, tf.float32),
        tf.constant(int(queries), tf.int32),
        tf.constant(sides),
        tf.constant(etas),
        tf.constant(seed, tf.int64) if not tf.is_tensor(seed) else tf.cast(seed, tf.int64),
    )
    run = _compiled_run if tf.executing_eagerly() else _run
    return run(model_fn, *arguments, norm=norm, clip_min=clip_min, clip_max=clip_max)


def _run(model_fn, x, y, eps, queries, sides, etas, seed, norm, clip_min, clip_max):
    batch = tf.shape(x)[0]
    _, height, width, channels = x.shape

    def uniform(shape, iteration, draw, **kwargs):
        key = tf.stack([seed, tf.cast(iteration, tf.int64) * _DRAWS + tf.cast(draw, tf.int64)])
        return tf.random.stateless_uniform(shape, key, **kwargs)

    def random_sign(shape, iteration, draw):
        return tf.where(uniform(shape, iteration, draw) < 0.5, -1.0, 1.0)

    def starts(length, side, iteration, draw):
        return uniform([batch], iteration, draw, minval=0, maxval=length - side + 1, dtype=tf.int32)

    def span(start, side, length):
        positions = tf.range(length)[None, :]
        return (positions >= start[:, None]) & (positions < start[:, None] + side)

    def window(row, col, side):
        rows, cols = span(row, side, height), span(col, side, width)
        return rows[:, :, None, None] & cols[:, None, :, None]

    def l2_normalized(delta):
        norms = tf.sqrt(tf.reduce_sum(tf.square(delta), axis=[1, 2, 3], keepdims=True))
        return delta / (norms + 1e-12)

    def propose_linf(i, active, x_act, best_act):
        side = sides[halvings(i, queries)]
        row = tf.gather(starts(height, side, i + 1, 0), active)
        col = tf.gather(starts(width, side, i + 1, 1), active)
        inside = window(row, col, side)

        def candidate(draw):
            signs = tf.gather(random_sign([batch, 1, 1, channels], i + 1, draw), active)
            new = _clip(tf.where(inside, x_act + eps * signs, best_act), clip_min, clip_max)
            changed = tf.reduce_any(tf.abs(new - best_act) >= _UNCHANGED, axis=[1, 2, 3])
            return new, changed

        def redraw(draw, new, changed):
            other, other_changed = candidate(draw)
            new = tf.where(changed[:, None, None, None], new, other)
            return draw + 1, new, changed | other_changed

        def unchanged(draw, new, changed):
            return tf.logical_and(
                draw < 2 + _MAX_SIGN_DRAWS, tf.logical_not(tf.reduce_all(changed))
            )

        new, changed = candidate(2)
        _, new, _ = tf.while_loop(unchanged, redraw, (tf.constant(3), new, changed))
        return new

    def propose_l2(i, active, x_act, best_act):
        k = halvings(i, queries)
        side = sides[k]
        eta = etas[k, :side, :side]
        row = tf.gather(starts(height, side, i + 1, 0), active)
        col = tf.gather(starts(width, side, i + 1, 1), active)
        row2 = tf.gather(starts(height, side, i + 1, 2), active)
        col2 = tf.gather(starts(width, side, i + 1, 3), active)
        flip = tf.gather(uniform([batch], i + 1, 4) > 0.5, active)
        signs = tf.gather(random_sign([batch, 1, 1, channels], i + 1, 5), active)
        offsets = tf.range(side)[None, :]
        row_hot = tf.one_hot(row[:, None] + offsets, height)  # (n, s, H)
        col_hot = tf.one_hot(col[:, None] + offsets, width)  # (n, s, W)
        inside, inside2 = window(row, col, side), window(row2, col2, side)

        delta = best_act - x_act
        old = tf.einsum("nih,nhwc,njw->nijc", row_hot, delta, col_hot)
        old_norms = tf.sqrt(tf.reduce_sum(tf.square(old), axis=[1, 2], keepdims=True))
        image_norms = tf.sqrt(tf.reduce_sum(tf.square(delta), axis=[1, 2, 3], keepdims=True))
        both = tf.cast(inside | inside2, tf.float32)
        window_norms = tf.sqrt(tf.reduce_sum(tf.square(delta * both), axis=[1, 2], keepdims=True))

        bump = tf.where(flip[:, None, None], tf.transpose(eta)[None], eta[None])
        new = bump[..., None] * signs + old / (1e-12 + old_norms)
        new_norms = tf.sqrt(tf.reduce_sum(tf.square(new), axis=[1, 2], keepdims=True))
        budget = tf.maximum(eps**2 - tf.square(image_norms), 0.0) / channels
        new = new / (1e-12 + new_norms) * tf.sqrt(budget + tf.square(window_norms))
        placed = tf.einsum("nih,nijc,njw->nhwc", row_hot, new, col_hot)
        delta = tf.where(inside, placed, tf.where(inside2, 0.0, delta))
        return _clip(x_act + eps * l2_normalized(delta), clip_min, clip_max)

    def initial():
        if norm == np.inf:
            stripes = random_sign([batch, 1, width, channels], 0, 0)
            return _clip(x + eps * stripes, clip_min, clip_max)
        side = max(min(height, width) // 5, 1)
        eta = meta_pseudo_gaussian(side)
        top, left = (height - 5 * side) // 2, (width - 5 * side) // 2
        across, down = (width - left) // side, (height - top) // side
        flip = uniform([batch, down, across], 0, 0) > 0.5
        bumps = tf.where(flip[..., None, None], eta.T, eta)  # (B, down, across, s, s)
        bumps = bumps[..., None] * random_sign([batch, down, across, 1, 1, channels], 0, 1)
        grid = tf.reshape(
            tf.transpose(bumps, [0, 1, 3, 2, 4, 5]), [batch, down * side, across * side, channels]
        )
        padding = [
            [0, 0],
            [top, height - top - down * side],
            [left, width - left - across * side],
            [0, 0],
        ]
        return _clip(x + eps * l2_normalized(tf.pad(grid, padding)), clip_min, clip_max)

    propose = propose_linf if norm == np.inf else propose_l2
    clean_logits = model_fn(x)
    labels = ops.integer_labels(tf.convert_to_tensor(y), clean_logits)
    # Examples wrong when clean stay clean (AutoAttack attacks only the correct ones).
    attacked = margin_loss(labels, clean_logits) > 0
    x_init = initial()
    x_best = tf.where(attacked[:, None, None, None], x_init, x)
    margin_best = tf.where(attacked, margin_loss(labels, model_fn(x_best)), -1.0)

    def step(i, x_best, margin_best):
        active = tf.where(margin_best > 0)[:, 0]
        x_act, best_act = tf.gather(x, active), tf.gather(x_best, active)
        margin_act = tf.gather(margin_best, active)
        new = propose(i, active, x_act, best_act)
        margin = margin_loss(tf.gather(labels, active), model_fn(new))
        improved = margin < margin_act
        indices = active[:, None]
        x_best = tf.tensor_scatter_nd_update(
            x_best, indices, tf.where(improved[:, None, None, None], new, best_act)
        )
        margin_best = tf.tensor_scatter_nd_update(
            margin_best, indices, tf.where(improved, margin, margin_act)
        )
        return i + 1, x_best, margin_best

    def searching(i, x_best, margin_best):
        return tf.logical_and(i < queries, tf.reduce_any(margin_best > 0))

    _, x_best, _ = tf.while_loop(searching, step, (tf.constant(0), x_best, margin_best))
    return tf.stop_gradient(x_best)


# Eager callers get the whole search as one graph (an eager tf.while_loop runs op by op).
_compiled_run = tf.function(_run, reduce_retracing=True)
