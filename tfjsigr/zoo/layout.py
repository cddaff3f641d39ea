"""The on-disk layout of run folders and zoos: every file name, the entry-name rule, version
listing, entry detection and model loading. Nothing else in the package spells a file name.

A run folder (`tfjsigr train`) holds::

    model.keras  metrics.json  recipe.json  backup/ (while training: checkpoint, recipe.json)

A zoo (`tfjsigr zoo build`, `tfjsigr export`) holds::

    index.json  .zoo.lock  recipes/  report/
    <name>/  model.keras  model.onnx  saved_model/<version>/saved_model.pb  parity_sample.npz
             card.json  README.md
"""

import dataclasses
import json
import pathlib
import re

from tfjsigr import io
from tfjsigr.checks import one_line

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
RECIPE_FILE = "recipe.json"
BACKUP_DIR = "backup"
CHECKPOINT_METADATA_FILE = "training_metadata.json"
CHECKPOINT_SUFFIX = ".weights.h5"

INDEX_FILE = "index.json"
LOCK_FILE = ".zoo.lock"
RECIPES_DIR = "recipes"
REPORT_DIR = "report"
CARD_FILE = "card.json"
README_FILE = "README.md"
ONNX_FILE = "model.onnx"
SAVED_MODEL_DIR = "saved_model"
SAVED_MODEL_PROTO = "saved_model.pb"
SAMPLE_FILE = "parity_sample.npz"
# An export builds the new entry in "<name>.staging" and swaps it in, keeping "<name>.staging.old".
STAGING_SUFFIX = ".staging"
NEW_SAVED_MODEL = "saved_model.new"
STAGING_PATTERN = re.compile(re.escape(STAGING_SUFFIX) + r"(\.old)?$")

DEFAULT_RUNS_DIR = pathlib.Path("runs")
DEFAULT_ZOO_DIR = pathlib.Path("zoo")
# The recipes of a checkout, looked up after <zoo>/recipes.
CHECKOUT_RECIPES = pathlib.Path(__file__).resolve().parents[2] / "zoo" / RECIPES_DIR

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RESERVED_NAMES = {
    INDEX_FILE: "the zoo index",
    RECIPES_DIR: "the zoo's recipes",
    REPORT_DIR: "the zoo's evaluation report",
}
# TF Serving parses version directory names as int64 and skips the ones that do not fit.
MAX_VERSION = 2**63 - 1


def check_name(name):
    """`name` if it may name a zoo entry (and so a run folder).

    Raises:
        ValueError: not letters, digits, ".", "_" and "-" (not starting with "."), or the name
            of something a zoo holds beside its entries (index.json, recipes, report).
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"entry name {name!r}: use letters, digits, '.', '_' and '-', not starting with '.'"
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"entry name {name!r} is reserved for {RESERVED_NAMES[name]}")
    return name


def is_entry(path):
    """Whether a folder is a zoo entry: not hidden (export staging), and it holds a model card,
    a Keras model or SavedModel versions."""
    path = pathlib.Path(path)
    if path.name.startswith(".") or STAGING_PATTERN.search(path.name):
        return False
    return (
        (path / CARD_FILE).exists()  # A broken card (a folder, say) still marks an entry.
        or (path / MODEL_FILE).is_file()
        or (path / SAVED_MODEL_DIR).is_dir()
    )


def is_zoo(path):
    """Whether a folder is a zoo (an index, or entries), as opposed to one entry or a run."""
    path = pathlib.Path(path)
    if not path.is_dir() or is_entry(path):
        return False
    return (path / INDEX_FILE).is_file() or any(is_entry(child) for child in path.iterdir())


def check_is_zoo_not_entry(zoo_dir):
    """ValueError for a zoo entry (or run folder) given where a zoo is expected."""
    path = pathlib.Path(zoo_dir)
    if is_entry(path):
        raise ValueError(
            f"{path} is a zoo entry (it holds {CARD_FILE}, {MODEL_FILE} or {SAVED_MODEL_DIR}/), "
            f"not a zoo; pass the zoo folder that holds it ({path.resolve().parent})"
        )


def entries(zoo_dir):
    """{name: entry folder} of a zoo: its index's entries, else every entry folder in it.

    Raises:
        FileNotFoundError: `zoo_dir` is not a folder.
        ValueError: `zoo_dir` is an entry, its index is corrupt, or it holds no entry.
    """
    from tfjsigr.zoo import index as index_lib

    zoo_dir = pathlib.Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise FileNotFoundError(f"{zoo_dir}: no such zoo directory")
    check_is_zoo_not_entry(zoo_dir)
    records = index_lib.read_index(zoo_dir)
    found = {record["name"]: entry_dir(zoo_dir, record) for record in records}
    if not found:
        found = {d.name: d for d in sorted(zoo_dir.iterdir()) if (d / MODEL_FILE).is_file() and is_entry(d)}
    if not found:
        raise ValueError(f"{zoo_dir}: no {INDEX_FILE} entries and no */{MODEL_FILE}")
    return found


def entry_dir(zoo_dir, record):
    """The folder of an entry a (validated) index record lists."""
    return pathlib.Path(zoo_dir) / record.get("path", record["name"])


def zoo_folder_around(path):
    """The zoo entry or zoo that `path` is or lies inside, with the file that marks it.

    An entry holds card.json; a zoo holds its lock file or an index.json with "entries".

    Returns:
        (folder, marker file name), `folder` resolved, or None outside any zoo.
    """
    path = pathlib.Path(path).resolve()
    for folder in (path, *path.parents):
        if (folder / CARD_FILE).exists():
            return folder, CARD_FILE
        if _holds_zoo_index(folder):
            return folder, INDEX_FILE
        if (folder / LOCK_FILE).exists():
            return folder, LOCK_FILE
    return None


def _holds_zoo_index(folder):
    # index.json is a common name: only a JSON object with "entries" marks a zoo.
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(index, dict) and "entries" in index


def is_complete_version(path):
    """Whether `path` is a SavedModel version folder TF Serving would load: an integer name in
    int64 range (exporters write under another name and rename) holding saved_model.pb."""
    path = pathlib.Path(path)
    name = path.name
    is_number = name.isascii() and name.isdigit() and int(name) <= MAX_VERSION
    return is_number and (path / SAVED_MODEL_PROTO).is_file()


def list_versions(base_path):
    """The complete SavedModel versions under a model's base path, ascending.

    Args:
        base_path: TF Serving's base path of a model: an entry's `saved_model` folder.

    Returns:
        A sorted list of int versions; empty when there is none (or no such folder).
    """
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if is_complete_version(p))


def model_file(path):
    """The .keras file of a run folder, a zoo entry or a .keras file.

    Raises:
        FileNotFoundError: there is none.
        ValueError: the file is not a .keras file.
    """
    path = pathlib.Path(path)
    found = path / MODEL_FILE if path.is_dir() else path
    if not found.is_file():
        raise FileNotFoundError(f"model not found: {found}")
    if found.suffix != ".keras":
        raise ValueError(f"{found}: not a .keras file")
    return found


def load_model(path):
    """A saved Keras model (tfjsigr's classes registered) from a .keras file, a run folder or a
    zoo entry.

    Raises:
        FileNotFoundError: no model there.
        ValueError: not a loadable Keras model (one line naming the file).
    """
    import keras

    import tfjsigr

    tfjsigr.register_keras_objects()
    found = model_file(path)
    try:
        return keras.saving.load_model(found)
    except Exception as error:  # noqa: BLE001 (Keras raises many types for corrupt archives)
        reason = one_line(error)
        if reason.startswith("File not found"):  # Keras' words for a file that is no zip archive.
            reason = "not a .keras (zip) archive"
        raise ValueError(f"{found}: not a loadable Keras model ({reason[:200]})") from None


def default_entry_name(path):
    """The name of a model: its folder's for a model.keras (a run or an entry), else the file's
    name without .keras."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if path.name == MODEL_FILE:
        return path.resolve().parent.name
    return path.stem


@dataclasses.dataclass
class ModelRecord:
    """What a run folder or a zoo entry records about its model (nothing for a bare file).

    `origin` names the file the record was read from, for error messages.
    """

    recipe: dict
    metrics: dict
    data: object = None
    name: object = None
    origin: str = ""


def read_record(path):
    """The ModelRecord of a run folder (recipe.json, metrics.json) or an entry (card.json).

    Only a folder's model.keras is described by its side files; any other .keras file is bare.

    Raises:
        ValueError: a side file is corrupt (one line naming it).
    """
    found = model_file(path)
    folder = found.parent
    if found.name != MODEL_FILE:
        return ModelRecord({}, {})
    if (folder / CARD_FILE).exists():
        card = read_card(folder)
        recipe, metrics = (_section(card, key, folder / CARD_FILE) for key in ("recipe", "metrics"))
        return ModelRecord(recipe, metrics, card.get("data"), card.get("name"), str(folder / CARD_FILE))
    recipe = io.read_json_object(folder / RECIPE_FILE, "run file", missing_ok=True)
    metrics = io.read_json_object(folder / METRICS_FILE, "run file", missing_ok=True)
    return ModelRecord(recipe, metrics, metrics.get("data"), recipe.get("name"), str(folder / RECIPE_FILE))


def class_names(data):
    """The class names a run's or card's `data` section records, as strings; () if none."""
    names = data.get("class_names") if isinstance(data, dict) else None
    return tuple(str(name) for name in names) if isinstance(names, list) else ()


def _section(card, key, card_file):
    value = card.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(  # noqa: TRY004 (a corrupt file is a value error throughout)
            f"{card_file}: corrupt model card ('{key}' must be a JSON object, got "
            f"{type(value).__name__})"
        )
    return value


def read_card(entry):
    """The card of a zoo entry as a dict.

    Raises:
        FileNotFoundError: the entry has no card.
        ValueError: the card is not a file, not valid JSON or not a JSON object.
    """
    path = pathlib.Path(entry) / CARD_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model card (is {entry} a zoo entry?)")
    return io.read_json(path, "model card", expect=dict)
