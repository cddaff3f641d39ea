import dataclasses
import pathlib

import keras
import pytest

from tfjsigr import layers
from tfjsigr.pipeline import recipes
from tfjsigr.training.ensemble import Ensemble

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[2] / "zoo" / "recipes"
DEFAULT_ZOO = ("plain", "igr", "jr", "jsigr", "fgsm_rs", "pgd_at")
# name: (ensemble members or 0, penalty classes, hidden activation)
OPT_IN_ZOO = {
    "ns_jr": (0, ["Jacobian", "NeuronSensitivity"], keras.activations.relu),
    "lipschitz": (0, ["Lipschitz"], layers.half_huber_relu),
    "jr_ensemble": (3, ["Jacobian"], keras.activations.relu),
    "plain_ens": (3, [], keras.activations.relu),
}
VALID = """
dataset = "fashion_mnist"
epochs = 3

[architecture]
name = "mlp"
hidden = [8]

[[penalties]]
type = "jacobian"
weight = 0.5

[quick]
epochs = 1
train_examples = 100
"""


def write(tmp_path, text, name="recipe.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", DEFAULT_ZOO)
def test_shipped_recipes_are_valid_and_run_on_other_datasets(name, tmp_path):
    recipe = recipes.load_recipe(RECIPES_DIR / f"{name}.toml")
    assert recipe.name == name and recipe.dataset == "fashion_mnist"
    assert recipe.quick_variant().epochs < recipe.epochs
    assert recipes.parse_recipe(recipe.to_dict()) == dataclasses.replace(recipe, source="<dict>")
    for dataset, shape in (("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))):
        text = (RECIPES_DIR / f"{name}.toml").read_text().replace('"fashion_mnist"', f'"{dataset}"')
        other = recipes.load_recipe(write(tmp_path, text, f"{name}.toml"))
        assert other.dataset == dataset
        assert other.build_architecture(shape, 10).output_shape == (None, 10)


def test_valid_recipe_builds_its_parts(tmp_path):
    recipe = recipes.load_recipe(write(tmp_path, VALID))
    assert recipe.name == "recipe" and recipe.architecture["hidden"] == (8,)
    assert recipe.optimizer == {"name": "adam", "learning_rate": 1e-3}
    quick = recipe.quick_variant()
    assert (quick.epochs, quick.train_examples, quick.quick) == (1, 100, {})
    [penalty] = recipe.build_penalties()
    assert penalty.weight == 0.5
    assert recipe.build_architecture((28, 28, 1), 10).output_shape == (None, 10)


@pytest.mark.parametrize(
    "edit, message",
    [
        (("epochs = 3", "epoch = 3"), "unknown key 'epoch'"),
        (("epochs = 3", 'epochs = "3"'), "key 'epochs' must be an integer"),
        (("epochs = 3", "epochs = 0"), "key 'epochs' must be a whole number in \\[1, 10000\\], got 0"),
        (("epochs = 3", "epochs = true"), "key 'epochs' must be an integer"),
        (("epochs = 3", "augment = 1"), "key 'augment' must be true or false"),
        (('"fashion_mnist"', '"imagenet"'), "key 'dataset': unknown data set 'imagenet'"),
        (('name = "mlp"', 'name = "vgg"'), "unknown architecture 'vgg'"),
        (("hidden = [8]", "depth = 3"), "no argument 'depth'"),
        (('type = "jacobian"', 'type = "dropout"'), "penalties\\[0\\]'.*unknown penalty 'dropout'"),
        (("weight = 0.5", "wieght = 0.5"), "penalties\\[0\\]'.*wieght"),
        (("train_examples = 100", "examples = 100"), "unknown key 'quick.examples'"),
        (("epochs = 3", "epochs = 3\n[optimizer]\nname = 'lbfgs'"), "unknown optimizer 'lbfgs'"),
        (
            ("epochs = 3", "epochs = 3\n[adversarial_training]\nattack = 'cw'"),
            "adversarial_training",
        ),
        (("epochs = 3", "epochs = ["), "malformed TOML"),
        (("hidden = [8]", "activation = 'swishy'"), "architecture.activation'.*swishy"),
        (("epochs = 3", "epochs = 3\n[ensemble]\nmembers = 0"), "'ensemble.members' must be a whole number >= 1"),
        (
            ("epochs = 3", "epochs = 3\n[ensemble]\ncombine = 'mean'"),
            "missing key 'ensemble.members'",
        ),
        (
            ("epochs = 3", "epochs = 3\n[ensemble]\nmembers = 2\ncombine = 'max'"),
            "'ensemble.combine': 'max' is not one of",
        ),
        (("epochs = 3", 'name = "my model"'), "key 'name': 'my model' is not a valid model name"),
        (("epochs = 3", 'name = ".."'), "key 'name': '..' is not a valid model name"),
        (("epochs = 3", 'name = "-x"'), "key 'name': '-x' is not a valid model name"),
        (("hidden = [8]", "hidden = 8"), "argument 'hidden' must be a list of integers, got int 8"),
        (("hidden = [8]", "dropout = 'high'"), "argument 'dropout' must be a number"),
        (("hidden = [8]", "num_classes = 3"), "'architecture.num_classes': set by the data set"),
        (("hidden = [8]", "input_shape = [28, 28, 1]"), "'architecture.input_shape': set by"),
        (("hidden = [8]", "dropout = nan"), "'architecture.dropout' must be a finite number"),
        (("epochs = 3", "seed = -1"), "key 'seed' must be a whole number in \\[0, 4294967296\\)"),
        (
            ("epochs = 3", "epochs = 3\n[optimizer]\nlearning_rate = -0.01"),
            "'optimizer.learning_rate' must be a finite number > 0, got -0.01",
        ),
        (
            ("epochs = 3", "epochs = 3\n[optimizer]\nlearning_rate = nan"),
            "'optimizer.learning_rate' must be a finite number, got nan",
        ),
        (
            ("epochs = 3", "epochs = 3\n[optimizer]\nname = 'sgd'\nmomentum = -1"),
            "'optimizer.momentum' must be a finite number in \\[0, 1\\), got -1",
        ),
        (
            ("epochs = 3", "epochs = 3\n[optimizer]\nname = 'adamw'\nweight_decay = -0.1"),
            "'optimizer.weight_decay' must be a finite number >= 0",
        ),
        (
            ("epochs = 3", "epochs = 3\n[adversarial_training]\nattack = 'pgd'\nepsilon = inf"),
            "'adversarial_training.epsilon' must be a finite number, got inf",
        ),
        (
            ("epochs = 3", "epochs = 3\n[adversarial_training]\nattack = 'pgd'\nepsilon = 0"),
            "'adversarial_training.epsilon' must be a finite number in \\(0, 1\\]",
        ),
        (
            ("epochs = 3", "epochs = 3\n[adversarial_training]\nattack = 'pgd'\nepsilon = 100"),
            "'adversarial_training.epsilon' must be a finite number in \\(0, 1\\], got 100",
        ),
        (
            ("epochs = 3", "epochs = 3\n[adversarial_training]\nattack = 'pgd'\nstep_size = -1"),
            "'adversarial_training.step_size' must be a finite number in \\(0, 1\\]",
        ),
        (
            ("epochs = 3", "epochs = 3\n[adversarial_training]\nattack = 'pgd'\nstep_size = 2"),
            "'adversarial_training.step_size' must be a finite number in \\(0, 1\\], got 2",
        ),
        (("weight = 0.5", "weight = inf"), "'penalties\\[0\\].weight' must be a finite number"),
        (("weight = 0.5", "weight = -0.5"), "penalties\\[0\\]'.*weight must be a finite number >= 0.0"),
        (
            ("epochs = 3", "epochs = 100000000000000000000"),
            "key 'epochs' must be a whole number in \\[1, 10000\\], got 100000000000000000000",
        ),
        (("epochs = 3", "epochs = 3\nbatch_size = 65537"), "key 'batch_size' must be a whole number in \\[1, 65536\\]"),
        (("epochs = 1\ntrain", "epochs = 10001\ntrain"), "key 'quick.epochs' must be a whole number in \\[1, 10000\\]"),
        (
            ("epochs = 3", "epochs = 3\n[adversarial_training]\nattack = 'pgd'\nsteps = 10000001"),
            "'adversarial_training.steps' must be a whole number in \\[1, 10000000\\]",
        ),
    ],
)
def test_invalid_recipes_fail_with_one_line_naming_file_and_key(tmp_path, edit, message):
    path = write(tmp_path, VALID.replace(*edit))
    with pytest.raises(ValueError, match=message) as error:
        recipes.load_recipe(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_file_name_that_is_no_valid_model_name_needs_a_name_key(tmp_path):
    path = write(tmp_path, VALID, "my model.toml")
    with pytest.raises(ValueError, match="key 'name': 'my model' is not a valid") as error:
        recipes.load_recipe(path)
    assert str(error.value).startswith(str(path))
    named = write(tmp_path, 'name = "my_model-2.1"\n' + VALID, "my model.toml")
    assert recipes.load_recipe(named).name == "my_model-2.1"


@pytest.mark.parametrize(
    "argument, reason", [("hidden = [0]", "units=0"), ("dropout = 1.5", "rate=1.5")]
)
def test_architecture_arguments_that_do_not_build_name_the_file_and_table(
    tmp_path, argument, reason
):
    path = write(tmp_path, VALID.replace("hidden = [8]", argument))
    recipe = recipes.load_recipe(path)
    with pytest.raises(
        ValueError, match=f"\\[architecture\\] 'mlp' cannot be built.*{reason}"
    ) as error:
        recipe.build_architecture((28, 28, 1), 10)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        recipes.load_recipe(tmp_path / "absent.toml")


@pytest.mark.parametrize("name", OPT_IN_ZOO)
def test_opt_in_recipes_are_valid_and_build_their_parts(name):
    recipe = recipes.load_recipe(RECIPES_DIR / f"{name}.toml")
    assert recipe.name == name and recipe.quick_variant().epochs < recipe.epochs
    assert recipes.parse_recipe(recipe.to_dict()) == dataclasses.replace(recipe, source="<dict>")
    backbone = recipe.build_architecture((28, 28, 1), 10)
    assert backbone.compute_output_shape((None, 28, 28, 1)) == (None, 10)
    members, penalties, activation = OPT_IN_ZOO[name]
    assert [type(p).__name__ for p in recipe.build_penalties()] == penalties
    if members:
        assert isinstance(backbone, Ensemble) and len(backbone.members) == members
        backbone = backbone.members[0]
    assert backbone.layers[1].activation is activation


def test_the_cifar10_recipes_parse_and_build_a_preact_resnet_18():
    paths = sorted((RECIPES_DIR / "cifar10").glob("*.toml"))
    parsed = [recipes.load_recipe(path) for path in paths]
    assert {recipe.name for recipe in parsed} == {
        f"cifar10_{name}" for name in ("plain", "igr", "jr", "jsigr", "fgsm_rs", "pgd_at", "trades")
    }
    assert {recipe.dataset for recipe in parsed} == {"cifar10"}
    attacked = [r for r in parsed if r.adversarial_training or r.name == "cifar10_trades"]
    for recipe in attacked:
        settings = recipe.adversarial_training or recipe.penalties[0].get_config()
        assert settings["epsilon"] == pytest.approx(8 / 255)
    backbone = parsed[0].build_architecture((32, 32, 3), 10)
    convolutions = [layer for layer in backbone.layers if layer.name.startswith("conv2d")]
    assert backbone.count_params() > 10_000_000 and len(convolutions) == 1 + 16 + 3  # stem, blocks, shortcuts
