"""Our compiled attacks compute what cleverhans 4 computes on a Keras 3 model, same inputs."""

import numpy as np
import pytest
import tensorflow as tf
from cleverhans.tf2.attacks.basic_iterative_method import basic_iterative_method as ch_bim
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method as ch_fgm
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method as ch_mim
from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent as ch_pgd

from tfjsigr import attacks
from tfjsigr.evaluation import testing


@pytest.fixture(scope="module")
def setup():
    model = testing.tiny_model()
    _, _, x, y = testing.sample_data()
    return model, x[:64], y[:64]


def _ours_and_theirs(name, model, x, y):
    f = lambda v: model(v, training=False)
    clip = {"clip_min": 0.0, "clip_max": 1.0}
    if name == "fgsm":
        return attacks.fast_gradient_method(f, x, y, 0.1), ch_fgm(
            model, x, 0.1, np.inf, y=y, **clip
        )
    if name == "fgm_l2":
        return (
            attacks.fast_gradient_method(f, x, y, 1.0, norm=2),
            ch_fgm(model, x, 1.0, 2, y=y, **clip),
        )
    if name == "bim":
        return (
            attacks.basic_iterative_method(f, x, y, 0.1, 0.02, 5),
            # sanity_checks=False: its np.all over a list of tensors fails on numpy 2.
            ch_bim(model, x, 0.1, 0.02, 5, np.inf, y=y, sanity_checks=False, **clip),
        )
    if name == "pgd_no_random_start":
        return (
            attacks.projected_gradient_descent(f, x, y, 0.1, 0.02, 5, rand_init=False),
            ch_pgd(model, x, 0.1, 0.02, 5, np.inf, y=y, rand_init=False, **clip),
        )
    return (
        attacks.momentum_iterative_method(f, x, y, 0.1, 0.02, 5),
        ch_mim(model, x, 0.1, 0.02, 5, np.inf, y=tf.constant(y, tf.int64), **clip),
    )


@pytest.mark.parametrize("name", ["fgsm", "fgm_l2", "bim", "pgd_no_random_start", "mim"])
def test_agrees_with_cleverhans(setup, name):
    model, x, y = setup
    ours, theirs = _ours_and_theirs(name, model, x, y)
    difference = np.abs(np.asarray(ours) - np.asarray(theirs))
    # Sign steps can flip where a gradient entry is ~0; everything else must match exactly.
    assert np.mean(difference > 1e-5) < 1e-3
    assert np.abs(np.asarray(theirs) - x).max() > 0.01  # cleverhans did run on the Keras 3 model


def test_early_stopped_pgd_is_at_least_as_strong(setup):
    model, x, y = setup
    f = lambda v: model(v, training=False)
    full = attacks.projected_gradient_descent(f, x, y, 0.1, 0.02, 10, rand_init=False)
    early = attacks.projected_gradient_descent(
        f, x, y, 0.1, 0.02, 10, rand_init=False, early_stop=True
    )
    assert testing.accuracy(f, np.asarray(early), y) <= testing.accuracy(f, np.asarray(full), y)
