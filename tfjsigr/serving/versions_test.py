"""Tests of version directories and default labels."""

import pytest

from tfjsigr.serving import versions


def test_only_integer_directories_with_a_saved_model_count(tmp_path):
    for name in ("1", "2", "10", ".3.staging", "tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (tmp_path / "4").mkdir()
    assert versions.list_versions(tmp_path) == [1, 2, 10]
    assert versions.list_versions(tmp_path / "missing") == []


def test_default_labels_follow_the_two_latest_versions():
    assert versions.default_labels([]) == {}
    assert versions.default_labels([3]) == {"stable": 3}
    assert versions.default_labels([7, 5]) == {"stable": 5, "canary": 7}
    assert versions.served_versions([1, 5, 3, 2]) == [3, 5]


def test_versions_beyond_int64_are_ignored_and_named_in_a_warning(tmp_path):
    for name in ("1", str(versions.MAX_VERSION), str(versions.MAX_VERSION + 1)):
        (tmp_path / "zoo" / "a" / "saved_model" / name).mkdir(parents=True)
        (tmp_path / "zoo" / "a" / "saved_model" / name / "saved_model.pb").write_bytes(b"")
    assert versions.list_versions(tmp_path / "zoo" / "a" / "saved_model") == [1, versions.MAX_VERSION]
    (warning,) = versions.zoo_warnings(tmp_path / "zoo")
    assert warning.startswith(f"{tmp_path / 'zoo' / 'a' / 'saved_model' / str(versions.MAX_VERSION + 1)}: ")
    assert "int64 range, ignored" in warning


def test_entries_without_a_servable_version_are_named(tmp_path):
    zoo = tmp_path / "zoo"
    (zoo / "served" / "saved_model" / "1").mkdir(parents=True)
    (zoo / "served" / "saved_model" / "1" / "saved_model.pb").write_bytes(b"")
    (zoo / "emptied" / "saved_model").mkdir(parents=True)
    (zoo / "carded").mkdir()
    (zoo / "carded" / "card.json").write_text("{}")
    (zoo / "recipes").mkdir()
    (zoo / "index.json").write_text('{"entries": [{"name": "gone", "version": 1}]}')
    assert list(versions.list_models(zoo)) == ["served"]
    warnings = versions.zoo_warnings(zoo)
    assert [w.split(":")[0] for w in warnings] == [str(zoo / n) for n in ("carded", "emptied", "gone")]
    assert all("no servable SavedModel version" in w for w in warnings)


def test_an_entry_folder_is_not_taken_for_a_zoo(tmp_path):
    (tmp_path / "zoo" / "plain" / "saved_model" / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match="plain is a zoo entry .* pass the zoo folder that holds it"):
        versions.list_models(tmp_path / "zoo" / "plain")
