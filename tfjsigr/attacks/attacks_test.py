"""Every attack lowers a trained tiny model's accuracy and stays in its eps-ball and clip range."""

import numpy as np
import pytest
import tensorflow as tf

from tfjsigr import attacks
from tfjsigr.evaluation import testing

EPS = 0.1


LINF_ATTACKS = {
    "fgsm": lambda f, x, y: attacks.fast_gradient_method(f, x, y, EPS),
    "pgd": lambda f, x, y: attacks.projected_gradient_descent(f, x, y, EPS, 0.025, 10, seed=0),
    "pgd_restarts": lambda f, x, y: attacks.projected_gradient_descent(
        f, x, y, EPS, 0.025, 5, seed=0, restarts=2
    ),
    "pgd_early_stop": lambda f, x, y: attacks.projected_gradient_descent(
        f, x, y, EPS, 0.025, 10, seed=0, early_stop=True
    ),
    "pgd_graph": tf.function(
        lambda f, x, y: attacks.projected_gradient_descent(
            f, x, y, EPS, 0.025, 10, seed=0, early_stop=True
        )
    ),
    "bim": lambda f, x, y: attacks.basic_iterative_method(f, x, y, EPS, 0.025, 10),
    "mim": lambda f, x, y: attacks.momentum_iterative_method(f, x, y, EPS, 0.025, 10),
    "spsa": lambda f, x, y: attacks.spsa(f, x, y, EPS, steps=10, samples=32, seed=0),
    "square": lambda f, x, y: attacks.square(f, x, y, EPS, queries=300, seed=0),
}


@pytest.mark.parametrize("name", sorted(LINF_ATTACKS))
def test_linf_attack_lowers_accuracy_within_ball_and_range(setup, name):
    model_fn, x, y, clean = setup
    x_adv = np.asarray(LINF_ATTACKS[name](model_fn, tf.constant(x), tf.constant(y)))
    assert x_adv.shape == x.shape
    assert np.max(np.abs(x_adv - x)) <= EPS + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert testing.accuracy(model_fn, x_adv, y) < clean - 0.05


@pytest.mark.parametrize("name", sorted(LINF_ATTACKS))
def test_linf_attack_compiles_for_a_single_image(setup, name):
    model_fn, x, y, _ = setup
    compiled = tf.function(LINF_ATTACKS[name])
    x_adv = np.asarray(compiled(model_fn, tf.constant(x[:1]), tf.constant(y[:1])))
    assert x_adv.shape == x[:1].shape
    assert np.max(np.abs(x_adv - x[:1])) <= EPS + 1e-6


def test_l2_pgd_respects_l2_ball(setup):
    model_fn, x, y, clean = setup
    x_adv = np.asarray(
        attacks.projected_gradient_descent(model_fn, x, y, 1.5, 0.4, 10, norm=2, seed=0)
    )
    norms = np.sqrt(np.sum(np.square(x_adv - x).reshape(len(x), -1), axis=1))
    assert norms.max() <= 1.5 + 1e-4
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert testing.accuracy(model_fn, x_adv, y) < clean - 0.1


@pytest.mark.parametrize("name", ["carlini_wagner_l2", "decoupled_direction_norm"])
def test_minimum_norm_attacks_fool_with_small_perturbations(setup, name):
    model_fn, x, y, clean = setup
    if name == "carlini_wagner_l2":
        x_adv = attacks.carlini_wagner_l2(model_fn, x, y, binary_search_steps=3, max_iterations=30)
    else:
        x_adv, _ = attacks.decoupled_direction_norm(model_fn, x, y, steps=30)
    x_adv = np.asarray(x_adv)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert testing.accuracy(model_fn, x_adv, y) < 0.2 * clean
    # Smaller than PGD's L2 at eps 0.1, which fools fewer.
    rmse = np.sqrt(np.mean(np.square(x_adv - x).reshape(len(x), -1), axis=1))
    assert np.median(rmse) < 0.06


def test_sgd_uap_is_one_perturbation_for_all_inputs(setup):
    model_fn, x, y, clean = setup
    delta = np.asarray(attacks.sgd_uap(model_fn, x, y, 0.2, epochs=3, batch_size=50))
    assert delta.shape == (1,) + x.shape[1:]
    assert np.abs(delta).max() <= 0.2 + 1e-6
    x_adv = np.clip(x + delta, 0.0, 1.0)
    assert testing.accuracy(model_fn, x_adv, y) < clean - 0.05


def test_pgd_seed_makes_it_deterministic(setup):
    model_fn, x, y, _ = setup
    first = attacks.projected_gradient_descent(model_fn, x[:20], y[:20], EPS, 0.025, 3, seed=7)
    second = attacks.projected_gradient_descent(model_fn, x[:20], y[:20], EPS, 0.025, 3, seed=7)
    other = attacks.projected_gradient_descent(model_fn, x[:20], y[:20], EPS, 0.025, 3, seed=8)
    np.testing.assert_array_equal(first, second)
    assert np.abs(np.asarray(first) - np.asarray(other)).max() > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda f, x, y: attacks.square(f, x, y, -0.1),
        lambda f, x, y: attacks.spsa(f, x, y, 0.1, samples=0),
        lambda f, x, y: attacks.momentum_iterative_method(f, x, y, 0.1, 0.01, 0),
        lambda f, x, y: attacks.projected_gradient_descent(f, x, y, 0.1, 0.01, 2, restarts=0),
        lambda f, x, y: attacks.carlini_wagner_l2(f, x, y, clip_min=1.0, clip_max=0.0),
        lambda f, x, y: attacks.decoupled_direction_norm(f, x, y, gamma=1.5),
        lambda f, x, y: attacks.sgd_uap(f, x, y, 0.1, epochs=0),
    ],
)
def test_bad_arguments_raise_value_error(setup, call):
    model_fn, x, y, _ = setup
    with pytest.raises(ValueError):
        call(model_fn, x[:2], y[:2])
