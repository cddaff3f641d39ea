"""`AtomicBackupAndRestore`: Keras' `BackupAndRestore` with checkpoints a kill cannot corrupt."""

import pathlib

import keras

from tfjsigr import io
from tfjsigr.zoo.layout import CHECKPOINT_METADATA_FILE, CHECKPOINT_SUFFIX


def checkpointed_epoch(backup_dir):
    """The number of completed epochs a backup folder holds (0 without a checkpoint).

    Raises:
        ValueError: the checkpoint's metadata is unreadable (naming the file).
    """
    metadata = read_metadata(backup_dir)
    return 0 if metadata is None else metadata["epoch"]


def read_metadata(backup_dir):
    """A checkpoint's metadata {"epoch", "weights", ...}, or None without a checkpoint.

    Raises:
        ValueError: the metadata file is unreadable or incomplete (naming the file).
    """
    path = pathlib.Path(backup_dir) / CHECKPOINT_METADATA_FILE
    start_over = f"delete {path.parent} to start over"
    try:
        metadata = io.read_json_object(path, "checkpoint metadata")
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise ValueError(f"unreadable checkpoint: {error}; {start_over}") from None
    try:
        return {**metadata, "epoch": int(metadata["epoch"]), "weights": str(metadata["weights"])}
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"unreadable checkpoint {path} ({type(error).__name__}: {error}); {start_over}"
        ) from None


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Backs up the training state so that a run killed at any instant resumes cleanly.

    Keras' `BackupAndRestore` rewrites `latest.weights.h5` in place, so a kill during the write
    leaves a truncated HDF5 file that cannot be loaded (and its `.bkp` copy is made the same
    way). Here every checkpoint is written under a fresh name and renamed into place, and only
    then does `training_metadata.json` (itself replaced atomically) point to it; older weight
    files are removed after that. The metadata therefore always names complete weights of the
    epoch it records, whenever the process dies.

    Args:
        backup_dir: folder of the checkpoint (created on the first save).
        save_freq: "epoch", or a number of batches between checkpoints.
        delete_checkpoint: remove the folder when training ends normally.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        self.backup_path = pathlib.Path(backup_dir)

    def on_train_begin(self, logs=None):
        self._load_model()

    def _load_model(self):
        metadata = read_metadata(self.backup_path)
        if metadata is None:
            return
        weights, epoch = self.backup_path / metadata["weights"], metadata["epoch"]
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(weights)
        except (RuntimeError, OSError, KeyError, ValueError) as error:  # What h5py raises on bad files.
            raise ValueError(
                f"checkpoint {weights} cannot be loaded ({type(error).__name__}: {error}); "
                f"delete {self.backup_path} to start over"
            ) from None
        self.model._initial_epoch = epoch

    def _save_model(self):
        self.backup_path.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch}-batch-{self._last_batch_seen}{CHECKPOINT_SUFFIX}"
        with io.atomic_path(self.backup_path / name) as partial:
            self.model.save_weights(filepath=partial, overwrite=True)
        io.write_json_atomic(
            self.backup_path / CHECKPOINT_METADATA_FILE,
            {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name},
        )
        for stale in self.backup_path.glob(f"*{CHECKPOINT_SUFFIX}"):
            if stale.name != name:
                stale.unlink(missing_ok=True)
