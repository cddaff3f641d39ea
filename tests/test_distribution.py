import json
import pathlib
import subprocess
import sys

import numpy as np

CHECK = pathlib.Path(__file__).with_name("distributed_training_check.py")


def test_mirrored_strategy_on_two_devices_matches_one_device():
    result = subprocess.run(
        [sys.executable, str(CHECK)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    # The update is large, and the same on both: the penalties are divided by the replica count.
    assert report["max_weight_change"] > 1e-2
    assert report["max_weight_difference"] < 1e-4 * max(1.0, report["max_weight_change"])
    for name in ("loss", "task_loss", "input_gradient", "jacobian"):
        np.testing.assert_allclose(report["mirrored"][name], report["single"][name], rtol=1e-4)
    # The adaptive penalty's intensity (CE < 5 grows it by 1 per step: 2 steps) is a mean over
    # replicas of per-replica updates, so it matches one device.
    intensity = report["lipschitz_intensity"]
    assert intensity["single"] > 1.0
    np.testing.assert_allclose(intensity["mirrored"], intensity["single"], rtol=1e-5)
    # The finite-difference estimators (deterministic) give the same training on 1 and 2 devices,
    # up to float32 round-off amplified by 1/h (a missed replica division would be a factor 2).
    fd = report["finite_difference"]
    assert fd["max_weight_difference"] < 2e-3
    for name in ("loss", "input_gradient", "selective_input_gradient"):
        np.testing.assert_allclose(fd["mirrored"][name], fd["single"][name], rtol=2e-3)
    # Random directions and penalty fractions run under the strategy.
    for name in ("loss", "jacobian", "selective_input_gradient", "igr_rd"):
        values = report["random_directions_mirrored"][name]
        assert np.all(np.isfinite(values)) and values[-1] > 0, name

