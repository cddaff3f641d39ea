"""Tests of the model repository: which versions are served and how labels follow them."""

import shutil

import numpy as np
import pytest

from tfjsigr.serving import protocol, repository, testing


@pytest.fixture(scope="module")
def built_zoo(tmp_path_factory):
    zoo = tmp_path_factory.mktemp("zoo")
    testing.write_tiny_zoo(zoo, versions=(1, 2))
    return zoo


@pytest.fixture
def repo(built_zoo, tmp_path):
    zoo = tmp_path / "zoo"
    shutil.copytree(built_zoo, zoo)
    models = repository.ModelRepository(zoo, num_versions=2)
    yield zoo, models
    models.close()


def test_a_broken_newest_version_keeps_the_older_ones_served(repo):
    zoo, models = repo
    broken = zoo / "tiny" / "saved_model" / "3"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert models.refresh() == [("tiny", 2), ("tiny", 1)]
    assert models.versions("tiny") == [1, 2]
    assert models.labels("tiny") == {"stable": 1, "canary": 2}
    (failure,) = models.failures().items()
    assert failure[0] == ("tiny", 3) and "\n" not in failure[1]
    assert models.refresh() == []  # Not retried while its files are unchanged.


def test_only_the_latest_versions_are_served_and_old_ones_unloaded(repo):
    zoo, models = repo
    models.refresh()
    testing.save_version(testing.tiny_model(seed=7), zoo / "tiny" / "saved_model", 3)
    assert models.refresh() == [("tiny", 3)]
    assert models.versions("tiny") == [2, 3]
    assert models.served() == {"tiny": [2, 3]}
    assert models.resolve("tiny").version == 3
    assert models.resolve("tiny", label="stable").version == 2
    with pytest.raises(repository.NotFound, match="Specific\\(tiny, 1\\)"):
        models.resolve("tiny", version=1)
    outputs = models.resolve("tiny", version=2).backend.run(np.zeros((2, 28, 28, 1), np.float32))
    assert outputs["logits"].shape == (2, 10)


def test_unknown_names_and_labels(repo):
    _, models = repo
    models.refresh()
    with pytest.raises(repository.NotFound, match="Latest\\(nope\\)"):
        models.resolve("nope")
    # TF Serving answers an unknown label with INVALID_ARGUMENT (HTTP 400), not NOT_FOUND.
    with pytest.raises(protocol.ProtocolError, match="label: beta \\(labels of tiny: canary, stable\\)") as error:
        models.resolve("tiny", label="beta")
    assert error.value.code == "INVALID_ARGUMENT" and error.value.http_status == 400


def test_an_unknown_canary_label_says_when_it_exists():
    message = str(repository._unknown_label("tiny", "canary", {"stable": 1}))
    assert message.startswith("Unrecognized servable version label: canary (labels of tiny: stable;")
    assert "'canary' exists once two versions are served" in message


def _copy_version(zoo, source, version):
    base = zoo / "tiny" / "saved_model"
    shutil.copytree(base / str(source), base / str(version))
    return base / str(version)


def test_versions_that_do_not_verify_against_the_card_are_refused(repo, tmp_path, caplog):
    zoo, models = repo
    unlisted = _copy_version(zoo, 2, 3)  # Not in the card's saved_model_versions.
    outside = tmp_path / "outside"
    shutil.copytree(zoo / "tiny" / "saved_model" / "2", outside)
    (zoo / "tiny" / "saved_model" / "4").symlink_to(outside)
    card = testing.write_card(zoo / "tiny")  # Lists 1-4, with the checksums of 3 and 4.
    (unlisted / "saved_model.pb").write_bytes(b"tampered")  # 3 no longer matches its sha256.
    with caplog.at_level("WARNING", logger="tfjsigr.serving"):
        assert models.refresh() == [("tiny", 2), ("tiny", 1)]
    refused = models.refused()["tiny"]
    assert sorted(refused) == [3, 4]
    assert refused[3] == f"{unlisted / 'saved_model.pb'}: sha256 mismatch (file changed since export)"
    assert refused[4].endswith("4 is a symlink that leads out of the zoo")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all(w.startswith("refusing tiny version ") for w in warnings)
    status = protocol.status_json(models.status(protocol.ModelSpec("tiny")))["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [
        ("2", "AVAILABLE"), ("1", "AVAILABLE"), ("4", "END"), ("3", "END")]
    assert status[3]["status"] == {"error_code": "FAILED_PRECONDITION", "error_message": refused[3]}
    # A card that does not list a version refuses it, even when its files are intact.
    (unlisted / "saved_model.pb").write_bytes((zoo / "tiny" / "saved_model" / "2" / "saved_model.pb").read_bytes())
    card["saved_model_versions"] = [1, 2]
    card["artifacts"] = {k: v for k, v in card["artifacts"].items() if "/3/" not in k and "/4/" not in k}
    from tfjsigr.zoo import card as card_lib
    card_lib.write_json_atomic(zoo / "tiny" / "card.json", card)
    (zoo / "tiny" / "saved_model" / "4").unlink()
    assert models.refresh() == []
    assert models.refused() == {"tiny": {3: "not listed in the card's saved_model_versions [1, 2]"}}
    # Once the card lists it with its checksums, it is served.
    testing.write_card(zoo / "tiny")
    assert models.refresh() == [("tiny", 3)]
    assert models.served() == {"tiny": [2, 3]} and models.refused() == {}


def test_an_entry_without_a_card_or_linked_from_outside_is_refused(tmp_path, built_zoo):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "linked").symlink_to(built_zoo / "tiny")
    shutil.copytree(built_zoo / "tiny", zoo / "nocard")
    (zoo / "nocard" / "card.json").unlink()
    models = repository.ModelRepository(zoo)
    try:
        assert models.refresh() == []
        refused = models.refused()
        assert set(refused) == {"linked", "nocard"}
        assert refused["linked"][2].endswith("linked is a symlink that leads out of the zoo")
        assert "card.json: no model card" in refused["nocard"][2]
    finally:
        models.close()


def test_the_onnx_backend_serves_the_entrys_own_model_onnx(repo):
    zoo, _ = repo
    models = repository.ModelRepository(zoo, backend="onnx")
    try:
        models.refresh()
        newest, older = models.resolve("tiny", version=2), models.resolve("tiny", version=1)
        assert newest.backend.onnx_model == (zoo / "tiny" / "model.onnx").read_bytes()
        assert older.backend.onnx_model != newest.backend.onnx_model  # Converted from its SavedModel.
        assert [s.name for s in newest.signature.outputs] == ["logits", "probabilities"]
        assert newest.signature.input.shape == (None, 28, 28, 1)
    finally:
        models.close()
    (zoo / "tiny" / "model.onnx").write_bytes(b"changed")
    models = repository.ModelRepository(zoo, backend="onnx")
    try:
        models.refresh()
        assert models.served() == {"tiny": [1]}
        assert "model.onnx: sha256 mismatch" in models.refused()["tiny"][2]
    finally:
        models.close()
