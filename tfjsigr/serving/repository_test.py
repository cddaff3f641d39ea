"""Tests of the model repository: which versions are served and how labels follow them."""

import shutil

import numpy as np
import pytest

from tfjsigr.serving import repository, testing


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
    with pytest.raises(repository.NotFound, match="label: beta \\(labels of tiny: canary, stable\\)"):
        models.resolve("tiny", label="beta")


def test_an_unknown_canary_label_says_when_it_exists():
    message = repository._unknown_label("tiny", "canary", {"stable": 1})
    assert message.startswith("Unrecognized servable version label: canary (labels of tiny: stable;")
    assert "'canary' exists once two versions are served" in message
