"""The study across processes: workers sharing one study, a killed run resuming."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest

from tfjsigr.pipeline import recipes
from tfjsigr.pipeline import runs as training
from tfjsigr.pipeline.runs_test import write_tiny_fashion_mnist

RECIPE = """
name = "tiny"
dataset = "fashion_mnist"
epochs = 1
batch_size = 16
seed = 1
eval_examples = 16
[architecture]
name = "mlp"
hidden = [8]
[tune]
"penalties[0].weight" = { low = 0.1, high = 10.0, log = true }
[[penalties]]
type = "input_gradient"
weight = 1.0
"""
# Runs the study in a child process; with "hang", trial 1 stops after its training and waits
# to be killed (the test kills it there, as a machine would be lost mid-trial).
CHILD = """
import pathlib, sys, time
from tfjsigr.tuning import search_space, study
recipe, out, data_dir, mode = sys.argv[1:]
if mode == "hang":
    measure = study.Evaluator.measure
    def measure_then_hang(self, recipe, folder, trial=None):
        result = measure(self, recipe, folder, trial)
        if trial is not None and trial.number == 1:
            (pathlib.Path(out) / "hanging").write_text("")
            time.sleep(600)
        return result
    study.Evaluator.measure = measure_then_hang
options = study.TuneOptions(trials=2, robustness="pgd", seed=0, data_dir=data_dir,
                            progress=False, heartbeat=(1, 2))
study.tune(search_space.load_search_space(recipe), out, options)
"""


@pytest.fixture
def tiny(tmp_path):
    write_tiny_fashion_mnist(tmp_path, train=48, test=16)
    (tmp_path / "tiny.toml").write_text(RECIPE)
    return tmp_path


def load_study(out, name="tiny-pgd"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def trained_trials(output):
    """The trial numbers a process trained, from its `training tiny-trial<n>:` lines."""
    return re.findall(r"training tiny-trial(\d+):", output)


def test_two_worker_processes_share_one_study_without_losing_a_trial(tiny):
    out = tiny / "run"
    command = [sys.executable, "-c", "from tfjsigr.cli import main; main()", "tune",
               str(tiny / "tiny.toml"), "--trials", "5", "--robustness", "pgd", "--data-dir",
               str(tiny), "--out", str(out), "--min-clean", "0"]  # fmt: skip
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    workers = [subprocess.Popen([*command, "--seed", str(seed)], **pipes) for seed in (1, 2)]
    outputs = [worker.communicate(timeout=240)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    trials = load_study(out).get_trials()
    states = {t.state for t in trials}
    assert states == {optuna.trial.TrialState.COMPLETE}, outputs
    # Every trial one worker trained, none twice, none lost; both workers took part.
    ran = [trained_trials(output) for output in outputs]
    assert all(ran) and sorted(ran[0] + ran[1], key=int) == [str(t.number) for t in trials]
    assert 5 <= len(trials) <= 6  # The last two may finish together.
    for t in trials:
        assert (out / t.user_attrs["folder"] / "objectives.json").is_file()
    # The best recipe either worker wrote is a recipe `train` runs as it is.
    best = recipes.load_recipe(out / "best_recipe.toml")
    assert best.name == "tiny-tuned" and 0.1 <= best.penalties[0].weight <= 10
    result = training.train(best, data_dir=str(tiny), verbose=0, evaluate=False)
    assert result.metrics["epochs"] == 1


def test_a_killed_tune_resumes_and_does_not_repeat_a_finished_trial(tiny):
    out = tiny / "run"
    script = tiny / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    arguments = [sys.executable, str(script), str(tiny / "tiny.toml"), str(out), str(tiny)]
    child = subprocess.Popen([*arguments, "hang"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while not (out / "hanging").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.stdout.read()
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    first = child.communicate()[0]
    assert trained_trials(first) == ["0", "1"], first
    finished_model = out / "trials" / "0" / "model.keras"
    stamp = finished_model.stat().st_mtime_ns
    time.sleep(3)  # The killed trial's heartbeat (1 s, grace 2 s) goes stale.

    resumed = subprocess.run(
        [*arguments, "resume"], capture_output=True, text=True, timeout=180, check=False
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # Trial 0 is not run again; trial 1 is retried in its folder, where its model was kept.
    assert trained_trials(resumed.stdout) == [], resumed.stdout
    assert finished_model.stat().st_mtime_ns == stamp
    trials = load_study(out).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].user_attrs["folder"] == "trials/1" and trials[2].params == trials[1].params
    assert trials[0].user_attrs["folder"] == "trials/0"
