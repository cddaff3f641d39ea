import json

import keras
import numpy as np
import pytest

from tfjsigr.pipeline import checkpoints as backup_lib
from tfjsigr.pipeline.checkpoints import AtomicBackupAndRestore, checkpointed_epoch
from tfjsigr.zoo.layout import CHECKPOINT_METADATA_FILE


class Kill(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException, so no handler swallows it)."""


class KillAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Kill()


def tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def fit(model, backup_dir, epochs, *callbacks):
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.arange(16) % 3
    return model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False,
                     callbacks=[AtomicBackupAndRestore(backup_dir), *callbacks])  # fmt: skip


def test_resume_restores_the_weights_and_epoch_of_the_last_checkpoint(tmp_path):
    model = tiny_model()
    with pytest.raises(Kill):
        fit(model, tmp_path, 5, KillAtEpoch(2))
    saved = [w.copy() for w in model.get_weights()]
    metadata = json.loads((tmp_path / CHECKPOINT_METADATA_FILE).read_text())
    assert checkpointed_epoch(tmp_path) == 2 == metadata["epoch"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT_METADATA_FILE, metadata["weights"]])

    resumed = tiny_model()
    restore = AtomicBackupAndRestore(tmp_path)
    restore.set_model(resumed)
    restore.on_train_begin()
    loaded = resumed.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, loaded))
    assert resumed._initial_epoch == 2 and int(resumed.optimizer.iterations) == 4


def test_a_kill_while_writing_weights_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny_model()
    with pytest.raises(Kill):
        fit(model, tmp_path, 5, KillAtEpoch(2))
    before = (tmp_path / CHECKPOINT_METADATA_FILE).read_text()

    def truncated_save(filepath, overwrite=True):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n truncated")
        raise Kill()

    monkeypatch.setattr(model, "save_weights", truncated_save)
    with pytest.raises(Kill):
        fit(model, tmp_path, 5)
    assert (tmp_path / CHECKPOINT_METADATA_FILE).read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # No temporary.
    history = fit(tiny_model(), tmp_path, 3)
    assert history.epoch == [2]


def test_a_kill_between_weights_and_metadata_resumes_the_older_epoch(tmp_path, monkeypatch):
    model = tiny_model()
    with pytest.raises(Kill):
        fit(model, tmp_path, 5, KillAtEpoch(1))

    def kill(*args):
        raise Kill()

    monkeypatch.setattr(backup_lib.io, "write_json_atomic", kill)
    with pytest.raises(Kill):
        fit(model, tmp_path, 5)
    monkeypatch.undo()
    assert checkpointed_epoch(tmp_path) == 1
    resumed = tiny_model()
    history = fit(resumed, tmp_path, 3)
    assert len(history.epoch) == 2 and int(resumed.optimizer.iterations) == 6


def test_a_damaged_checkpoint_is_a_clear_error(tmp_path):
    model = tiny_model()
    with pytest.raises(Kill):
        fit(model, tmp_path, 5, KillAtEpoch(1))
    weights = tmp_path / json.loads((tmp_path / CHECKPOINT_METADATA_FILE).read_text())["weights"]
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot be loaded.*delete"):
        fit(tiny_model(), tmp_path, 3)
    (tmp_path / CHECKPOINT_METADATA_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable checkpoint"):
        fit(tiny_model(), tmp_path, 3)
