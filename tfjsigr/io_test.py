import json

import numpy as np
import pytest

from tfjsigr import io


def test_write_json_atomic_encodes_numpy_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "data.json"
    io.write_json_atomic(path, {"accuracy": np.float32(0.5), "counts": np.arange(3)})
    assert json.loads(path.read_text()) == {"accuracy": 0.5, "counts": [0, 1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "data.json"
    io.write_json_atomic(path, {"a": 1})

    def full_disk(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        io.write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_atomic_path_removes_the_temporary_when_the_writer_fails(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(path) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".keras")
        temporary.write_text("half")
        raise RuntimeError("killed while writing")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[1]", "corrupt run file \\(not a JSON object\\)"),
        ("{not json", "corrupt run file \\(Expecting property name"),
        (b"\xff\xfe", "corrupt run file \\('utf-8' codec"),
        ("directory", "corrupt run file \\(not a file\\)"),
    ],
)
def test_read_json_object_names_the_file_and_the_problem(tmp_path, content, expected):
    path = tmp_path / "recipe.json"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=f"^{path}: {expected}"):
        io.read_json_object(path, "run file")


def test_read_json_of_a_missing_file(tmp_path):
    assert io.read_json_object(tmp_path / "absent.json", missing_ok=True) == {}
    with pytest.raises(FileNotFoundError, match="absent.json: no such model card"):
        io.read_json(tmp_path / "absent.json", "model card")
