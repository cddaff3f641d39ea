"""Model cards: `card.json` in each zoo entry, updated atomically by section."""

import json
import os
import pathlib
import tempfile

CARD_FILE = "card.json"


def write_json_atomic(path, data):
    """Writes JSON to a temporary file beside `path`, then renames it over `path`."""
    path = pathlib.Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def read_card(entry_dir):
    """The card of a zoo entry as a dict.

    Raises:
        FileNotFoundError: the entry has no card.
        ValueError: the card is not valid JSON.
    """
    path = pathlib.Path(entry_dir) / CARD_FILE
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: corrupt model card ({error})") from None


def update_card(entry_dir, section, data):
    """Replaces one top-level section of an entry's card (e.g. "robustness"), atomically."""
    card = read_card(entry_dir)
    card[section] = data
    write_json_atomic(pathlib.Path(entry_dir) / CARD_FILE, card)
    return card
