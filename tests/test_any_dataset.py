"""The whole product on data sets it has never seen: an npz in keras.datasets layout, an RGB
image folder, CIFAR-shaped data, a user's saved backbone; and the errors of mismatched data."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from tfjsigr import testing
from tfjsigr.cli.testing import assert_one_line_error, run
from tfjsigr.evaluation.testing import small_autoattack_budgets

PARTS = ("bolt", "nut", "gear", "cog")
SHAPES = ("circle", "square", "triangle")
FAST_EVALUATION = ("--samples", 20, "--autoattack", "fast", "--no-guards")


def learnable_images(rng, labels, shape, classes):
    """Images whose mean brightness and one bright stripe tell the class (a tiny CNN learns it)."""
    images = rng.integers(0, 60, (len(labels), *shape)).astype(np.float32)
    for index, label in enumerate(labels):
        row = int(label) * shape[0] // classes
        images[index, row : row + 3] += 150
    return np.clip(images, 0, 255).astype(np.uint8)


def write_npz(path, shape, classes, names=None, train=240, test=60, seed=0):
    """A data set in keras.datasets' npz layout (x_train, y_train, x_test, y_test)."""
    rng = np.random.default_rng(seed)
    y_train, y_test = rng.integers(0, classes, train), rng.integers(0, classes, test)
    arrays = {
        "x_train": learnable_images(rng, y_train, shape, classes), "y_train": y_train,
        "x_test": learnable_images(rng, y_test, shape, classes), "y_test": y_test,
    }  # fmt: skip
    if names:
        arrays["class_names"] = np.array(names)
    np.savez(path, **arrays)
    return path


def write_png_folder(root, names=SHAPES, per_class=15, size=32, seed=0):
    """An image folder: one subfolder of RGB PNGs per class."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(names):
        (root / name).mkdir(parents=True)
        images = learnable_images(rng, [label] * per_class, (size, size, 3), len(names))
        for index, image in enumerate(images):
            Image.fromarray(image).save(root / name / f"{index:03d}.png")
    return root


def write_recipe(path, dataset, architecture='name = "small_cnn"\nfilters = [4, 8]\ndense = 16'):
    path.write_text(
        f'name = "{path.stem}"\ndataset = "{dataset}"\nepochs = 2\nbatch_size = 32\n'
        f"eval_examples = 40\n\n[architecture]\n{architecture}\n\n"
        '[[penalties]]\ntype = "jsigr"\njacobian_weight = 0.05\nselective_weight = 5.0\n'
    )
    return path


def strings(value):
    """Every string a JSON document holds."""
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


def assert_no_machine_path(document, tmp_path):
    text = json.dumps(document)
    assert str(tmp_path) not in text and "/usr/share" not in text
    assert not [s for s in strings(document) if s.startswith("/")]


def test_an_unseen_npz_data_set_goes_through_train_export_evaluate_and_verify(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    small_autoattack_budgets(monkeypatch)
    write_npz(tmp_path / "parts.npz", (20, 20), len(PARTS), PARTS)
    recipe = write_recipe(tmp_path / "parts.toml", "parts.npz")
    result = run("train", recipe, "--out", "runs/parts")
    assert result.exit_code == 0, result.output
    assert "parts" in result.output
    for arguments in (
        ("export", "runs/parts", "--zoo", "zoo"),
        ("evaluate", "zoo/parts", *FAST_EVALUATION, "--out", "report"),
        ("zoo", "verify", "zoo"),
    ):
        result = run(*arguments)
        assert result.exit_code == 0, (arguments, result.output)
    card = json.loads((tmp_path / "zoo" / "parts" / "card.json").read_text())
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert card["data"]["name"] == "parts" and card["data"]["class_names"] == list(PARTS)
    assert card["data"]["image_shape"] == [20, 20, 1] and card["data"]["source"]["dataset"] == "parts.npz"
    assert card["robustness"]["dataset"] == "parts" and report["data"]["name"] == "parts"
    assert report["data"]["class_names"] == list(PARTS)
    for document in (card, report):
        assert "fashion" not in json.dumps(document).lower()
    assert_no_machine_path(card, tmp_path)
    assert "Data: parts (npz parts.npz)" in (tmp_path / "report" / "report.md").read_text()


def test_an_rgb_image_folder_goes_through_train_export_evaluate_predict_and_serve(
    tmp_path, monkeypatch
):
    from tfjsigr.serving import testing as serving_testing
    from tfjsigr.serving.server import create_app

    monkeypatch.chdir(tmp_path)
    small_autoattack_budgets(monkeypatch)
    write_png_folder(tmp_path / "shapes")
    recipe = write_recipe(tmp_path / "shapes.toml", "fashion_mnist")  # --dataset overrides it.
    for arguments in (
        ("train", recipe, "--dataset", "shapes", "--out", "runs/shapes"),
        ("export", "runs/shapes", "--zoo", "zoo"),
        ("evaluate", "zoo/shapes", *FAST_EVALUATION, "--out", "report"),
    ):
        result = run(*arguments)
        assert result.exit_code == 0, (arguments, result.output)
    card = json.loads((tmp_path / "zoo" / "shapes" / "card.json").read_text())
    assert card["data"]["kind"] == "image_folder" and card["data"]["image_shape"] == [32, 32, 3]
    assert card["data"]["class_names"] == list(SHAPES)
    assert card["robustness"]["eps"] == pytest.approx(8 / 255)  # Colour images: 8/255.
    assert_no_machine_path(card, tmp_path)
    image = tmp_path / "shapes" / "square" / "000.png"
    with serving_testing.running_server(create_app(tmp_path / "zoo", poll_interval_s=0)) as url:
        result = run("predict", "--url", f"{url}/v1/models/shapes", image)
    assert result.exit_code == 0, result.output
    path, index, label, probability = result.output.strip().split("\t")
    assert path == str(image)
    assert index == "0" and label in SHAPES and 0 < float(probability) <= 1


def test_cifar_shaped_data_trains_and_exports_through_a_recipe(tmp_path):
    from tfjsigr.pipeline import recipes, runs
    from tfjsigr.zoo.export import export_run

    write_npz(tmp_path / "cifar_like.npz", (32, 32, 3), 10, train=120, test=40)
    recipe = recipes.load_recipe(write_recipe(
        tmp_path / "cifar_like.toml", str(tmp_path / "cifar_like.npz"),
        'name = "preact_resnet"\nwidths = [4, 8, 8]',
    ))  # fmt: skip
    result = runs.train(recipe, tmp_path / "runs" / "cifar_like", verbose=0)
    assert result.metrics["pgd"]["eps"] == pytest.approx(8 / 255)
    assert result.metrics["data"]["image_shape"] == [32, 32, 3]
    with pytest.raises(FileNotFoundError, match="cifar_like.npz .*give its path as the dataset"):
        export_run(tmp_path / "runs" / "cifar_like", tmp_path / "zoo")  # Recorded bare.
    entry = export_run(
        tmp_path / "runs" / "cifar_like", tmp_path / "zoo", dataset=str(tmp_path / "cifar_like.npz")
    )
    card = json.loads((entry / "card.json").read_text())
    assert card["model"]["input"]["shape"][1:] == [32, 32, 3] and card["data"]["num_classes"] == 10
    assert card["data"]["source"]["dataset"] == "cifar_like.npz"  # An absolute path, recorded bare.
    assert_no_machine_path(card, tmp_path)


def test_a_model_and_data_set_that_do_not_match_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_png_folder(tmp_path / "shapes", per_class=5)
    testing.tiny_cnn((28, 28, 1), 10).save(tmp_path / "gray.keras")
    result = run("evaluate", "gray.keras", "--dataset", "shapes", "--samples", 5)
    expected = "gray.keras: model expects 28x28x1 images and 10 classes; data shapes has 32x32x3"
    assert_one_line_error(result, expected)
    assert not (tmp_path / "evaluation").exists()
    recipe = write_recipe(tmp_path / "r.toml", "shapes", 'name = "gray.keras"')
    assert_one_line_error(run("train", recipe), "the backbone takes [28, 28, 1]")


def test_a_recipe_regularizes_a_saved_backbone(tmp_path):
    from tfjsigr.architectures import small_cnn
    from tfjsigr.pipeline import recipes, runs

    write_npz(tmp_path / "parts.npz", (20, 20), len(PARTS), PARTS)
    (tmp_path / "mine").mkdir()
    backbone = small_cnn(input_shape=(20, 20, 1), num_classes=4, filters=(4, 8), dense=16)
    backbone.save(tmp_path / "mine" / "backbone.keras")
    path = write_recipe(tmp_path / "mine" / "own.toml", str(tmp_path / "parts.npz"),
                        'name = "backbone.keras"')  # fmt: skip
    recipe = recipes.load_recipe(path)
    result = runs.train(recipe, tmp_path / "runs" / "own", verbose=0, evaluate=False)
    trained = result.model.model
    assert [w.shape for w in trained.get_weights()] == [w.shape for w in backbone.get_weights()]
    assert any(not np.allclose(a, b) for a, b in zip(trained.get_weights(), backbone.get_weights()))
    assert recipe.to_dict()["architecture"]["name"] == "backbone.keras"


def test_zoo_evaluate_refuses_mixed_data_sets_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small_autoattack_budgets(monkeypatch)
    write_npz(tmp_path / "digits.npz", (28, 28), 10, train=40, test=40)
    for name, dataset in (("a", "digits.npz"), ("b", "fashion_mnist")):
        testing.tiny_cnn((28, 28, 1), 10, seed=len(name)).save(tmp_path / f"{name}.keras")
        result = run("export", f"{name}.keras", "--zoo", "zoo", "--dataset", dataset)
        assert result.exit_code == 0, result.output
    result = run("zoo", "evaluate", "zoo", *FAST_EVALUATION)
    assert_one_line_error(result, "the models were trained on different data sets (a: digits.npz; b:")
    result = run("zoo", "evaluate", "zoo", *FAST_EVALUATION, "--allow-mixed")
    assert result.exit_code == 0, result.output
    assert "trained on fashion_mnist, evaluated on digits.npz" in result.output
    report = json.loads((tmp_path / "zoo" / "report" / "report.json").read_text())
    assert report["data"]["name"] == "digits" and report["data"]["mixed"] is True


def test_a_zoo_build_loads_each_data_set_once(tmp_path, monkeypatch):
    from tfjsigr.data.source import DataSource
    from tfjsigr.pipeline import recipes
    from tfjsigr.pipeline.runs import DataCache

    write_npz(tmp_path / "parts.npz", (20, 20), len(PARTS), PARTS)
    loads, load = [], DataSource.load

    def counted(self, split):
        loads.append(split)
        return load(self, split)

    monkeypatch.setattr(DataSource, "load", counted)
    cache = DataCache()
    first, second = (
        recipes.load_recipe(write_recipe(tmp_path / f"{name}.toml", str(tmp_path / "parts.npz")))
        for name in ("first", "second")
    )
    assert cache.get(first) is cache.get(second)
    assert sorted(loads) == ["test", "train"]
    (tmp_path / "parts.npz").unlink()  # What changes on disk meanwhile does not reach the build.
    assert cache.get(second).info.name == "parts"


def test_a_card_records_no_machine_path(tmp_path):
    from tfjsigr.data.source import resolve_data

    folder = write_png_folder(tmp_path / "deep" / "shapes", per_class=5)
    record = resolve_data(str(folder)).to_dict()
    assert record["dataset"] == "shapes" and str(tmp_path) not in json.dumps(record)
    assert pathlib.Path(record["dataset"]).name == "shapes"
