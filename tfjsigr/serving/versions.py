"""Zoo models as TF Serving sees them: integer version directories and version labels."""

import pathlib

SAVED_MODEL_DIR = "saved_model"
NUM_VERSIONS = 2
STABLE = "stable"
CANARY = "canary"


def is_complete_version(path):
    """Whether `path` is a version directory TF Serving would load.

    Exporters write a version under a temporary name and rename it into place, so only
    all-digit names count; the SavedModel file must also be there.

    Args:
        path: a directory under a model's base path.

    Returns:
        True when the name is an integer and `saved_model.pb` exists in it.
    """
    path = pathlib.Path(path)
    return path.name.isdigit() and (path / "saved_model.pb").is_file()


def list_versions(base_path):
    """The complete versions under a model's base path, ascending.

    Args:
        base_path: the `saved_model` directory of a zoo entry.

    Returns:
        A sorted list of int versions; empty when `base_path` does not exist.
    """
    base_path = pathlib.Path(base_path)
    if not base_path.is_dir():
        return []
    return sorted(int(p.name) for p in base_path.iterdir() if is_complete_version(p))


def list_models(zoo_dir):
    """The zoo's servable models: entries with at least one complete SavedModel version.

    Args:
        zoo_dir: the zoo directory.

    Returns:
        A dict from model name to its base path (`ZOO/<name>/saved_model`), sorted by name.

    Raises:
        FileNotFoundError: `zoo_dir` is not a directory.
    """
    zoo_dir = pathlib.Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise FileNotFoundError(f"{zoo_dir}: no such zoo directory")
    models = {}
    for entry in sorted(zoo_dir.iterdir()):
        base_path = entry / SAVED_MODEL_DIR
        if not entry.name.startswith(".") and list_versions(base_path):
            models[entry.name] = base_path
    return models


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
