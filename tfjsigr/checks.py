"""The one validator of numbers and choices: recipes, penalty and attack arguments, tune ranges;
and `one_line`, the wording of any error in a one-line message.

Every check returns the value converted (a float, or an int for whole numbers) or raises a
one-line `ValueError` of the form "<name> must be <rule>, got <value>"; callers add where the
value came from (a recipe file and key, say).
"""

import math
import numbers
import sys


def number(value, name, low=None, high=None, low_open=False, high_open=False, whole=False):
    """`value` as a finite float (an int with `whole`) within [low, high].

    Args:
        value: the value to check; booleans and strings are never numbers, and a fraction is
            never truncated to a whole number.
        name: what the value is, for the message.
        low, high: bounds, None for none.
        low_open, high_open: exclude the bound itself.
        whole: require a whole number and return an int.

    Raises:
        ValueError: "<name> must be <rule>, got <value>".
    """
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = is_number and math.isfinite(value)
    if ok and whole:
        ok = float(value) == int(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be {_rule(low, high, low_open, high_open, whole)}, got {value!r}")
    return int(value) if whole else float(value)


def whole(value, name, low=None, high=None):
    """`value` as an int within [low, high] (see `number`)."""
    return number(value, name, low, high, whole=True)


def fraction(value, name, allow_zero=False, allow_one=True):
    """`value` as a float in (0, 1] (or [0, 1], (0, 1): see the flags)."""
    return number(value, name, 0.0, 1.0, low_open=not allow_zero, high_open=not allow_one)


def choice(value, name, allowed):
    """`value` if it is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _rule(low, high, low_open, high_open, whole_number):
    kind = "a whole number" if whole_number else "a finite number"
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"{kind} in {left}{low}, {high}{right}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    return kind


# Errors of the library a user causes beyond ValueError, OSError and EOFError: (module, class
# name). They are looked up only once their module is imported (an error of a module never
# imported cannot have been raised), so asking imports neither TensorFlow nor the serving stack.
_LIBRARY_USER_ERRORS = (
    ("tfjsigr.pipeline.runs", "TrainingDiverged"),
    ("tfjsigr.serving.client", "ServingError"),
)


def is_user_error(error):
    """Whether an error is one a user causes, which its message alone explains: bad files,
    recipes, data and arguments (ValueError), missing or unreadable files (OSError), an empty
    .npy (EOFError), a diverged run (TrainingDiverged), a serving failure (ServingError)."""
    loaded = (getattr(sys.modules[module], name, None) for module, name in _LIBRARY_USER_ERRORS
              if module in sys.modules)  # fmt: skip
    kinds = (ValueError, OSError, EOFError, *(kind for kind in loaded if kind is not None))
    return isinstance(error, kinds)


def one_line(error):
    """The message of an exception on a single line (its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__
