"""Square attack: window positions, the reference's schedule and bumps, ball and range, seeds."""

import numpy as np
import pytest
import tensorflow as tf

from tfjsigr import attacks
from tfjsigr.attacks.square import halvings, meta_pseudo_gaussian, p_selection, window_side
from tfjsigr.evaluation import testing

HEIGHT = WIDTH = 28


def _recording_model(batch):
    """A never-fooled model recording, per proposal, where it differs from the initial point."""
    calls = tf.Variable(0)
    initial = tf.Variable(tf.zeros([batch, HEIGHT, WIDTH, 1]))
    where = tf.Variable(tf.zeros([HEIGHT, WIDTH]))
    changed_per_example = tf.Variable(tf.zeros([batch]))

    def record(v):
        changed = tf.cast(tf.reduce_any(tf.abs(v - initial) > 1e-6, axis=3), tf.float32)
        where.assign_add(tf.reduce_sum(changed, 0))
        changed_per_example.assign_add(tf.reduce_sum(changed, [1, 2]))
        return 0

    def model_fn(v):
        # Call 0: clean inputs; call 1: the initial stripes; then one proposal per call.
        tf.cond(tf.equal(calls, 1), lambda: initial.assign(v)[0, 0, 0, 0] * 0, lambda: 0.0)
        tf.cond(calls >= 2, lambda: record(v), lambda: 0)
        calls.assign_add(1)
        return tf.tile(tf.constant([[1.0, 0.0]]), [tf.shape(v)[0], 1])

    return model_fn, calls, where, changed_per_example


@pytest.mark.parametrize("compiled", [False, True])
def test_linf_windows_cover_every_row_and_column_independently(compiled):
    batch, queries = 8, 300
    model_fn, calls, where, changed_per_example = _recording_model(batch)
    x = tf.fill([batch, HEIGHT, WIDTH, 1], 0.5)
    y = tf.zeros([batch], tf.int32)
    # p_init 0.001 makes every window one pixel, so each proposal changes exactly that pixel.
    assert window_side(p_selection(0, queries, 0.001), HEIGHT, WIDTH, 1, np.inf) == 1

    def attack():
        return attacks.square(model_fn, x, y, 0.1, queries, p_init=0.001, seed=3)

    (tf.function(attack) if compiled else attack)()
    assert int(calls.numpy()) == queries + 2
    # One pixel per example per query: the window always changes the image.
    np.testing.assert_array_equal(changed_per_example.numpy(), queries)
    joint = where.numpy()
    assert joint.sum() == batch * queries
    assert (joint.sum(axis=1) > 0).all(), "a row is never in a window"
    assert (joint.sum(axis=0) > 0).all(), "a column is never in a window"
    # Independent starts put 1/28 of the windows on the diagonal; equal starts put them all.
    assert np.trace(joint) / joint.sum() < 0.08
    assert (joint > 0).mean() > 0.9


@pytest.mark.parametrize(
    "queries, iteration, expected",
    [
        (10000, 0, 0.8),
        (10000, 10, 0.8),
        (10000, 11, 0.4),
        (10000, 50, 0.4),
        (10000, 51, 0.2),
        (10000, 201, 0.1),
        (10000, 501, 0.05),
        (10000, 1001, 0.025),
        (10000, 2001, 0.0125),
        (10000, 4001, 0.00625),
        (10000, 6001, 0.003125),
        (10000, 8000, 0.003125),
        (10000, 8001, 0.0015625),
        (10000, 9999, 0.0015625),
        (1000, 1, 0.8),
        (1000, 2, 0.4),
        (1000, 6, 0.2),
        (1000, 21, 0.1),
        (1000, 100, 0.05),
        (1000, 101, 0.025),
        (1000, 801, 0.0015625),
        (5000, 100, 0.2),
        (5000, 101, 0.1),
        # int(10 / 9500 * 10000) truncates 10.53 to 10: still p_init.
        (9500, 10, 0.8),
        (9500, 11, 0.4),
        (300, 299, 0.0015625),
    ],
)
def test_p_schedule_matches_the_reference(queries, iteration, expected):
    assert p_selection(iteration, queries, 0.8) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("queries", [1, 7, 300, 999, 1000, 3000, 5000, 9500, 10000, 12345])
def test_in_graph_schedule_matches_p_selection_at_every_iteration(queries):
    iterations = tf.range(queries)
    got = 0.8 / 2.0 ** halvings(iterations, tf.constant(queries)).numpy()
    expected = [p_selection(i, queries, 0.8) for i in range(queries)]
    np.testing.assert_array_equal(got, expected)


def test_window_sides_match_the_reference():
    # max(round(sqrt(p * H * W)), 1), at most min(H, W); L2: at least 3 and odd.
    assert window_side(0.8, 28, 28, 1, np.inf) == 25
    assert window_side(0.8, 32, 32, 3, np.inf) == 29
    assert window_side(0.05, 28, 28, 1, np.inf) == 6
    assert window_side(0.05, 28, 28, 1, 2) == 7
    assert window_side(0.0015625, 28, 28, 1, np.inf) == 1
    assert window_side(0.0015625, 28, 28, 1, 2) == 3
    assert window_side(1.0, 28, 28, 1, 2) == 28


def _reference_rectangle(x, y):
    # max-andr/square-attack attack.py, pseudo_gaussian_pert_rectangles.
    delta = np.zeros([x, y])
    x_c, y_c = x // 2 + 1, y // 2 + 1
    counter2 = [x_c - 1, y_c - 1]
    for counter in range(max(x_c, y_c)):
        delta[
            max(counter2[0], 0) : min(counter2[0] + (2 * counter + 1), x),
            max(0, counter2[1]) : min(counter2[1] + (2 * counter + 1), y),
        ] += 1.0 / (counter + 1) ** 2
        counter2[0] -= 1
        counter2[1] -= 1
    return delta / np.sqrt(np.sum(delta**2, keepdims=True))


@pytest.mark.parametrize("side", [2, 3, 5, 8, 25])
def test_l2_bump_matches_the_reference(side):
    # max-andr/square-attack attack.py, meta_pseudo_gaussian_pert (before its random transpose).
    delta = np.zeros([side, side])
    delta[: side // 2] = _reference_rectangle(side // 2, side)
    delta[side // 2 :] = _reference_rectangle(side - side // 2, side) * (-1)
    delta /= np.sqrt(np.sum(delta**2, keepdims=True))
    np.testing.assert_allclose(meta_pseudo_gaussian(side), delta, atol=1e-6)


@pytest.mark.parametrize("norm, eps", [(np.inf, 0.1), (2, 1.5)])
def test_attack_stays_in_ball_and_range_and_lowers_accuracy(setup, norm, eps):
    model_fn, x, y, clean = setup
    x_adv = np.asarray(attacks.square(model_fn, x, y, eps, 300, norm=norm, seed=0))
    assert x_adv.shape == x.shape
    delta = (x_adv - x).reshape(len(x), -1)
    size = np.abs(delta).max(1) if norm == np.inf else np.sqrt(np.sum(delta**2, 1))
    assert size.max() <= eps * (1 + 1e-5)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert testing.accuracy(model_fn, x_adv, y) < clean - 0.15
    # Examples wrong when clean come back unchanged.
    wrong = np.argmax(np.asarray(model_fn(x)), 1) != y
    np.testing.assert_array_equal(x_adv[wrong], x[wrong])


@pytest.mark.parametrize("norm, eps", [(np.inf, 0.1), (2, 1.5)])
def test_seeded_runs_are_deterministic(setup, norm, eps):
    model_fn, x, y, _ = setup
    x, y = x[:20], y[:20]
    first = np.asarray(attacks.square(model_fn, x, y, eps, 30, norm=norm, seed=5))
    second = np.asarray(attacks.square(model_fn, x, y, eps, 30, norm=norm, seed=5))
    other = np.asarray(attacks.square(model_fn, x, y, eps, 30, norm=norm, seed=6))
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other).max() > 0


def test_each_query_runs_only_the_still_correct_examples_and_stops_when_none_is_left():
    batch, queries = 6, 1000
    calls, evaluated = tf.Variable(0), tf.Variable(0)
    last_size, grew = tf.Variable(batch), tf.Variable(False)

    def model_fn(v):
        # Class 0 while the mean pixel is above 0.49: setting a few pixels to 0.4 fools it.
        size = tf.shape(v)[0]
        grew.assign(grew | (size > last_size))
        last_size.assign(size)
        calls.assign_add(1)
        evaluated.assign_add(size)
        mean = tf.reduce_mean(v, axis=[1, 2, 3])
        return tf.stack([mean - 0.49, tf.zeros_like(mean)], 1)

    x = tf.fill([batch, HEIGHT, WIDTH, 1], 0.5)
    x_adv = np.asarray(
        attacks.square(model_fn, x, tf.zeros([batch], tf.int32), 0.1, queries, seed=0)
    )
    assert (np.mean(x_adv, axis=(1, 2, 3)) < 0.49).all()
    assert int(calls.numpy()) < queries / 2
    assert int(evaluated.numpy()) < batch * int(calls.numpy())
    assert not bool(grew.numpy())


@pytest.mark.parametrize(
    "arguments",
    [
        {"eps": -0.1},
        {"norm": 1},
        {"queries": 0},
        {"queries": 2.5},
        {"p_init": 0.0},
        {"p_init": 1.5},
        {"clip_min": 1.0, "clip_max": 0.0},
    ],
)
def test_bad_arguments_raise_value_error(setup, arguments):
    model_fn, x, y, _ = setup
    arguments = {"eps": 0.1, **arguments}
    with pytest.raises(ValueError):
        attacks.square(model_fn, x[:2], y[:2], **arguments)


def test_inputs_without_nhwc_shape_raise_value_error(setup):
    model_fn, x, y, _ = setup
    with pytest.raises(ValueError):
        attacks.square(model_fn, x[:2, :, :, 0], y[:2], 0.1)
