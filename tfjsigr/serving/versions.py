"""Zoo models as TF Serving sees them: integer version directories and version labels."""

import pathlib

from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo import index as index_lib
from tfjsigr.zoo import layout
from tfjsigr.zoo import verify as verify_lib
from tfjsigr.zoo.layout import MAX_VERSION, SAVED_MODEL_DIR, list_versions

NUM_VERSIONS = 2
STABLE = "stable"
CANARY = "canary"


def list_models(zoo_dir):
    """The zoo's servable models: entries with at least one complete SavedModel version.

    Args:
        zoo_dir: the zoo directory.

    Returns:
        A dict from model name to its base path (`ZOO/<name>/saved_model`), sorted by name.

    Raises:
        FileNotFoundError: `zoo_dir` is not a directory.
        ValueError: `zoo_dir` is one entry of a zoo, not a zoo.
    """
    zoo_dir = pathlib.Path(zoo_dir)
    return {name: zoo_dir / name / SAVED_MODEL_DIR for name in list_model_versions(zoo_dir)}


def list_model_versions(zoo_dir):
    """The zoo's servable models and their complete versions, in one listing of the zoo.

    Returns:
        A dict from model name to its ascending versions (never empty), sorted by name.

    Raises:
        As `list_models`.
    """
    zoo_dir = pathlib.Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise FileNotFoundError(f"{zoo_dir}: no such zoo directory")
    layout.check_is_zoo_not_entry(zoo_dir)
    models = {}
    for entry in sorted(zoo_dir.iterdir()):
        versions = list_versions(entry / SAVED_MODEL_DIR) if layout.is_entry(entry) else []
        if versions:
            models[entry.name] = versions
    return models


def refusal(zoo_dir, name, version, card=None):
    """Why a version must not be served, or None when it verifies against its entry's card.

    A version is refused when its entry, its directory or any of its files is a symlink that
    leads out of the zoo, when the card is missing or does not list the version in
    `saved_model_versions`, or when its files differ from the card's `artifacts` checksums
    (a file changed, missing or not listed), as `tfjsigr zoo verify` checks them.

    Args:
        zoo_dir: the zoo directory.
        name: the entry name.
        version: the int version.
        card: the entry's card when already read, or the error reading it raised (None:
            read here).

    Returns:
        A one-line reason, or None.
    """
    zoo = pathlib.Path(zoo_dir).resolve()
    entry = pathlib.Path(zoo_dir) / name
    version_dir = entry / SAVED_MODEL_DIR / str(version)
    try:
        files = [p for p in version_dir.rglob("*") if not p.is_dir()]
        for path in [entry, version_dir, *files]:
            if not path.resolve().is_relative_to(zoo):
                return f"{path} is a symlink that leads out of the zoo"
        card = card_lib.read_card(entry) if card is None else card
        if isinstance(card, Exception):  # The error of reading it.
            raise card
    except (OSError, ValueError) as error:
        return " ".join(str(error).split())
    listed = card.get("saved_model_versions")
    if not isinstance(listed, list) or version not in listed:
        return f"not listed in the card's saved_model_versions {listed!r}"
    artifacts = card.get("artifacts")
    prefix = f"{SAVED_MODEL_DIR}/{version}/"
    expected = {k: v for k, v in artifacts.items() if k.startswith(prefix)} \
        if isinstance(artifacts, dict) else {}
    on_disk = {prefix + p.relative_to(version_dir).as_posix() for p in files}
    for relative in sorted(on_disk ^ set(expected)):
        return f"{entry / relative}: " + ("missing" if relative in expected
                                          else "not listed in the card's checksums")
    for relative, digest in sorted(expected.items()):
        # zoo verify's own check and words (unreadable, or sha256 mismatch).
        for problem in verify_lib._digest_problems(entry / relative, digest):
            return problem
    return None


def zoo_warnings(zoo_dir):
    """What `list_models` leaves out of a zoo, one message each.

    Args:
        zoo_dir: a zoo directory that `list_models` accepts.

    Returns:
        A list of one-line messages: version directories whose number is beyond TF
        Serving's int64 range (ignored), and entries (folders that hold card.json or
        saved_model/, or that index.json lists) without a servable SavedModel version.
    """
    zoo_dir = pathlib.Path(zoo_dir)
    entries = {p.name for p in zoo_dir.iterdir() if layout.is_entry(p)}
    messages = [
        f"{path}: version number beyond TF Serving's int64 range, ignored"
        for name in sorted(entries) for path in _out_of_range_versions(zoo_dir / name)
    ]
    listed, index_problem = _index_entries(zoo_dir)
    messages += [index_problem] if index_problem else []
    messages += [
        f"{zoo_dir / name}: no servable SavedModel version "
        f"({SAVED_MODEL_DIR}/<version>/saved_model.pb), left out"
        for name in sorted((entries | listed) - set(list_models(zoo_dir)))
    ]
    return messages


def _out_of_range_versions(entry_dir):
    base_path = entry_dir / SAVED_MODEL_DIR
    if not base_path.is_dir():
        return []
    return sorted(p for p in base_path.iterdir()
                  if p.name.isascii() and p.name.isdigit() and int(p.name) > MAX_VERSION)


def _index_entries(zoo_dir):
    """(names of the entries index.json lists, a message when it cannot be read or None)."""
    try:
        records = index_lib.read_index(zoo_dir)
    except ValueError as error:
        return set(), f"{error}; its entries are not checked"
    return {r.get("path") or r["name"] for r in records}, None


def served_versions(versions, num_versions=NUM_VERSIONS):
    """The versions a `latest { num_versions }` policy serves: the highest ones."""
    return sorted(versions)[-num_versions:]


def default_labels(versions):
    """The default version labels for a list of served versions.

    `stable` is the highest version when only one is served; once a newer one is served it
    becomes `canary` and `stable` stays on the one before it.

    Args:
        versions: the served versions.

    Returns:
        A dict from label to version.
    """
    versions = sorted(versions)
    if not versions:
        return {}
    if len(versions) == 1:
        return {STABLE: versions[0]}
    return {STABLE: versions[-2], CANARY: versions[-1]}
