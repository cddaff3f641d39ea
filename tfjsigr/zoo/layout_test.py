import pathlib

import pytest

from tfjsigr.zoo import layout


def test_default_entry_name():
    assert layout.default_entry_name(pathlib.Path("runs/x/model.keras")) == "x"
    assert layout.default_entry_name(pathlib.Path("models/dyn.keras")) == "dyn"


def make(folder, *files):
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).mkdir() if name == layout.SAVED_MODEL_DIR else (folder / name).write_text("{}")
    return folder


def test_one_rule_decides_what_is_an_entry_and_what_is_a_zoo(tmp_path):
    zoo = tmp_path / "zoo"
    card_only = make(zoo / "a", layout.CARD_FILE)
    keras_only = make(zoo / "b", layout.MODEL_FILE)
    saved_only = make(zoo / "c", layout.SAVED_MODEL_DIR)
    hidden = make(zoo / ".a.x.staging", layout.CARD_FILE)
    staging_old = make(zoo / "a.staging.old", layout.CARD_FILE)
    other = make(zoo / "notes")
    assert all(layout.is_entry(p) for p in (card_only, keras_only, saved_only))
    assert not any(layout.is_entry(p) for p in (hidden, staging_old, other, zoo))
    assert layout.is_zoo(zoo) and not layout.is_zoo(card_only) and not layout.is_zoo(other)
    with pytest.raises(ValueError, match="is a zoo entry"):
        layout.check_is_zoo_not_entry(card_only)
    assert layout.entries(zoo) == {"b": keras_only}  # No index: the entries holding a model.


def test_versions_count_complete_integer_folders_only(tmp_path):
    base = tmp_path / layout.SAVED_MODEL_DIR
    for name, complete in (("1", True), ("2", False), ("10", True), ("x", True), (str(2**63), True)):
        (base / name).mkdir(parents=True)
        if complete:
            (base / name / layout.SAVED_MODEL_PROTO).write_bytes(b"")
    assert layout.list_versions(base) == [1, 10]
    assert layout.list_versions(tmp_path / "absent") == []


def test_model_file_and_load_errors_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="model not found"):
        layout.model_file(tmp_path)
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a .keras file"):
        layout.model_file(tmp_path / "weights.h5")
    (tmp_path / layout.MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a loadable Keras model \\(not a .keras \\(zip\\) archive\\)"):
        layout.load_model(tmp_path)
