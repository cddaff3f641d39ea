"""Recipes: declarative TOML files that fully determine a zoo model.

A recipe names the data set, the architecture (and its arguments), the penalties and their
weights, adversarial training, the optimizer, epochs, batch size and seed; a `[quick]` table
overrides epochs, batch size and the number of examples for a fast build. Example:

```toml
dataset = "fashion_mnist"
epochs = 10
batch_size = 64
seed = 0

[architecture]
name = "small_cnn"
activation = "relu"

[[penalties]]
type = "jsigr"
jacobian_weight = 0.05
selective_weight = 20.0

[optimizer]
name = "adam"
learning_rate = 1e-3

[quick]
epochs = 4
train_examples = 4000
```

An `[ensemble]` table (`members = 3`, `combine = "logits"` or `"probabilities"`) trains that
many copies of the architecture jointly as one `tfjsigr.ensemble.Ensemble`. The activation
may be a Keras name or `"half_huber_relu"` (`tfjsigr.layers.half_huber_relu`).

Every mistake (unknown key, wrong type, a number out of range or not finite, an invalid name,
unknown data set, architecture or penalty) is a one-line `ValueError` naming the file and the key.
"""

import copy
import dataclasses
import math
import pathlib
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import keras

from tfjsigr import architectures, checks, layers
from tfjsigr import penalties as penalties_lib
from tfjsigr.training import adversarial_training as adversarial_training_lib
from tfjsigr.training import ensemble as ensemble_lib
from tfjsigr.zoo.layout import NAME_PATTERN

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
_TOP_LEVEL = {
    "name": str,
    "description": str,
    "dataset": str,
    "image_size": list,
    "color_mode": str,
    "architecture": dict,
    "penalties": list,
    "adversarial_training": dict,
    "optimizer": dict,
    "epochs": int,
    "batch_size": int,
    "seed": int,
    "augment": bool,
    "train_examples": int,
    "eval_examples": int,
    "quick": dict,
    "ensemble": dict,
    # The search space of `tfjsigr tune` (tfjsigr.tuning.search_space); training ignores it.
    "tune": dict,
}
_OPTIMIZER_KEYS = {"name": str, "learning_rate": float, "momentum": float, "weight_decay": float}
_ADVERSARIAL_KEYS = {"attack": str, "epsilon": float, "steps": int, "step_size": float}
_ENSEMBLE_KEYS = {"members": int, "combine": str}
# Activations of tfjsigr that architectures may name in a recipe (Keras' own names work too).
ACTIVATIONS = {"half_huber_relu": layers.half_huber_relu}
_QUICK_KEYS = {"epochs": int, "batch_size": int, "train_examples": int, "eval_examples": int}
# Bounds of recipe numbers (`tfjsigr.checks.number` rules), by full key or by key wherever it
# appears (e.g. quick.epochs). Beyond the upper bounds a run never ends; images are in [0, 1],
# so a larger perturbation is no longer a perturbation.
_NUMBER_RULES = {
    "epochs": {"low": 1, "high": 10_000, "whole": True},
    "batch_size": {"low": 1, "high": 65_536, "whole": True},
    "train_examples": {"low": 1, "whole": True},
    "eval_examples": {"low": 1, "whole": True},
    "steps": {"low": 1, "high": 10_000_000, "whole": True},
    "members": {"low": 1, "whole": True},
    "seed": {"low": 0, "high": 2**32, "high_open": True, "whole": True},
    "optimizer.learning_rate": {"low": 0, "low_open": True},
    "optimizer.momentum": {"low": 0, "high": 1, "high_open": True},
    "optimizer.weight_decay": {"low": 0},
    "adversarial_training.epsilon": {"low": 0, "high": 1, "low_open": True},
    "adversarial_training.step_size": {"low": 0, "high": 1, "low_open": True},
}
_MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")
# Set by the data set, never by the recipe.
_DATASET_ARGUMENTS = ("input_shape", "num_classes")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A validated recipe. Build one with `load_recipe` or `parse_recipe`."""

    name: str
    dataset: str
    architecture: dict
    image_size: tuple = None
    color_mode: str = None
    penalties: tuple = ()
    adversarial_training: dict = None
    optimizer: dict = dataclasses.field(
        default_factory=lambda: {"name": "adam", "learning_rate": 1e-3}
    )
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    augment: bool = None
    description: str = ""
    quick: dict = dataclasses.field(default_factory=dict)
    train_examples: int = None
    eval_examples: int = 1000
    ensemble: dict = None
    source: str = "<dict>"

    def quick_variant(self):
        """The recipe with its `[quick]` overrides applied (fewer epochs and examples)."""
        overrides = {key: value for key, value in self.quick.items()}
        overrides.setdefault("eval_examples", min(self.eval_examples, 500))
        return dataclasses.replace(self, **overrides, quick={})

    def build_architecture(self, input_shape, num_classes):
        """The backbone the recipe names (or an `Ensemble` of them), for data of that shape.

        Args:
            input_shape: (H, W, C) of the data set's images.
            num_classes: number of classes of the data set.

        Returns:
            A `keras.Model` (an `Ensemble` when the recipe has an `[ensemble]` table).

        Raises:
            ValueError: the `[architecture]` arguments do not build (naming the recipe file).
        """
        arguments = {key: value for key, value in self.architecture.items() if key != "name"}
        arguments.setdefault("input_shape", tuple(input_shape))
        arguments.setdefault("num_classes", num_classes)
        if arguments.get("activation") in ACTIVATIONS:
            arguments["activation"] = ACTIVATIONS[arguments["activation"]]
        name = self.architecture_path() or self.architecture["name"]
        if not self.ensemble:
            return self._build_backbone(name, arguments)
        members = [self._build_backbone(name, arguments) for _ in range(self.ensemble["members"])]
        combine = self.ensemble.get("combine", "logits")
        return ensemble_lib.Ensemble(members, combine=combine, name=f"{name}_ensemble")

    def architecture_path(self):
        """The saved backbone (.keras) the recipe names, as a path: relative paths are taken
        from the recipe's folder when the file is there, else from the working folder. None
        for a built-in architecture."""
        name = self.architecture["name"]
        if not architectures.is_saved_backbone(name):
            return None
        path = pathlib.Path(name).expanduser()
        beside = pathlib.Path(self.source).parent / path
        return str(beside if not path.is_absolute() and beside.is_file() else path)

    def data_source(self, data_dir=None, source="auto", dataset=None):
        """The recipe's `tfjsigr.data.DataSource` (`dataset` overrides the recipe's)."""
        from tfjsigr.data.source import resolve_data

        dataset = dataset or self.dataset
        path = pathlib.Path(dataset).expanduser()
        beside = pathlib.Path(self.source).parent / path
        is_path = "/" in dataset or bool(path.suffix)  # A bare name is a tfds name.
        if is_path and not path.exists() and beside.exists():
            dataset = str(beside)  # A path relative to the recipe's folder.
        return resolve_data(dataset, data_dir, source, self.image_size, self.color_mode)

    def _build_backbone(self, name, arguments):
        try:
            return architectures.get(name, **arguments)
        except Exception as error:  # noqa: BLE001 (Keras raises many types for bad layer arguments)
            reason = checks.one_line(error)[:300]
            raise ValueError(
                f"{self.source}: [architecture] {name!r} cannot be built from its arguments "
                f"({type(error).__name__}: {reason})"
            ) from None

    def build_penalties(self):
        """Fresh copies of the recipe's penalties, for one model (a penalty holds its model's
        state once built)."""
        return [penalty.clone() for penalty in self.penalties]

    def build_adversarial_training(self):
        """The `AdversarialTraining` mode, or None."""
        return adversarial_training_lib.get(dict(self.adversarial_training or {}) or None)

    def to_dict(self):
        """The recipe as plain data (for model cards), without the file path."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        data.pop("source")
        data["penalties"] = [penalties_lib.to_record(p) for p in self.penalties]
        # No paths of the machine: an absolute (or upward) path is recorded by its name.
        data["dataset"] = _portable(self.dataset)
        if architectures.is_saved_backbone(self.architecture["name"]):
            data["architecture"] = {**self.architecture, "name": _portable(self.architecture["name"])}
        if self.image_size:
            data["image_size"] = list(self.image_size)
        return data


def _portable(name):
    path = pathlib.Path(name)
    return path.name if path.is_absolute() or ".." in path.parts else name


def load_recipe(path):
    """Reads and validates a TOML recipe.

    Args:
        path: the `.toml` file; its stem is the default name.

    Returns:
        A `Recipe`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: malformed TOML or an invalid recipe (one line naming file and key).
    """
    return parse_recipe(read_recipe_file(path), source=str(path))


def read_recipe_file(path):
    """A recipe file's TOML data, its name defaulting to the file's stem (not yet validated).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: malformed TOML (one line naming the file).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: malformed TOML ({error})") from None
    data.setdefault("name", path.stem)
    return data


def parse_recipe(data, source="<dict>"):
    """Validates recipe data (as read from TOML) into a `Recipe`.

    Args:
        data: dict of recipe keys.
        source: file name used in error messages.

    Returns:
        A `Recipe`.

    Raises:
        ValueError: unknown key, wrong type, missing key, unknown data set, architecture,
            penalty or optimizer; one line naming `source` and the key.
    """
    data = copy.deepcopy(data)
    _check_table(data, _TOP_LEVEL, source, "")
    data.pop("tune", None)
    for required in ("name", "dataset", "architecture"):
        if required not in data:
            raise ValueError(f"{source}: missing key '{required}'")
    _check_name(data["name"], source)
    _check_finite(data, source, "")
    _check_data(data, source)
    _check_architecture(data["architecture"], source)
    penalties = tuple(_parse_penalty(p, i, source) for i, p in enumerate(data.get("penalties", [])))
    _check_optimizer(data.get("optimizer", {}), source)
    _check_table(
        data.get("adversarial_training", {}), _ADVERSARIAL_KEYS, source, "adversarial_training."
    )
    if "adversarial_training" in data:
        _wrap(
            source,
            "adversarial_training",
            adversarial_training_lib.get,
            data["adversarial_training"],
        )
    _check_table(data.get("quick", {}), _QUICK_KEYS, source, "quick.")
    _check_ensemble(data.get("ensemble"), source)
    optimizer = {"name": "adam", "learning_rate": 1e-3, **data.get("optimizer", {})}
    return Recipe(
        **{k: v for k, v in data.items() if k not in ("penalties", "optimizer")},
        penalties=penalties,
        optimizer=optimizer,
        source=source,
    )


def _check_table(table, schema, source, prefix):
    for key, value in table.items():
        if key not in schema:
            raise ValueError(f"{source}: unknown key '{prefix}{key}'; allowed: {sorted(schema)}")
        _check_type(value, schema[key], source, f"{prefix}{key}")
        rule = _NUMBER_RULES.get(f"{prefix}{key}", _NUMBER_RULES.get(key))
        if rule is not None:
            checks.number(value, f"{source}: key '{prefix}{key}'", **rule)

def _check_name(name, source):
    # The name becomes a folder (runs/<name>, zoo/<name>): the zoo's rule for entry names.
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{source}: key 'name': {name!r} is not a valid model name (it names folders): use "
            "letters, digits, '_', '.' and '-', starting with a letter or digit"
        )


def _check_finite(value, source, key):
    """TOML allows inf and nan, which no recipe number may be."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{source}: key '{key}' must be a finite number, got {value}")
    if isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, source, f"{key}.{name}" if key else name)
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_finite(item, source, f"{key}[{index}]")


def _check_type(value, expected, source, key):
    # TOML integers are fine where a float is expected; booleans are never numbers.
    ok = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ValueError(
            f"{source}: key '{key}' must be {_TYPE_NAMES[expected]}, got {type(value).__name__} {value!r}"
        )


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "a list",
}


def _wrap(source, key, check, value):
    try:
        return check(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: key '{key}': {error}") from None


def _check_data(data, source):
    """The data keys: `dataset` (a tfds name or a path; read when training), `image_size` and
    `color_mode` (see `tfjsigr.data.source`)."""
    from tfjsigr.data import source as source_lib

    if not data["dataset"].strip():
        raise ValueError(f"{source}: key 'dataset' must name a data set or a path, got ''")
    _wrap(source, "dataset", lambda name: source_lib.check_dataset_name(name, [pathlib.Path(source).parent]),
          data["dataset"])  # fmt: skip
    if "image_size" in data:
        data["image_size"] = _wrap(source, "image_size", source_lib.parse_image_size, data["image_size"])
    if "color_mode" in data:
        _wrap(source, "color_mode", lambda v: checks.choice(v, "color_mode", source_lib.COLOR_MODES),
              data["color_mode"])  # fmt: skip


def _check_architecture(table, source):
    if "name" not in table:
        raise ValueError(f"{source}: missing key 'architecture.name'")
    _check_type(table["name"], str, source, "architecture.name")
    for key in _DATASET_ARGUMENTS:
        if key in table:
            raise ValueError(
                f"{source}: key 'architecture.{key}': set by the data set, not the recipe; remove it"
            )
    arguments = {k: v for k, v in table.items() if k != "name"}
    _wrap(
        source,
        "architecture",
        lambda _: architectures.check_arguments(table["name"], arguments),
        None,
    )
    for key, value in arguments.items():
        if isinstance(value, list):
            table[key] = tuple(value)
    activation = table.get("activation")
    if isinstance(activation, str) and activation not in ACTIVATIONS:
        _wrap(source, "architecture.activation", keras.activations.get, activation)


def _parse_penalty(table, index, source):
    """The penalty a `[[penalties]]` table describes (built once, here)."""
    key = f"penalties[{index}]"
    if not isinstance(table, dict):
        raise ValueError(f"{source}: key '{key}' must be a table, got {type(table).__name__}")  # noqa: TRY004
    return _wrap(source, key, penalties_lib.get, dict(table))


def _check_ensemble(table, source):
    if table is None:
        return
    _check_table(table, _ENSEMBLE_KEYS, source, "ensemble.")
    if "members" not in table:
        raise ValueError(f"{source}: missing key 'ensemble.members'")
    combine = table.get("combine", "logits")
    if combine not in ensemble_lib.COMBINE_MODES:
        raise ValueError(
            f"{source}: key 'ensemble.combine': {combine!r} is not one of "
            f"{list(ensemble_lib.COMBINE_MODES)}"
        )


def _check_optimizer(table, source):
    _check_table(table, _OPTIMIZER_KEYS, source, "optimizer.")
    name = table.get("name", "adam")
    if name not in OPTIMIZERS:
        raise ValueError(
            f"{source}: key 'optimizer.name': unknown optimizer {name!r}; known: {list(OPTIMIZERS)}"
        )
    if "momentum" in table and name not in _MOMENTUM_OPTIMIZERS:
        raise ValueError(f"{source}: key 'optimizer.momentum': {name} takes no momentum")


def build_optimizer(options):
    """A Keras optimizer from a recipe's `optimizer` table."""
    import keras

    options = dict(options)
    name = options.pop("name", "adam")
    classes = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return classes[name](**options)
