import json

import numpy as np
import pytest

from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo import index as index_lib
from tfjsigr.zoo import layout as layout_lib


def card(name, version=1, **metrics):
    return {
        "name": name,
        "version": version,
        "created": "2026-01-01T00:00:00+00:00",
        "metrics": metrics,
    }


def test_record_keeps_numeric_metrics_only():
    record = index_lib.index_record(
        card("jr", 3, clean_accuracy=np.float32(0.5), seconds=12, note="x", ok=True, curve=[1, 2])
    )
    assert record == {
        "name": "jr",
        "version": 3,
        "path": "jr",
        "created": "2026-01-01T00:00:00+00:00",
        "metrics": {"clean_accuracy": 0.5, "seconds": 12},
    }


def test_upsert_replaces_by_name_and_sorts(tmp_path):
    index_lib.upsert_index(tmp_path, index_lib.index_record(card("plain", clean_accuracy=0.8)))
    index_lib.upsert_index(tmp_path, index_lib.index_record(card("igr", clean_accuracy=0.7)))
    index_lib.upsert_index(tmp_path, index_lib.index_record(card("plain", 2, clean_accuracy=0.85)))
    entries = index_lib.read_index(tmp_path)
    assert [(e["name"], e["version"], e["metrics"]["clean_accuracy"]) for e in entries] == [
        ("igr", 1, 0.7),
        ("plain", 2, 0.85),
    ]
    assert json.loads((tmp_path / "index.json").read_text())["format_version"] == 1


def test_read_index_of_new_missing_and_corrupt_zoos(tmp_path):
    assert index_lib.read_index(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="no such zoo directory"):
        index_lib.read_index(tmp_path / "absent")
    (tmp_path / "index.json").write_text("{")
    with pytest.raises(ValueError, match="index.json: corrupt zoo index"):
        index_lib.read_index(tmp_path)
    (tmp_path / "index.json").write_text('{"entries": {"jr": 1}}')
    with pytest.raises(ValueError, match="no list of named entries"):
        index_lib.read_index(tmp_path)


@pytest.mark.parametrize(
    "entries, match",
    [
        ([{"name": "a", "version": 1}, {"name": 3, "version": 1}], r"entries\[1\]\.name .* got 3"),
        ([{"name": None, "version": 1}], r"entries\[0\]\.name .* got None"),
        ([{"name": "", "version": 1}], r"\.name"),
        ([{"name": "../up", "version": 1}], r"\.name"),
        ([7], r"entries\[0\]: expected a JSON object, got a number"),
        ([{"name": "jr"}], r"\.version must be a positive integer, got None"),
        ([{"name": "jr", "version": [1]}], r"\.version .* got \[1\]"),
        ([{"name": "jr", "version": True}], r"\.version"),
        ([{"name": "jr", "version": 1, "path": "/tmp/other/plain"}], r"\.path must be a relative"),
        ([{"name": "jr", "version": 1, "path": "../other/jr"}], r"\.path"),
        ([{"name": "jr", "version": 1, "path": "."}], r"\.path"),
        ([{"name": "jr", "version": 1, "metrics": []}], r"\.metrics must be a JSON object"),
        ([{"name": "jr", "version": 1, "created": 5}], r"\.created"),
        ([{"name": "jr", "version": 1}, {"name": "jr", "version": 2}], "listed twice"),
    ],
)
def test_malformed_index_records_are_value_errors_naming_the_key(tmp_path, entries, match):
    (tmp_path / "index.json").write_text(json.dumps({"entries": entries}))
    with pytest.raises(ValueError, match="index.json: corrupt zoo index .*" + match):
        index_lib.read_index(tmp_path)


def test_index_that_is_a_directory_or_from_a_newer_format(tmp_path):
    (tmp_path / "index.json").write_text('{"format_version": 2, "entries": []}')
    with pytest.raises(ValueError, match="format_version 2 is newer"):
        index_lib.read_index(tmp_path)
    (tmp_path / "index.json").unlink()
    (tmp_path / "index.json").mkdir()
    with pytest.raises(ValueError, match="index.json: corrupt zoo index \\(not a file\\)"):
        index_lib.read_index(tmp_path)


def test_entry_dir_stays_inside_the_zoo(tmp_path):
    assert layout_lib.entry_dir(tmp_path, {"name": "jr", "version": 1}) == tmp_path / "jr"
    assert layout_lib.entry_dir(tmp_path, {"name": "jr", "path": "sub/jr"}) == tmp_path / "sub/jr"
    assert [index_lib.is_inside_path(p) for p in ("jr", "a/b", "/jr", "a/../..", "", None)] == [
        True, True, False, False, False, False
    ]  # fmt: skip


def test_corrupt_index_is_refused_and_kept(tmp_path):
    (tmp_path / "index.json").write_text('{"entries": [{"name": "a", "version": 1}, {"name": 3}]}')
    before = (tmp_path / "index.json").read_text()
    with pytest.raises(ValueError, match="index.json: corrupt zoo index"):
        index_lib.upsert_index(tmp_path, index_lib.index_record(card("igr")))
    assert (tmp_path / "index.json").read_text() == before


def test_missing_index_is_rebuilt_from_the_sound_cards(tmp_path):
    for name in ("plain", "jr"):
        (tmp_path / name).mkdir()
        card_lib.write_json_atomic(tmp_path / name / "card.json", card(name, clean_accuracy=0.5))
    (tmp_path / "copy").mkdir()  # A card naming another entry.
    card_lib.write_json_atomic(tmp_path / "copy" / "card.json", card("jr"))
    (tmp_path / "broken").mkdir()
    card_lib.write_json_atomic(tmp_path / "broken" / "card.json", card("broken", version="1"))
    (tmp_path / ".jr.abc.staging").mkdir()
    index_lib.upsert_index(tmp_path, index_lib.index_record(card("igr", clean_accuracy=0.6)))
    assert [e["name"] for e in index_lib.read_index(tmp_path)] == ["igr", "jr", "plain"]


def test_metrics_that_are_not_finite_stay_out_of_the_index(tmp_path):
    record = index_lib.index_record(card("jr", clean_accuracy=float("inf"), pgd=np.float64("nan")))
    assert record["metrics"] == {}
    index_lib.write_index(tmp_path, [{**record, "metrics": {"hand_written": float("inf")}}])
    assert "Infinity" not in (tmp_path / "index.json").read_text()
    assert index_lib.read_index(tmp_path)[0]["metrics"] == {"hand_written": None}


@pytest.mark.parametrize(
    "layout, found",
    [
        ({"z/index.json": '{"entries": []}', "z/e/card.json": "{}"}, ("z/e", "card.json")),
        ({"z/index.json": '{"entries": []}'}, ("z", "index.json")),
        ({"z/.zoo.lock": ""}, ("z", ".zoo.lock")),
        ({"z/index.json": '{"pages": []}'}, None),  # Some other index.json.
        ({}, None),
    ],
)
def test_zoo_folder_around_a_path(tmp_path, layout, found):
    for relative, text in layout.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    expected = found and ((tmp_path / found[0]).resolve(), found[1])
    assert layout_lib.zoo_folder_around(tmp_path / "z" / "e" / "run" / "new") == expected
