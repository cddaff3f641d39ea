import json

import numpy as np
import pytest

from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo import index as index_lib


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
    (tmp_path / "index.json").write_text('{"entries": [{"version": 1}]}')
    with pytest.raises(ValueError, match="no list of named entries"):
        index_lib.read_index(tmp_path)


def test_corrupt_index_is_rebuilt_from_the_cards(tmp_path):
    for name in ("plain", "jr"):
        (tmp_path / name).mkdir()
        card_lib.write_json_atomic(tmp_path / name / "card.json", card(name, clean_accuracy=0.5))
    (tmp_path / ".jr.abc.staging").mkdir()
    (tmp_path / "index.json").write_text("garbage")
    index_lib.upsert_index(tmp_path, index_lib.index_record(card("igr", clean_accuracy=0.6)))
    assert [e["name"] for e in index_lib.read_index(tmp_path)] == ["igr", "jr", "plain"]
