"""Model cards: `card.json` in each zoo entry, updated atomically by section, and its README."""

import contextlib
import json
import pathlib

from tfjsigr.io import json_default, to_json, write_json_atomic, write_text_atomic
from tfjsigr.zoo.layout import (
    CARD_FILE,
    LOCK_FILE,
    MODEL_FILE,
    ONNX_FILE,
    README_FILE,
    SAVED_MODEL_DIR,
    read_card,
)

# Sections of card.json, in the order the README shows them.
SECTIONS = ("metrics", "robustness", "model", "data", "recipe", "parity", "software", "artifacts")
PENDING = 'pending (filled in by the evaluation: `update_card(entry, "robustness", {...})`)'


@contextlib.contextmanager
def zoo_lock(zoo_dir):
    """Holds an exclusive lock on a zoo directory (entry swaps, index and card updates).

    Args:
        zoo_dir: the zoo directory (created if missing).

    Yields:
        The zoo directory as a `pathlib.Path`.

    Raises:
        ValueError: the lock file `.zoo.lock` cannot be opened (a directory, no permission).
    """
    zoo_dir = pathlib.Path(zoo_dir)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: one writer at a time is the user's business.
        yield zoo_dir
        return
    with _open_lock_file(zoo_dir / LOCK_FILE) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield zoo_dir
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_lock_file(path):
    try:
        return open(path, "a")
    except OSError as error:
        raise ValueError(
            f"{path}: cannot open the zoo's lock file ({error.strerror or error})"
        ) from None


def write_card(entry_dir, card):
    """Writes `card.json` and the README.md rendered from it, each atomically.

    Numbers that are not finite are written as null (standard JSON has no NaN or Infinity).
    """
    entry_dir = pathlib.Path(entry_dir)
    card = to_json(card)
    write_json_atomic(entry_dir / CARD_FILE, card)
    write_text_atomic(entry_dir / README_FILE, render_readme(card))


def update_card(entry_dir, section, data):
    """Replaces one top-level section of an entry's card (e.g. "robustness"), atomically.

    The README.md card is re-rendered. The zoo's lock is held, so an update never races an
    export swapping the entry.

    Args:
        entry_dir: the entry directory, e.g. `zoo/jr`.
        section: top-level key of card.json.
        data: its new JSON-serializable content.

    Returns:
        The updated card.
    """
    entry_dir = pathlib.Path(entry_dir)
    read_card(entry_dir)  # A clear error before anything is locked or created.
    with zoo_lock(entry_dir.resolve().parent):
        card = read_card(entry_dir)
        card[section] = data
        write_card(entry_dir, card)
    return card


def render_readme(card):
    """The human-readable model card (Markdown) for a card dict."""
    name = card.get("name", "unnamed")
    versions = card.get("saved_model_versions")
    versions = ", ".join(map(str, versions if isinstance(versions, list) else [])) or "?"
    lines = [
        f"# {name}",
        "",
        (
            f"Exported {card.get('created', '?')}; SavedModel version {card.get('version', '?')} "
            f"(versions kept: {versions})."
        ),
        "",
        (
            f'- `{MODEL_FILE}`: `tfjsigr.load_model("{MODEL_FILE}")` (or `keras.saving.load_model` '
            "after `tfjsigr.register_keras_objects()`)"
        ),
        (
            f"- `{SAVED_MODEL_DIR}/<version>/`: TF Serving layout, signature `serving_default`, "
            "input `image` (float32 [batch, H, W, C] in [0, 1]), outputs `logits` and `probabilities`"
        ),
        f"- `{ONNX_FILE}`: same input and output names, dynamic batch (onnxruntime)",
        "",
    ]
    hidden = {"saved_model_versions"}
    rest = [k for k in card if k not in SECTIONS and k not in hidden and _is_section(card[k])]
    for section in [*SECTIONS, *sorted(rest)]:
        if section in card:
            title = section.replace("_", " ").capitalize()
            lines += [f"## {title}", "", *_render_value(card[section]), ""]
    return "\n".join(lines)


def _is_section(value):
    return value is None or isinstance(value, (dict, list))


def _render_value(value):
    if value is None:
        return [PENDING]
    if isinstance(value, dict) and value:
        rows = ["| key | value |", "| --- | --- |"]
        return rows + [f"| {key} | {_format_leaf(v)} |" for key, v in sorted(_flatten(value))]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [line for item in value for line in [*_render_value(item), ""]][:-1]
    return [_format_leaf(value)]


def _flatten(mapping, prefix=""):
    """(dotted key, leaf) pairs of nested dicts."""
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _format_leaf(value):
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        text = ", ".join(_format_leaf(v) for v in value) or "(none)"
    elif isinstance(value, (dict, list)):
        text = "`" + json.dumps(value, sort_keys=True, default=json_default) + "`"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")
