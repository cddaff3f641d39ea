"""Tests of version directories and default labels."""

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
