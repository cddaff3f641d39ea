import hashlib
import json
import shutil

import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf

import tfjsigr
from tfjsigr.architectures import small_cnn
from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo import export as export_lib
from tfjsigr.zoo import index as index_lib
from tfjsigr.zoo import verify as verify_lib

SHAPE = (16, 16, 1)


def tiny_model(seed=0, penalties=()):
    """A freshly initialized RegularizedModel on 16x16 inputs (4 classes)."""
    keras.utils.set_random_seed(seed)
    backbone = small_cnn(input_shape=SHAPE, num_classes=4, filters=(4, 8), dense=16)
    return tfjsigr.RegularizedModel(backbone, penalties=list(penalties))


def tiny_trained_model(seed=0, penalties=("jacobian",)):
    """A few steps of fit on random data: a RegularizedModel with trained weights and optimizer."""
    model = tiny_model(seed, penalties)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(64, *SHAPE)).astype(np.float32)
    model.fit(x, rng.integers(0, 4, 64), batch_size=16, epochs=1, verbose=0)
    return model


def sample_images(count=48, seed=1):
    return np.random.default_rng(seed).uniform(size=(count, *SHAPE)).astype(np.float32)


def export(model, zoo_dir, name="jr", metrics=None):
    metrics = (
        {"clean_accuracy": np.float32(0.5), "pgd_accuracy": 0.25} if metrics is None else metrics
    )
    recipe = {"architecture": "small_cnn", "penalties": [{"type": "jacobian", "weight": 0.01}]}
    return export_lib.export_entry(
        model, zoo_dir, name, recipe, metrics, sample_images(), "random 16x16 images"
    )


@pytest.fixture(scope="module")
def model():
    return tiny_trained_model()


@pytest.fixture(scope="module")
def entry(model, tmp_path_factory):
    return export(model, tmp_path_factory.mktemp("zoo"))


def test_entry_has_all_artifacts_and_card(model, entry):
    for name in (
        "model.keras",
        "model.onnx",
        "card.json",
        "README.md",
        "saved_model/1/saved_model.pb",
    ):
        assert (entry / name).is_file(), name
    card = card_lib.read_card(entry)
    assert card["name"] == "jr" and card["version"] == 1 and card["saved_model_versions"] == [1]
    assert card["model"]["parameters"] == model.model.count_params()
    assert card["model"]["penalties"] == ["jacobian"]
    assert card["model"]["input"]["shape"] == [None, *SHAPE]
    assert card["metrics"] == {"clean_accuracy": 0.5, "pgd_accuracy": 0.25}
    assert card["robustness"] is None
    assert card["software"]["tensorflow"] == tf.__version__
    assert card["software"]["keras"] == keras.__version__
    assert card["software"]["tfjsigr"] == tfjsigr.__version__
    assert {"onnx", "tf2onnx"} <= set(card["software"])
    onnx_digest = hashlib.sha256((entry / "model.onnx").read_bytes()).hexdigest()
    assert card["artifacts"]["model.onnx"] == onnx_digest
    assert "saved_model/1/variables/variables.index" in card["artifacts"]
    assert set(card["artifacts"]) == set(verify_lib.artifact_files(entry))
    readme = (entry / "README.md").read_text()
    assert "# jr" in readme and "clean_accuracy" in readme and onnx_digest in readme


def test_reloaded_keras_model_matches(model, entry):
    images = sample_images(8, seed=5)
    reloaded = keras.saving.load_model(entry / "model.keras")
    assert isinstance(reloaded, tfjsigr.RegularizedModel)
    np.testing.assert_allclose(reloaded(images), model(images), atol=1e-6)


def test_saved_model_serving_default_returns_the_keras_logits(model, entry):
    signature = tf.saved_model.load(str(entry / "saved_model" / "1")).signatures["serving_default"]
    spec = signature.structured_input_signature[1]
    assert list(spec) == ["image"] and spec["image"].shape.as_list() == [None, *SHAPE]
    images = sample_images(5, seed=6)
    outputs = signature(image=tf.constant(images))
    assert sorted(outputs) == ["logits", "probabilities"]
    logits = model(images, training=False).numpy()
    np.testing.assert_allclose(outputs["logits"].numpy(), logits, atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities"].numpy(), tf.nn.softmax(logits), atol=1e-6)


def test_onnx_has_named_dynamic_batch_and_matches_keras(model, entry):
    session = onnxruntime.InferenceSession(
        str(entry / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (image,) = session.get_inputs()
    assert image.name == "image" and image.shape == ["batch", *SHAPE]
    assert sorted(o.name for o in session.get_outputs()) == ["logits", "probabilities"]
    for batch in (1, 7):
        images = sample_images(batch, seed=batch)
        (logits,) = session.run(["logits"], {"image": images})
        assert np.abs(logits - model(images, training=False).numpy()).max() < 1e-4
    parity = card_lib.read_card(entry)["parity"]
    assert set(parity) == {"onnx", "saved_model", "keras_reload"}
    assert parity["onnx"]["images"] == 48 and parity["onnx"]["max_abs_logit_diff"] < 1e-4


def test_index_lists_the_entry(entry):
    (record,) = index_lib.read_index(entry.parent)
    assert record == {
        "name": "jr",
        "version": 1,
        "path": "jr",
        "created": card_lib.read_card(entry)["created"],
        "metrics": {"clean_accuracy": 0.5, "pgd_accuracy": 0.25},
    }


@pytest.mark.parametrize("exchange", ["renameat2", "two renames"])
def test_second_export_adds_a_version_and_keeps_the_first(entry, tmp_path, monkeypatch, exchange):
    if exchange == "two renames":  # Systems without renameat2(RENAME_EXCHANGE).
        monkeypatch.setattr(export_lib, "_exchange", lambda first, second: False)
    zoo_dir = tmp_path / "zoo"
    shutil.copytree(entry.parent, zoo_dir)
    first = {
        p: (zoo_dir / "jr" / p).read_bytes() for p in verify_lib.artifact_files(zoo_dir / "jr")
    }
    retrained = tiny_model(seed=3)
    export(retrained, zoo_dir, metrics={"clean_accuracy": 0.75})
    card = card_lib.read_card(zoo_dir / "jr")
    assert card["version"] == 2 and card["saved_model_versions"] == [1, 2]
    for path, content in first.items():
        if path.startswith("saved_model/1/"):
            assert (zoo_dir / "jr" / path).read_bytes() == content, path
    assert (zoo_dir / "jr" / "model.onnx").read_bytes() != first["model.onnx"]
    assert (
        card["history"][0]["version"] == 1
        and card["history"][0]["metrics"]["clean_accuracy"] == 0.5
    )
    assert index_lib.read_index(zoo_dir)[0]["version"] == 2
    assert [p.name for p in zoo_dir.iterdir() if p.name.endswith((".staging", ".old"))] == []
    assert verify_lib.verify_zoo(zoo_dir) == []


def test_failed_parity_leaves_the_zoo_untouched(entry, tmp_path, monkeypatch):
    zoo_dir = tmp_path / "zoo"
    shutil.copytree(entry.parent, zoo_dir)
    before = {p.relative_to(zoo_dir): p.read_bytes() for p in zoo_dir.rglob("*") if p.is_file()}
    real = verify_lib.onnx_outputs

    def drifting(path, images):
        outputs = real(path, images)
        return {**outputs, "logits": outputs["logits"] + 1e-3}

    monkeypatch.setattr(verify_lib, "onnx_outputs", drifting)
    model = tiny_model(seed=4)
    for name in ("jr", "fresh"):
        expected = f"export of {zoo_dir / name} failed its parity check: onnx: max_abs_logit_diff"
        with pytest.raises(export_lib.ParityError, match=expected):
            export(model, zoo_dir, name=name)
    after = {p.relative_to(zoo_dir): p.read_bytes() for p in zoo_dir.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in zoo_dir.iterdir()) == [".zoo.lock", "index.json", "jr"]


@pytest.mark.parametrize(
    "name, images, match",
    [
        ("../up", sample_images(2), "entry name"),
        ("index.json", sample_images(2), "reserved for the zoo index"),
        ("report", sample_images(2), "reserved for the zoo's evaluation report"),
        ("recipes", sample_images(2), "reserved for the zoo's recipes"),
        ("ok", sample_images(2)[..., 0], "expected float32"),
        ("ok", sample_images(2) * 255, r"in \[0, 1\]"),
        ("ok", sample_images(0), "expected float32"),
    ],
)
def test_bad_input_is_a_one_line_value_error(model, tmp_path, name, images, match):
    with pytest.raises(ValueError, match=match):
        export_lib.export_entry(model, tmp_path, name, {}, {}, images, "")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_directory_that_is_not_an_entry(model, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a zoo entry"):
        export(model, tmp_path, name="notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_card_is_plain_json(entry):
    card = json.loads((entry / "card.json").read_text())
    assert isinstance(card["metrics"]["clean_accuracy"], float)


def zoo_copy(entry, tmp_path):
    zoo_dir = tmp_path / "zoo"
    shutil.copytree(entry.parent, zoo_dir)
    return zoo_dir


def snapshot(zoo_dir):
    return {p.relative_to(zoo_dir): p.read_bytes() for p in zoo_dir.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "index",
    [
        '{"entries": [{"name": "jr", "version": 1}, {"name": 3, "version": 1}]}',
        '{"entries": [{"name": null, "version": 1}]}',
        '{"entries": [{"name": "jr", "version": 1, "metrics": []}]}',
        "directory",
    ],
)
def test_malformed_index_is_refused_before_anything_is_built(
    model, entry, tmp_path, monkeypatch, index
):
    zoo_dir = zoo_copy(entry, tmp_path)
    (zoo_dir / "index.json").unlink()
    if index == "directory":
        (zoo_dir / "index.json").mkdir()
    else:
        (zoo_dir / "index.json").write_text(index)
    before = snapshot(zoo_dir)
    monkeypatch.setattr(export_lib, "write_artifacts", None)  # Never reached.
    for name in ("jr", "fresh"):
        with pytest.raises(ValueError, match="index.json: corrupt zoo index"):
            export(model, zoo_dir, name=name)
    assert snapshot(zoo_dir) == before
    assert sorted(p.name for p in zoo_dir.iterdir()) == [".zoo.lock", "index.json", "jr"]


def test_lock_file_that_is_a_directory_is_refused_before_anything_is_built(model, tmp_path):
    (tmp_path / ".zoo.lock").mkdir()
    with pytest.raises(ValueError, match=".zoo.lock: cannot open the zoo's lock file"):
        export(model, tmp_path, name="fresh")
    assert [p.name for p in tmp_path.iterdir()] == [".zoo.lock"]


@pytest.mark.parametrize("name", ["jr", "fresh"])
def test_failed_index_write_undoes_the_swap(model, entry, tmp_path, monkeypatch, name):
    zoo_dir = zoo_copy(entry, tmp_path)
    before = snapshot(zoo_dir)

    def full_disk(zoo_dir, entries):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_lib, "write_index", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export(model, zoo_dir, name=name)
    assert snapshot(zoo_dir) == before
    assert sorted(p.name for p in zoo_dir.iterdir()) == [".zoo.lock", "index.json", "jr"]


def test_missing_index_is_rebuilt_with_every_entry(model, entry, tmp_path):
    zoo_dir = zoo_copy(entry, tmp_path)
    (zoo_dir / "index.json").unlink()
    export(model, zoo_dir, name="fresh")
    assert [e["name"] for e in index_lib.read_index(zoo_dir)] == ["fresh", "jr"]


@pytest.mark.parametrize(
    "classes, shape", [(3, SHAPE), (4, (8, 8, 1))], ids=["classes", "input shape"]
)
def test_new_version_with_another_signature_is_refused(entry, tmp_path, classes, shape):
    zoo_dir = zoo_copy(entry, tmp_path)
    before = snapshot(zoo_dir)
    backbone = small_cnn(input_shape=shape, num_classes=classes, filters=(4, 8), dense=16)
    images = np.random.default_rng(0).uniform(size=(4, *shape)).astype(np.float32)
    with pytest.raises(ValueError, match="export it under another name") as error:
        export_lib.export_entry(backbone, zoo_dir, "jr", {}, {}, images, "")
    expected = f"{zoo_dir / 'jr'}: the new model takes images of shape {list(shape)}"
    assert str(error.value).startswith(expected)
    assert snapshot(zoo_dir) == before


def test_corrupt_previous_card_is_refused(model, entry, tmp_path):
    zoo_dir = zoo_copy(entry, tmp_path)
    (zoo_dir / "jr" / "card.json").write_text("[1, 2]")
    before = snapshot(zoo_dir)
    with pytest.raises(ValueError, match="corrupt model card .*not adding a version"):
        export(model, zoo_dir, name="jr")
    assert snapshot(zoo_dir) == before


def test_model_with_nan_weights_names_the_entry(tmp_path):
    model = tiny_model(seed=5)
    model.model.layers[-1].kernel.assign(np.full(model.model.layers[-1].kernel.shape, np.nan))
    with pytest.raises(ValueError, match="logits are not finite") as error:
        export(model, tmp_path, name="nan")
    assert str(error.value).startswith(f"export of {tmp_path / 'nan'}:")
    assert list(tmp_path.iterdir()) == []


def test_a_deleted_version_number_is_never_reused(model, entry, tmp_path):
    zoo_dir = zoo_copy(entry, tmp_path)
    shutil.rmtree(zoo_dir / "jr" / "saved_model" / "1")
    export(model, zoo_dir)
    card = card_lib.read_card(zoo_dir / "jr")
    assert card["version"] == 2 and card["saved_model_versions"] == [2]
    assert [record["version"] for record in card["history"]] == [1]


def test_next_version_counts_the_card_and_its_history():
    card = {"version": 3, "history": [{"version": 7}, {"version": "8"}, "junk"]}
    assert export_lib._used_versions(card) == [3, 7]
    assert export_lib._used_versions(None) == []


def test_an_entry_that_is_a_symbolic_link_is_refused(model, entry, tmp_path):
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    (zoo_dir / "jr").symlink_to(entry)
    with pytest.raises(ValueError, match="jr: is a symbolic link; not replacing it"):
        export(model, zoo_dir)
    assert (zoo_dir / "jr").is_symlink()
    assert sorted(p.name for p in zoo_dir.iterdir()) == [".zoo.lock", "jr"]


def test_staging_cleanup_removes_a_link_not_its_target(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep").write_text("kept")
    (tmp_path / ".jr.x.staging").symlink_to(tmp_path / "target")
    export_lib._remove(tmp_path / ".jr.x.staging")
    assert [p.name for p in tmp_path.iterdir()] == ["target"]
    assert (tmp_path / "target" / "keep").read_text() == "kept"


def test_a_model_that_takes_no_images_is_refused_naming_the_entry(tmp_path):
    inputs = keras.Input((784,))
    flat = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    images = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="takes inputs of shape \\[None, 784\\], not images"):
        export_lib.export_entry(flat, tmp_path, "flat", {}, {}, images, "")
    assert list(tmp_path.iterdir()) == []


def test_metrics_that_are_not_finite_are_null_on_the_card_and_left_out_of_the_index(
    model, tmp_path
):
    entry = export(model, tmp_path, metrics={"clean_accuracy": float("inf"), "pgd": 0.5})
    assert "Infinity" not in (entry / "card.json").read_text()
    assert card_lib.read_card(entry)["metrics"] == {"clean_accuracy": None, "pgd": 0.5}
    assert index_lib.read_index(tmp_path)[0]["metrics"] == {"pgd": 0.5}
    assert verify_lib.verify_zoo(tmp_path) == []
