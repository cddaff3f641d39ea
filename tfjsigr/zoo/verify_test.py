import json
import shutil

import numpy as np
import pytest

from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo import export as export_lib
from tfjsigr.zoo import verify as verify_lib
from tfjsigr.zoo.export_test import SHAPE, export, tiny_model, tiny_trained_model


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    zoo_dir = tmp_path_factory.mktemp("zoo")
    export(tiny_trained_model(seed=7), zoo_dir, name="jr")
    return zoo_dir


@pytest.fixture
def zoo_dir(pristine, tmp_path):
    """A private copy of the exported zoo, free to tamper with."""
    return shutil.copytree(pristine, tmp_path / "zoo")


def test_fresh_zoo_passes(pristine):
    assert verify_lib.verify_zoo(pristine) == []
    assert verify_lib.verify_entry(pristine / "jr") == []


def test_flipped_byte_in_onnx_is_reported(zoo_dir):
    path = zoo_dir / "jr" / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_lib.verify_zoo(zoo_dir)
    assert f"{path}: sha256 mismatch (file changed since export)" in problems


def test_tampered_saved_model_variables_are_reported(zoo_dir):
    path = zoo_dir / "jr" / "saved_model" / "1" / "variables" / "variables.index"
    path.write_bytes(path.read_bytes() + b"\0")
    problems = verify_lib.verify_zoo(zoo_dir)
    assert any(p.startswith(f"{path}: sha256 mismatch") for p in problems)
    assert any("saved_model/1: cannot run" in p for p in problems), problems


def test_corrupt_card_is_reported(zoo_dir):
    (zoo_dir / "jr" / "card.json").write_text('{"name": "jr", ')
    problems = verify_lib.verify_zoo(zoo_dir)
    assert any("card.json: corrupt model card" in p for p in problems), problems


def test_card_missing_sections_is_reported(zoo_dir):
    (zoo_dir / "jr" / "card.json").write_text(json.dumps({"name": "jr"}))
    (problem,) = verify_lib.verify_entry(zoo_dir / "jr")
    assert "corrupt model card (missing" in problem and "artifacts" in problem


def test_consistent_but_wrong_onnx_fails_parity(zoo_dir):
    """Checksums can be recomputed by whoever swaps a file; the parity check cannot be fooled."""
    entry = zoo_dir / "jr"
    other = tiny_model(seed=8).model
    export_lib.write_onnx(export_lib.serving_function(other, SHAPE), entry / "model.onnx")
    card_lib.update_card(entry, "artifacts", verify_lib.checksums(entry))
    problems = verify_lib.verify_zoo(zoo_dir)
    assert problems and all(p.startswith(f"{entry}/model.onnx: max_abs_") for p in problems)
    assert any("max_abs_logit_diff" in p for p in problems), problems


def test_changed_keras_model_drifts_from_recorded_logits(zoo_dir):
    entry = zoo_dir / "jr"
    tiny_model(seed=9).save(entry / "model.keras")
    card_lib.update_card(entry, "artifacts", verify_lib.checksums(entry))
    problems = verify_lib.verify_zoo(zoo_dir)
    assert any("model.keras: logits differ from those recorded" in p for p in problems), problems
    # The other runtimes are compared with the model.keras on disk, so they disagree as well.
    assert any("model.onnx: max_abs_logit_diff" in p for p in problems), problems


def test_card_updates_keep_the_entry_valid(zoo_dir):
    card_lib.update_card(zoo_dir / "jr", "robustness", {"pgd_eps_0.1": 0.4})
    assert verify_lib.verify_zoo(zoo_dir) == []


def test_edited_readme_and_unlisted_file_are_reported(zoo_dir):
    entry = zoo_dir / "jr"
    (entry / "README.md").write_text("# hand-edited\n")
    (entry / "saved_model" / "1" / "extra.bin").write_bytes(b"x")
    problems = verify_lib.verify_entry(entry)
    assert f"{entry / 'README.md'}: missing or out of date with card.json" in problems
    assert f"{entry / 'saved_model/1/extra.bin'}: not listed in the card's checksums" in problems


def test_missing_saved_model_version_is_reported(zoo_dir):
    shutil.rmtree(zoo_dir / "jr" / "saved_model" / "1")
    problems = verify_lib.verify_entry(zoo_dir / "jr")
    assert any("versions on disk [] do not match" in p for p in problems), problems
    assert any("saved_model/1/saved_model.pb: missing" in p for p in problems), problems


def test_index_inconsistencies_are_reported(zoo_dir):
    index_path = zoo_dir / "index.json"
    index = json.loads(index_path.read_text())
    index["entries"][0]["version"] = 5
    index["entries"].append({"name": "ghost", "version": 1, "path": "ghost"})
    index_path.write_text(json.dumps(index))
    problems = verify_lib.verify_zoo(zoo_dir)
    assert f"{index_path}: record of 'jr' does not match its card" in problems
    assert f"{index_path}: lists 'ghost', which has no entry directory" in problems
    index_path.unlink()
    assert verify_lib.verify_zoo(zoo_dir) == [f"{index_path}: missing"]


def test_unlisted_entry_and_empty_or_missing_zoo(zoo_dir, tmp_path):
    shutil.copytree(zoo_dir / "jr", zoo_dir / "copy")
    problems = verify_lib.verify_zoo(zoo_dir)
    assert f"{zoo_dir / 'index.json'}: entry 'copy' is not listed" in problems
    assert f"{zoo_dir / 'copy'}: card names the entry 'jr'" in problems
    (tmp_path / "empty").mkdir()
    assert verify_lib.verify_zoo(tmp_path / "empty") == [
        f"{tmp_path / 'empty'}: no entries to verify"
    ]
    with pytest.raises(FileNotFoundError, match="no such zoo directory"):
        verify_lib.verify_zoo(tmp_path / "absent")


def test_staging_folders_left_by_an_interrupted_export_are_reported(zoo_dir):
    for leftover in (".jr.abc123.staging", ".jr.def456.staging.old"):
        (zoo_dir / leftover).mkdir()
    (zoo_dir / ".notes").mkdir()
    assert verify_lib.verify_zoo(zoo_dir) == [
        f"{zoo_dir / leftover}: left behind by an interrupted export; delete it (unless an "
        "export is running)"
        for leftover in (".jr.abc123.staging", ".jr.def456.staging.old")
    ]


def test_parity_figures():
    logits = np.array([[0.0, 1.0], [2.0, -1.0]], np.float32)
    exact = verify_lib.parity(
        logits, {"logits": logits, "probabilities": export_lib._softmax(logits)}
    )
    assert exact["images"] == 2 and exact["max_abs_logit_diff"] == 0.0
    assert exact["max_abs_probability_diff"] < 1e-7
    off = verify_lib.parity(
        logits, {"logits": logits + [[0, 3e-4], [0, 0]], "probabilities": logits}
    )
    assert off["max_abs_logit_diff"] == pytest.approx(3e-4, rel=1e-3)
    failures = verify_lib.parity_failures({"onnx": off})
    assert len(failures) == 2 and failures[0].startswith("onnx: max_abs_logit_diff 0.0003 exceeds")
    nan = {"onnx": {"images": 1, "max_abs_logit_diff": float("nan")}}
    assert verify_lib.parity_failures(nan) == [
        "onnx: max_abs_logit_diff nan exceeds 0.0001 on 1 images"
    ]


def edit_card(entry, **changes):
    card = json.loads((entry / "card.json").read_text())
    card.update(changes)
    card_lib.write_card(entry, card)  # README kept in step: only the edited key is at fault.
    return card


@pytest.mark.parametrize(
    "model, match",
    [
        ([1], "model must be a JSON object, got [1] (list)"),
        ({"input": {"shape": 5}}, "no input shape to draw random images from"),
    ],
)
def test_malformed_model_section_is_a_problem_not_a_crash(zoo_dir, model, match):
    entry = zoo_dir / "jr"
    (entry / "parity_sample.npz").unlink()  # Forces the shape to come from the card.
    edit_card(entry, model=model)
    problems = verify_lib.verify_zoo(zoo_dir)
    assert any(match in p for p in problems), problems
    assert any("parity_sample.npz: missing" in p for p in problems), problems


def test_version_of_the_wrong_type_is_shown_with_its_type(zoo_dir):
    edit_card(zoo_dir / "jr", version="1")
    problems = verify_lib.verify_entry(zoo_dir / "jr")
    assert any("version must be a positive integer, got '1' (str)" in p for p in problems)
    assert any("saved_model_versions [1] and version '1'" in p for p in problems), problems


def test_one_broken_entry_does_not_stop_the_others(zoo_dir, monkeypatch):
    (zoo_dir / "broken").mkdir()
    (zoo_dir / "broken" / "card.json").mkdir()
    (zoo_dir / "jr" / "README.md").write_text("# hand-edited\n")
    problems = verify_lib.verify_zoo(zoo_dir)
    assert f"{zoo_dir / 'broken' / 'card.json'}: corrupt model card (not a file)" in problems
    assert f"{zoo_dir / 'index.json'}: entry 'broken' is not listed" in problems
    assert f"{zoo_dir / 'jr' / 'README.md'}: missing or out of date with card.json" in problems

    def unforeseen(entry_dir, tolerance):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(verify_lib, "verify_entry", unforeseen)
    assert f"{zoo_dir / 'jr'}: cannot verify (RuntimeError: boom)" in verify_lib.verify_zoo(zoo_dir)


def test_artifact_paths_outside_the_entry_are_reported(zoo_dir):
    card = json.loads((zoo_dir / "jr" / "card.json").read_text())
    edit_card(zoo_dir / "jr", artifacts={**card["artifacts"], "../index.json": "0" * 64})
    problems = verify_lib.verify_entry(zoo_dir / "jr")
    assert problems == [
        f"{zoo_dir / 'jr' / 'card.json'}: artifact '../index.json' is outside the entry"
    ]


def test_malformed_index_is_reported_and_entries_still_verified(zoo_dir):
    (zoo_dir / "index.json").write_text('{"entries": [{"name": "jr", "version": [1]}]}')
    (zoo_dir / "jr" / "README.md").write_text("# hand-edited\n")
    problems = verify_lib.verify_zoo(zoo_dir)
    assert any(p.startswith(f"{zoo_dir / 'index.json'}: corrupt zoo index") for p in problems)
    assert any("README.md: missing or out of date" in p for p in problems), problems
