"""Files others read: the one atomic writer, and the one JSON reader, of the whole package.

Training runs, checkpoints, the zoo (cards, index), evaluation reports, tuning outputs and the
serving configuration all write through `atomic_path`, so a reader never sees half a file and a
crash leaves the previous file in place. They read JSON through `read_json`, whose errors name
the file in one line.
"""

import contextlib
import json
import math
import os
import pathlib
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; on success it is made durable, world-readable and
    renamed over `path`; on any error it is removed and `path` is left as it was.

    Args:
        path: the destination file; its folder must exist.

    Yields:
        The temporary `pathlib.Path` to write (with the destination's suffix, for writers that
        check it, such as `keras.Model.save`).
    """
    path = pathlib.Path(path)
    # The full suffix, for writers that check it (".weights.h5", ".keras").
    suffix = "".join(path.suffixes[-2:])
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    temporary = pathlib.Path(temporary)
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the file from servers and users.
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path, text):
    """Writes `text` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json_atomic(path, data):
    """Writes `data` as indented, key-sorted JSON to `path` atomically (NumPy values allowed)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=json_default) + "\n")


def json_default(value):
    """JSON for what `json` cannot encode: NumPy scalars and arrays as numbers, the rest as str."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def to_json(data):
    """`data` as plain JSON types (what it reads back as after a JSON round trip).

    Numbers that are not finite (NaN, infinities) become None: standard JSON has none.
    """
    return _finite_or_null(json.loads(json.dumps(data, default=json_default)))


def _finite_or_null(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(item) for item in value]
    return value


def read_json(path, what="JSON file", expect=None):
    """The decoded content of a JSON file.

    Args:
        path: the file.
        what: what the file is, for the error messages ("model card", "zoo index", ...).
        expect: a type (e.g. dict) the top-level value must have, or None.

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: it is a folder, unreadable, not JSON or not of the expected type; one line
            naming the file, e.g. "zoo/jr/card.json: corrupt model card (not a JSON object)".
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what}")
    problem = None
    try:
        value = json.loads(path.read_text())
    except IsADirectoryError:
        problem = "not a file"
    except OSError as error:
        problem = f"unreadable: {error.strerror or error}"
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        problem = " ".join(str(error).split())
    else:
        if expect is not None and not isinstance(value, expect):
            problem = f"not a JSON {'object' if expect is dict else expect.__name__}"
    if problem:
        raise ValueError(f"{path}: corrupt {what} ({problem})")
    return value


def read_json_object(path, what="JSON file", missing_ok=False):
    """A JSON file that must hold an object; {} for a missing file when `missing_ok`."""
    if missing_ok and not pathlib.Path(path).exists():
        return {}
    return read_json(path, what, expect=dict)
