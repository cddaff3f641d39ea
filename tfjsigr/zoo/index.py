"""The zoo index, `zoo_dir/index.json`: one record per entry, written atomically."""

import json
import numbers
import pathlib

from tfjsigr.zoo import card as card_lib

INDEX_FILE = "index.json"
FORMAT_VERSION = 1


def read_index(zoo_dir):
    """The entries listed in a zoo's index, sorted by name.

    Args:
        zoo_dir: the zoo directory.

    Returns:
        A list of dicts with keys `name`, `version` (latest SavedModel version), `path`
        (relative to `zoo_dir`), `created` and `metrics` (the card's numeric metrics).
        An existing zoo without an index yet is empty.

    Raises:
        FileNotFoundError: `zoo_dir` does not exist.
        ValueError: index.json is corrupt.
    """
    zoo_dir = pathlib.Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise FileNotFoundError(f"{zoo_dir}: no such zoo directory")
    path = zoo_dir / INDEX_FILE
    if not path.exists():
        return []
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: corrupt zoo index ({error})") from None
    entries = index.get("entries") if isinstance(index, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and "name" in e for e in entries
    ):
        raise ValueError(f"{path}: corrupt zoo index (no list of named entries)")
    return sorted(entries, key=lambda e: e["name"])


def index_record(card):
    """The index record of an entry, from its card."""
    metrics = card.get("metrics") or {}
    return {
        "name": card["name"],
        "version": card["version"],
        "path": card["name"],
        "created": card.get("created"),
        "metrics": {
            key: value
            for key, value in metrics.items()
            if isinstance(value, numbers.Number) and not isinstance(value, bool)
        },
    }


def write_index(zoo_dir, entries):
    """Writes `index.json` atomically (callers hold `card.zoo_lock(zoo_dir)`)."""
    entries = sorted(entries, key=lambda e: e["name"])
    card_lib.write_json_atomic(
        pathlib.Path(zoo_dir) / INDEX_FILE, {"format_version": FORMAT_VERSION, "entries": entries}
    )


def upsert_index(zoo_dir, record):
    """Adds or replaces one entry's record (callers hold `card.zoo_lock(zoo_dir)`).

    A corrupt index is rebuilt from the cards on disk rather than blocking every export.
    """
    try:
        entries = read_index(zoo_dir)
    except ValueError:
        entries = scan_entries(zoo_dir)
    entries = [e for e in entries if e["name"] != record["name"]] + [record]
    write_index(zoo_dir, entries)
    return entries


def scan_entries(zoo_dir):
    """Index records of every entry directory with a readable card (hidden ones skipped)."""
    records = []
    for entry_dir in sorted(pathlib.Path(zoo_dir).iterdir()):
        if entry_dir.name.startswith(".") or not (entry_dir / card_lib.CARD_FILE).is_file():
            continue
        try:
            records.append(index_record(card_lib.read_card(entry_dir)))
        except (ValueError, KeyError):
            continue
    return records
