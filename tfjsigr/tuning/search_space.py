"""A recipe's `[tune]` table: the parameters a study searches, and the recipes they make.

Each key is the dotted path of one recipe number or string, quoted; each value says its range:

```toml
[tune]
"penalties[0].jacobian_weight" = { low = 0.005, high = 0.5, log = true }   # float, log scale
"penalties[0].top_k" = { low = 0.05, high = 0.5 }                         # float, linear
"penalties[0].projections" = { low = 1, high = 4 }                        # int (both ints)
"architecture.activation" = { choices = ["relu", "half_huber_relu"] }     # categorical
```

A range is an int range when both bounds are TOML integers, else a float range; `step` is
allowed on linear ranges. Each candidate value set is checked by the recipe's own validation at
both bounds (and every choice), so a weight out of its range or a parameter the penalty does
not take is a one-line ValueError naming the `[tune]` key.
"""

import copy
import dataclasses
import math
import re

_SPEC_KEYS = {"low", "high", "log", "step", "choices"}
_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One searched recipe value: a float/int range or a list of choices."""

    name: str
    path: tuple
    low: object = None
    high: object = None
    log: bool = False
    step: object = None
    choices: tuple = ()

    @property
    def kind(self):
        if self.choices:
            return "categorical"
        return "int" if isinstance(self.low, int) and isinstance(self.high, int) else "float"

    def suggest(self, trial):
        """The value an Optuna trial draws for this parameter."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        suggest = trial.suggest_int if self.kind == "int" else trial.suggest_float
        return suggest(self.name, self.low, self.high, log=self.log, step=self.step or None)

    def edge_values(self):
        """The values whose recipes must all be valid: both bounds, or every choice."""
        return self.choices or (self.low, self.high)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The `[tune]` parameters of a recipe, with the recipe's data (without `[tune]`)."""

    parameters: tuple
    recipe_data: dict
    source: str = "<dict>"

    def suggest(self, trial):
        """{parameter name: value} drawn by an Optuna trial."""
        return {p.name: p.suggest(trial) for p in self.parameters}

    def recipe_data_with(self, values):
        """The recipe's data (a deep copy) with `values` ({name: value}) put in place."""
        data = copy.deepcopy(self.recipe_data)
        by_name = {p.name: p for p in self.parameters}
        for name, value in values.items():
            _set(data, by_name[name].path, value)
        return data

    def recipe(self, values, name=None):
        """The validated `Recipe` with `values` applied (renamed to `name` if given)."""
        from tfjsigr.pipeline import recipes

        data = self.recipe_data_with(values)
        if name:
            data["name"] = name
        return recipes.parse_recipe(data, source=self.source)


def load_search_space(path):
    """The `SearchSpace` of a recipe file; ValueError (one line) if it has no valid `[tune]`."""
    from tfjsigr.pipeline import recipes

    return parse_search_space(recipes.read_recipe_file(path), source=str(path))


def parse_search_space(data, source="<dict>"):
    """The `SearchSpace` of recipe data (as read from TOML, `tune` key included).

    Raises:
        ValueError: no `[tune]` table, a malformed range, or a parameter the recipe does not
            take or not in the recipe's range; one line naming `source` and the `[tune]` key.
    """
    from tfjsigr.pipeline import recipes

    data = copy.deepcopy(data)
    table = data.pop("tune", None)
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{source}: no [tune] table of parameters to search (see README)")
    recipes.parse_recipe(data, source=source)  # The recipe itself must be valid first.
    parameters = tuple(_parameter(name, spec, source) for name, spec in table.items())
    space = SearchSpace(parameters, data, source)
    for parameter in parameters:
        for value in parameter.edge_values():
            try:
                space.recipe({parameter.name: value})
            except ValueError as error:
                reason = str(error).removeprefix(f"{source}: ")
                raise ValueError(
                    f"{source}: key 'tune.\"{parameter.name}\"': value {value!r} does not make "
                    f"a valid recipe ({reason})"
                ) from None
    return space


def _parameter(name, spec, source):
    def bad(reason):
        return ValueError(f"{source}: key 'tune.\"{name}\"': {reason}")

    try:
        path = _parse_path(name)
    except ValueError as error:
        raise bad(str(error)) from None
    if not isinstance(spec, dict):
        raise bad("must be a table such as { low = 0.01, high = 1.0, log = true }")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise bad(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            raise bad("'choices' excludes low, high, log and step")
        if not isinstance(choices, list) or not choices:
            raise bad("'choices' must be a non-empty list")
        if any(isinstance(c, (dict, list)) for c in choices):
            raise bad("'choices' must hold numbers, strings or booleans")
        return Parameter(name, path, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise bad("a range needs 'low' and 'high' (or give 'choices')")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for field, value in (("low", low), ("high", high)) + ((("step", step),) if step else ()):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise bad(f"'{field}' must be a finite number, got {value!r}")
    if not isinstance(log, bool):
        raise bad(f"'log' must be true or false, got {log!r}")
    if not low < high:
        raise bad(f"'low' must be < 'high', got low {low} and high {high}")
    if log and low <= 0:
        raise bad(f"a log range needs 'low' > 0, got {low}")
    if step is not None and (log or step <= 0 or step > high - low):
        raise bad(f"'step' must be in (0, high - low] on a linear range, got {step}")
    return Parameter(name, path, low, high, log, step)


def _parse_path(name):
    """("penalties", 0, "jacobian_weight") from "penalties[0].jacobian_weight"."""
    path = []
    for part in name.split("."):
        match = _PART.fullmatch(part)
        if not match:
            raise ValueError(f"not a recipe key path such as 'penalties[0].weight': {name!r}")
        path.append(match.group(1))
        path.extend(int(i) for i in re.findall(r"\d+", match.group(2)))
    return tuple(path)


def _set(data, path, value):
    """Puts `value` at `path` in nested recipe data; ValueError if a parent is absent."""
    for key in path[:-1]:
        if isinstance(key, int):
            if not isinstance(data, list) or key >= len(data):
                raise ValueError(f"the recipe has no {key!r} in {'.'.join(map(str, path))}")
            data = data[key]
        else:
            if not isinstance(data, dict) or key not in data:
                raise ValueError(f"the recipe has no table '{key}'")
            data = data[key]
    if not isinstance(data, dict) or isinstance(path[-1], int):
        raise ValueError(f"{'.'.join(map(str, path))} is not a key of a table")  # noqa: TRY004
    data[path[-1]] = value
