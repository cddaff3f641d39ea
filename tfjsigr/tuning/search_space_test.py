import pathlib

import pytest

from tfjsigr.pipeline import recipes
from tfjsigr.tuning import search_space

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[2] / "zoo" / "recipes"
RECIPE = """
dataset = "fashion_mnist"
[architecture]
name = "mlp"
hidden = [8]
[[penalties]]
type = "jsigr"
jacobian_weight = 0.05
selective_weight = 20.0
top_k = 0.2
[tune]
"""


def write(tmp_path, tune):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE + tune + "\n")
    return path


@pytest.mark.parametrize("name", ["jsigr", "igr", "jr", "trades"])
def test_the_shipped_recipes_declare_a_search_space_and_still_train_as_recipes(name):
    space = search_space.load_search_space(RECIPES_DIR / f"{name}.toml")
    assert space.parameters and all(p.kind == "float" for p in space.parameters)
    assert recipes.load_recipe(RECIPES_DIR / f"{name}.toml").name == name


def test_ranges_of_each_kind_and_the_recipe_they_make(tmp_path):
    space = search_space.load_search_space(write(tmp_path, """
"penalties[0].jacobian_weight" = { low = 0.001, high = 1.0, log = true }
"penalties[0].projections" = { low = 1, high = 4 }
"penalties[0].top_k" = { low = 0.1, high = 0.5, step = 0.1 }
"architecture.activation" = { choices = ["relu", "half_huber_relu"] }
"""))  # fmt: skip
    kinds = {p.name: p.kind for p in space.parameters}
    assert list(kinds.values()) == ["float", "int", "float", "categorical"]
    recipe = space.recipe({"penalties[0].projections": 3, "architecture.activation": "relu"}, "t1")
    assert recipe.name == "t1" and recipe.penalties[0].get_config()["projections"] == 3
    assert recipe.architecture["activation"] == "relu"
    assert "activation" not in space.recipe_data["architecture"]  # A copy was changed.


@pytest.mark.parametrize(
    ("key", "spec", "expected"),
    [
        ("penalties[0].jacobian_weight", "{ low = 1.0, high = 0.5 }", "'low' must be < 'high'"),
        ("penalties[0].jacobian_weight", "{ low = 0.0, high = 1.0, log = true }", "log range"),
        ("penalties[0].jacobian_weight", "{ low = 0.1 }", "needs 'low' and 'high'"),
        ("penalties[0].jacobian_weight", "{ lo = 0.1, high = 1.0 }", "unknown field"),
        ("penalties[0].jacobian_weight", "{ low = 0.1, high = inf }", "finite number"),
        ("penalties[0].jacobian_weight", '{ low = "a", high = 1.0 }', "finite number"),
        ("penalties[0].jacobian_weight", "{ choices = [] }", "non-empty list"),
        ("penalties[0].jacobian_weight", "0.1", "must be a table"),
        ("penalties[0].top_k", "{ low = 0.1, high = 2.0 }", "value 2.0 does not make"),
        ("penalties[0].wieght", "{ low = 0.1, high = 1.0 }", "wieght"),
        ("penalties[3].weight", "{ low = 0.1, high = 1.0 }", "no 3"),
        ("optimiser.learning_rate", "{ low = 0.1, high = 1.0 }", "no table 'optimiser'"),
        ("epochs", "{ low = 0, high = 3 }", "must be a whole number in [1, 10000], got 0"),
        ("penalties.0.weight", "{ low = 0.1, high = 1.0 }", "not a recipe key path"),
    ],
)
def test_a_bad_range_or_an_unknown_parameter_is_a_one_line_error_naming_the_key(
    tmp_path, key, spec, expected
):
    path = write(tmp_path, f'"{key}" = {spec}')
    with pytest.raises(ValueError, match="tune") as raised:
        search_space.load_search_space(path)
    message = str(raised.value)
    assert "\n" not in message and f"{path}: key 'tune.\"{key}\"'" in message, message
    assert expected in message, message


def test_a_recipe_without_a_tune_table_is_an_error(tmp_path):
    path = write(tmp_path, "").read_text().replace("[tune]", "")
    (tmp_path / "plain.toml").write_text(path)
    with pytest.raises(ValueError, match=r"no \[tune\] table"):
        search_space.load_search_space(tmp_path / "plain.toml")
