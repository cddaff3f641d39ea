"""The zoo index, `zoo_dir/index.json`: one record per entry, written atomically."""

import math
import numbers
import pathlib

from tfjsigr import io
from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo.layout import CARD_FILE, INDEX_FILE, NAME_PATTERN

FORMAT_VERSION = 1


def read_index(zoo_dir):
    """The entries listed in a zoo's index, sorted by name.

    Args:
        zoo_dir: the zoo directory.

    Returns:
        A list of dicts with keys `name`, `version` (latest SavedModel version), `path`
        (relative to `zoo_dir`, inside it), `created` and `metrics` (the card's numeric
        metrics); `path`, `created` and `metrics` may be absent from hand-written records.
        An existing zoo without an index yet is empty.

    Raises:
        FileNotFoundError: `zoo_dir` does not exist.
        ValueError: index.json is corrupt: not JSON, or a record that is not what
            `index_record` writes (the message names the file and the offending key).
    """
    zoo_dir = pathlib.Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise FileNotFoundError(f"{zoo_dir}: no such zoo directory")
    path = zoo_dir / INDEX_FILE
    if not path.exists():
        return []
    index = io.read_json(path, "zoo index")
    entries = index.get("entries") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: corrupt zoo index (no list of named entries)")  # noqa: TRY004
    problem = _format_problem(index) or _entries_problem(entries)
    if problem:
        raise ValueError(f"{path}: corrupt zoo index ({problem})")
    return sorted(entries, key=lambda e: e["name"])


def _format_problem(index):
    version = index.get("format_version", FORMAT_VERSION)
    if not is_positive_int(version):
        return f"format_version must be a positive integer, got {version!r}"
    if version > FORMAT_VERSION:
        return f"format_version {version} is newer than this tfjsigr reads ({FORMAT_VERSION})"
    return None


def _entries_problem(entries):
    """What is wrong with the list of records, or None."""
    names = set()
    for i, record in enumerate(entries):
        problem = record_problem(record)
        if problem:
            return f"entries[{i}]{problem}"
        if record["name"] in names:
            return f"entries[{i}]: name {record['name']!r} is listed twice"
        names.add(record["name"])
    return None


def record_problem(record):
    """What is wrong with one index record (as ".key: ..." or ": ..."), or None."""
    if not isinstance(record, dict):
        return f": expected a JSON object, got {_json_type(record)}"
    name = record.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        return f".name must be an entry name (letters, digits, '.', '_', '-'), got {name!r}"
    if not is_positive_int(record.get("version")):
        return f".version must be a positive integer, got {record.get('version')!r}"
    if "path" in record and not is_inside_path(record["path"]):
        return f".path must be a relative path inside the zoo, got {record['path']!r}"
    if record.get("created") is not None and not isinstance(record["created"], str):
        return f".created must be a string, got {record['created']!r}"
    if "metrics" in record and not isinstance(record["metrics"], dict):
        return f".metrics must be a JSON object, got {_json_type(record['metrics'])}"
    return None


def is_inside_path(path):
    """Whether `path` is a relative path that stays inside the directory it is relative to."""
    if not isinstance(path, str) or not path or "\\" in path:
        return False
    parts = pathlib.PurePosixPath(path).parts
    return not path.startswith("/") and parts != () and ".." not in parts and parts != (".",)


def is_positive_int(value):
    """Whether `value` is an int >= 1 (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _json_type(value):
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, numbers.Number) else "?")


def index_record(card):
    """The index record of an entry, from its card (metrics: its finite numbers only)."""
    metrics = card.get("metrics") or {}
    return {
        "name": card["name"],
        "version": card["version"],
        "path": card["name"],
        "created": card.get("created"),
        "metrics": {
            key: value
            for key, value in metrics.items()
            if isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
        },
    }


def write_index(zoo_dir, entries):
    """Writes `index.json` atomically (callers hold `card.zoo_lock(zoo_dir)`).

    Numbers that are not finite are written as null (standard JSON has no NaN or Infinity).
    """
    entries = sorted(entries, key=lambda e: e["name"])
    index = io.to_json({"format_version": FORMAT_VERSION, "entries": entries})
    io.write_json_atomic(pathlib.Path(zoo_dir) / INDEX_FILE, index)


def with_record(zoo_dir, record):
    """The index's entries with one entry's record added or replaced (nothing is written).

    A zoo without index.json yet gets the records of the entries on disk, so a deleted index
    is rebuilt from the cards. Callers hold `card.zoo_lock(zoo_dir)`.

    Raises:
        ValueError: index.json is corrupt (fix it, or delete it to rebuild it from the cards).
    """
    if (pathlib.Path(zoo_dir) / INDEX_FILE).exists():
        entries = read_index(zoo_dir)
    else:
        entries = scan_entries(zoo_dir)
    return [e for e in entries if e["name"] != record["name"]] + [record]


def upsert_index(zoo_dir, record):
    """Adds or replaces one entry's record (callers hold `card.zoo_lock(zoo_dir)`).

    Raises:
        ValueError: index.json is corrupt; it is left as it is.
    """
    entries = with_record(zoo_dir, record)
    write_index(zoo_dir, entries)
    return entries


def scan_entries(zoo_dir):
    """Index records of every entry directory with a sound card (hidden ones skipped)."""
    records = []
    for entry_path in sorted(pathlib.Path(zoo_dir).iterdir()):
        if entry_path.name.startswith(".") or not (entry_path / CARD_FILE).is_file():
            continue
        try:
            record = index_record(card_lib.read_card(entry_path))
        except (OSError, ValueError, KeyError, AttributeError):
            continue
        if record["name"] == entry_path.name and record_problem(record) is None:
            records.append(record)
    return records


def listing(entries):
    """The entries of an index as a table: name, version, clean, AutoAttack and PGD accuracy,
    ||J||_F, creation time."""
    lines = [f"{'name':12} {'version':>7} {'clean':>7} {'AA@0.1':>8} {'PGD-20':>8} {'||J||_F':>8}  created"]
    for entry in entries:
        metrics = entry.get("metrics", {})
        lines.append(
            f"{entry['name']:12} {entry.get('version', '?'):>7} {_figure(metrics, 'clean_accuracy', 3)} "
            f"{_figure(metrics, 'autoattack_accuracy', 3, 8)} "
            f"{_figure(metrics, 'pgd_accuracy', 3, 8)} {_figure(metrics, 'mean_jacobian_norm', 2, 8)}"
            f"  {entry.get('created') or ''}"
        )
    return "\n".join(lines)


def _figure(metrics, key, digits, width=7):
    value = metrics.get(key)
    return f"{value:{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"
