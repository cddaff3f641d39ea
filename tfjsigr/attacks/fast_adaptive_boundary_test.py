"""FAB-T fools the tiny model within its budget, and its projections are the exact minimizers."""

import numpy as np
import pytest
import tensorflow as tf

from tfjsigr.attacks.fast_adaptive_boundary import (
    fast_adaptive_boundary_targeted,
    project_l2_onto_hyperplane,
    project_linf_onto_hyperplane,
)
from tfjsigr.attacks.projected_gradient_descent import projected_gradient_descent
from tfjsigr.evaluation import testing


def _norms(delta, norm):
    flat = np.asarray(delta).reshape(len(delta), -1)
    return np.abs(flat).max(axis=1) if norm == np.inf else np.sqrt(np.sum(flat**2, axis=1))


@pytest.mark.parametrize("norm, eps", [(np.inf, 0.1), (2, 1.5)])
def test_lowers_accuracy_within_ball_and_range(setup, norm, eps):
    model_fn, x, y, clean = setup
    x_adv = np.asarray(fast_adaptive_boundary_targeted(model_fn, x, y, eps, norm, steps=25, seed=0))
    assert x_adv.shape == x.shape
    assert _norms(x_adv - x, norm).max() <= eps * (1 + 1e-5)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert testing.accuracy(model_fn, x_adv, y) < clean - 0.3
    # Returned points are either x or misclassified.
    moved = _norms(x_adv - x, norm) > 0
    assert np.all(np.argmax(np.asarray(model_fn(x_adv[moved])), axis=1) != y[moved])


def test_huge_eps_fools_all_with_smaller_norm_than_pgd(setup):
    model_fn, x, y, _ = setup
    correct = np.argmax(np.asarray(model_fn(x)), axis=1) == y
    fab = np.asarray(fast_adaptive_boundary_targeted(model_fn, x, y, 1.0, steps=25, seed=0))
    pgd = np.asarray(projected_gradient_descent(model_fn, x, y, 1.0, 0.1, 20, seed=0))
    assert testing.accuracy(model_fn, fab, y) == 0.0
    pgd_fooled = correct & (np.argmax(np.asarray(model_fn(pgd)), axis=1) != y)
    fab_median = np.median(_norms(fab - x, np.inf)[correct])
    assert fab_median < 0.5 * np.median(_norms(pgd - x, np.inf)[pgd_fooled])
    assert fab_median < 0.1


def _linf_reference(p, w, value):
    """min ||d||_inf s.t. value + w.d = 0, 0 <= p + d <= 1, as a linear program in (d, s)."""
    from scipy.optimize import linprog

    n = len(p)
    bound = np.block([[np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
    result = linprog(
        np.r_[np.zeros(n), 1.0],
        A_ub=bound,
        b_ub=np.zeros(2 * n),
        A_eq=np.r_[w, 0.0][None],
        b_eq=[-value],
        bounds=[(-pi, 1 - pi) for pi in p] + [(0, None)],
    )
    assert result.success
    return result.fun


def _l2_reference(p, w, value):
    """min ||d||_2 s.t. value + w.d = 0, 0 <= p + d <= 1, by SLSQP (a convex QP)."""
    from scipy.optimize import minimize

    result = minimize(
        lambda d: d @ d,
        np.zeros(len(p)),
        jac=lambda d: 2 * d,
        constraints=[{"type": "eq", "fun": lambda d: value + w @ d, "jac": lambda d: w}],
        bounds=[(-pi, 1 - pi) for pi in p],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert result.success
    return result.x


def _random_cases(count=40, seed=0):
    """Hyperplanes through a random point of the unit box, in 2 to 4 dimensions."""
    rng = np.random.default_rng(seed)
    for case in range(count):
        n = int(rng.integers(2, 5))
        p, w, q = rng.uniform(0, 1, n), rng.normal(size=n), rng.uniform(0, 1, n)
        if case % 4 == 0:
            w[0] = 0.0
        yield p, w, float(w @ (p - q))


def _project(projection, p, w, value):
    batch = [tf.constant(np.asarray(v, np.float32)[None]) for v in (p, w)]
    return np.asarray(projection(*batch, tf.constant([value], tf.float32)))[0].astype(np.float64)


def test_linf_projection_is_the_minimum_norm_point_on_hyperplane_in_box():
    pytest.importorskip("scipy.optimize")
    for p, w, value in _random_cases():
        d = _project(project_linf_onto_hyperplane, p, w, value)
        assert abs(value + w @ d) < 1e-5
        assert np.all(p + d >= -1e-6) and np.all(p + d <= 1 + 1e-6)
        assert abs(np.abs(d).max() - _linf_reference(p, w, value)) < 1e-5


def test_l2_projection_is_the_minimum_norm_point_on_hyperplane_in_box():
    pytest.importorskip("scipy.optimize")
    for p, w, value in _random_cases():
        d = _project(project_l2_onto_hyperplane, p, w, value)
        assert abs(value + w @ d) < 1e-5
        assert np.all(p + d >= -1e-6) and np.all(p + d <= 1 + 1e-6)
        np.testing.assert_allclose(d, _l2_reference(p, w, value), atol=1e-5)


def test_projections_closed_forms():
    p, w = np.array([0.5, 0.5, 0.5]), np.array([1.0, -2.0, 0.0])
    # Box inactive: d = -value w / ||w||^2 (L2), -value sign(w) / ||w||_1 (L-inf).
    np.testing.assert_allclose(
        _project(project_l2_onto_hyperplane, p, w, 0.5), [-0.1, 0.2, 0.0], atol=1e-6
    )
    np.testing.assert_allclose(
        _project(project_linf_onto_hyperplane, p, w, 0.6), [-0.2, 0.2, 0.0], atol=1e-6
    )
    # Reaching value 1.5 takes lambda = 0.5 on both coordinates: exactly the box corner.
    np.testing.assert_allclose(
        _project(project_linf_onto_hyperplane, p, w, 1.5), [-0.5, 0.5, 0.0], atol=1e-6
    )
    # The box stops coordinate 0 at 1 (room 0.1); coordinate 1 makes up the rest: both norms
    # give d = -w min(lambda, room / |w|) with lambda = 0.3.
    q, v = np.array([0.9, 0.5, 0.5]), np.array([-1.0, -1.0, 0.0])
    for projection in (project_l2_onto_hyperplane, project_linf_onto_hyperplane):
        np.testing.assert_allclose(_project(projection, q, v, 0.4), [0.1, 0.3, 0.0], atol=1e-6)
    # Out of reach of the box: the corner that gets nearest.
    np.testing.assert_allclose(
        _project(project_l2_onto_hyperplane, p, w, 5.0), [-0.5, 0.5, 0.0], atol=1e-6
    )
    np.testing.assert_allclose(
        _project(project_linf_onto_hyperplane, p, w, -5.0), [0.5, -0.5, 0.0], atol=1e-6
    )


def test_seeded_runs_are_deterministic(setup):
    model_fn, x, y, _ = setup

    def run(seed):
        return np.asarray(
            fast_adaptive_boundary_targeted(
                model_fn, x[:20], y[:20], 0.1, 2, steps=5, target_classes=2, restarts=2, seed=seed
            )
        )

    np.testing.assert_array_equal(run(3), run(3))


def test_compiles_in_graph_mode(setup):
    model_fn, x, y, _ = setup
    compiled = tf.function(
        lambda x, y: fast_adaptive_boundary_targeted(
            model_fn, x, y, 0.1, steps=3, target_classes=2, restarts=2, seed=0
        )
    )
    x_adv = np.asarray(compiled(tf.constant(x[:8]), tf.constant(y[:8])))
    assert x_adv.shape == x[:8].shape
    assert np.abs(x_adv - x[:8]).max() <= 0.1 + 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm": 1},
        {"eps": -0.1},
        {"steps": 0},
        {"target_classes": 0},
        {"target_classes": 10},
        {"restarts": 0},
        {"alpha_max": 0.0},
        {"alpha_max": 1.5},
        {"eta": 0.9},
        {"beta": 1.0},
        {"beta": 0.0},
        {"clip_min": 1.0, "clip_max": 0.0},
    ],
)
def test_bad_arguments_raise_value_error(setup, kwargs):
    model_fn, x, y, _ = setup
    arguments = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError):
        fast_adaptive_boundary_targeted(model_fn, x[:2], y[:2], **arguments)


def test_rank_one_input_raises_value_error(setup):
    model_fn, x, y, _ = setup
    with pytest.raises(ValueError):
        fast_adaptive_boundary_targeted(model_fn, x[0].reshape(-1), y[:1], 0.1)
