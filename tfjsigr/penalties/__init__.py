"""Training penalties: pure functions (`ops`) and serializable Keras-friendly objects."""

import keras

from tfjsigr.penalties.input_gradient import InputGradient
from tfjsigr.penalties.jacobian import Jacobian
from tfjsigr.penalties.jsigr import JSIGR
from tfjsigr.penalties.lipschitz import Lipschitz
from tfjsigr.penalties.neuron_sensitivity import NeuronSensitivity
from tfjsigr.penalties.penalty import CompositePenalty, Penalty, PenaltyContext
from tfjsigr.penalties.selective_input_gradient import SelectiveInputGradient
from tfjsigr.penalties.trades import TRADES

ALL = {
    "input_gradient": InputGradient,
    "jacobian": Jacobian,
    "selective_input_gradient": SelectiveInputGradient,
    "jsigr": JSIGR,
    "neuron_sensitivity": NeuronSensitivity,
    "lipschitz": Lipschitz,
    "trades": TRADES,
}


def get(identifier):
    """A penalty from its name, a dict or an instance.

    Args:
        identifier: a `Penalty`; a name ("input_gradient", "jacobian",
            "selective_input_gradient", "jsigr", "trades") built with default arguments; a
            dict `{"type": name, **arguments}` (as in recipes); or a Keras serialization dict
            (`{"class_name": ..., "config": ...}`).

    Returns:
        A `Penalty`.

    Raises:
        ValueError: unknown name, or arguments the penalty does not take.
    """
    if isinstance(identifier, Penalty):
        return identifier
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            return keras.saving.deserialize_keras_object(identifier)
        arguments = dict(identifier)
        kind = arguments.pop("type", None)
        if kind is None:
            raise ValueError(f"penalty dict needs a 'type' (one of {sorted(ALL)}): {identifier!r}")
        try:
            return _lookup(kind)(**arguments)
        except TypeError as error:
            raise ValueError(f"penalty {kind!r}: {error}") from None
    raise ValueError(f"cannot interpret {identifier!r} as a penalty")


def to_record(penalty):
    """A penalty as recipe data: {"type": name, **penalty.get_config()}, which `get` rebuilds."""
    kind = next((name for name, cls in ALL.items() if type(penalty) is cls), None)
    if kind is None:
        raise ValueError(f"{type(penalty).__name__} is not one of tfjsigr's penalties {sorted(ALL)}")
    return {"type": kind, **penalty.get_config()}


def _lookup(name):
    try:
        return ALL[name]
    except KeyError:
        raise ValueError(f"unknown penalty {name!r}; known: {sorted(ALL)}") from None


__all__ = [
    "JSIGR",
    "TRADES",
    "CompositePenalty",
    "InputGradient",
    "Jacobian",
    "Lipschitz",
    "NeuronSensitivity",
    "Penalty",
    "PenaltyContext",
    "SelectiveInputGradient",
    "get",
    "to_record",
]
