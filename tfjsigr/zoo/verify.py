"""Zoo verification: checksums, card/index consistency, and Keras/ONNX/SavedModel parity."""

import hashlib
import pathlib

import numpy as np

from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo import index as index_lib
from tfjsigr.zoo import layout
from tfjsigr.zoo.layout import (
    CARD_FILE,
    INDEX_FILE,
    MODEL_FILE,
    ONNX_FILE,
    README_FILE,
    SAMPLE_FILE,
    SAVED_MODEL_DIR,
    STAGING_PATTERN,
    list_versions,
)

PARITY_TOLERANCE = 1e-4
INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "probabilities")
RANDOM_IMAGES = 32
# Written by a user or an evaluation, not by the export: outside the checksums.
UNCHECKED_FILES = (CARD_FILE, README_FILE)
REQUIRED_KEYS = ("name", "version", "saved_model_versions", "model", "artifacts", "parity")


def sha256(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_files(entry_dir):
    """Relative POSIX paths of every checksummed file of an entry, sorted."""
    entry_dir = pathlib.Path(entry_dir)
    return sorted(
        path.relative_to(entry_dir).as_posix()
        for path in entry_dir.rglob("*")
        if path.is_file() and path.relative_to(entry_dir).as_posix() not in UNCHECKED_FILES
    )


def checksums(entry_dir):
    """{relative path: sha256} of every artifact file of an entry."""
    entry_dir = pathlib.Path(entry_dir)
    return {relative: sha256(entry_dir / relative) for relative in artifact_files(entry_dir)}


def keras_logits(model, images, batch_size=256):
    """Logits of a Keras model (inference mode) as a float32 array."""
    batches = [
        np.asarray(model(images[i : i + batch_size], training=False), dtype=np.float32)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(batches)


def onnx_outputs(path, images):
    """{"logits", "probabilities"} of an ONNX model through onnxruntime (CPU).

    Raises:
        ValueError: the model does not have the zoo's input and output names.
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or sorted(outputs) != sorted(OUTPUT_NAMES):
        raise ValueError(
            f"{path}: expected input {INPUT_NAME!r} and outputs {list(OUTPUT_NAMES)}, "
            f"got {inputs} and {outputs}"
        )
    values = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.asarray(images, np.float32)})
    return dict(zip(OUTPUT_NAMES, values))


def saved_model_outputs(directory, images, batch_size=256):
    """{"logits", "probabilities"} of a SavedModel's `serving_default` signature.

    Raises:
        ValueError: no `serving_default` signature with the zoo's input and output names.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(str(directory))
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ValueError(f"{directory}: no serving_default signature")
    inputs = sorted(signature.structured_input_signature[1])
    outputs = sorted(signature.structured_outputs)
    if inputs != [INPUT_NAME] or outputs != sorted(OUTPUT_NAMES):
        raise ValueError(
            f"{directory}: serving_default takes {inputs} and returns {outputs}, expected "
            f"{[INPUT_NAME]} and {sorted(OUTPUT_NAMES)}"
        )
    results = {name: [] for name in OUTPUT_NAMES}
    for i in range(0, len(images), batch_size):
        out = signature(**{INPUT_NAME: tf.constant(images[i : i + batch_size], tf.float32)})
        for name in OUTPUT_NAMES:
            results[name].append(out[name].numpy())
    return {name: np.concatenate(values) for name, values in results.items()}


def parity(reference_logits, outputs):
    """Max abs differences of `outputs` from reference logits and their softmax.

    Args:
        reference_logits: float32 [N, C] logits of the Keras model.
        outputs: {"logits", "probabilities"} of another runtime on the same inputs.

    Returns:
        {"images": N, "max_abs_logit_diff": float, "max_abs_probability_diff": float}.
    """
    reference = np.asarray(reference_logits, np.float64)
    shifted = np.exp(reference - reference.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    return {
        "images": len(reference),
        "max_abs_logit_diff": _max_abs(outputs["logits"], reference),
        "max_abs_probability_diff": _max_abs(outputs["probabilities"], probabilities),
    }


def _max_abs(values, reference):
    values = np.asarray(values, np.float64)
    if values.shape != reference.shape:
        return float("inf")
    return float(np.max(np.abs(values - reference), initial=0.0))


def parity_failures(figures, tolerance=PARITY_TOLERANCE):
    """Lines describing each runtime whose parity figures exceed the tolerance (or are NaN)."""
    return [
        f"{runtime}: {key} {value:.3g} exceeds {tolerance:g} on {figure['images']} images"
        for runtime, figure in figures.items()
        for key, value in figure.items()
        if key.startswith("max_abs") and not value < tolerance
    ]


def verify_entry(entry_dir, tolerance=PARITY_TOLERANCE, random_images=RANDOM_IMAGES):
    """Checks one zoo entry: card, checksums, SavedModel versions and runtime parity.

    Parity runs on the sample stored at export plus `random_images` fresh uniform inputs in
    [0, 1]: the ONNX model (onnxruntime) and the latest SavedModel (`serving_default`) must match
    the logits of `model.keras` within `tolerance`, and `model.keras` must reproduce the logits
    recorded at export.

    Args:
        entry_dir: the entry directory, e.g. `zoo/jr`.
        tolerance: max abs logit/probability difference allowed.
        random_images: number of fresh random inputs added to the stored sample.

    Returns:
        A list of one-line problems; empty when the entry is sound.
    """
    entry_dir = pathlib.Path(entry_dir)
    try:
        card = card_lib.read_card(entry_dir)
    except (OSError, ValueError) as error:
        return [str(error)]
    missing = [key for key in REQUIRED_KEYS if key not in card]
    if missing:
        return [f"{entry_dir / CARD_FILE}: corrupt model card (missing {missing})"]
    problems = _card_problems(entry_dir, card) + _checksum_problems(entry_dir, card)
    return problems + _runtime_problems(entry_dir, card, tolerance, random_images)


def _card_problems(entry_dir, card):
    problems = [
        f"{entry_dir / CARD_FILE}: corrupt model card ({problem})"
        for problem in _card_type_problems(card)
    ]
    if card["name"] != entry_dir.name:
        problems.append(f"{entry_dir}: card names the entry {card['name']!r}")
    versions = list_versions(entry_dir / SAVED_MODEL_DIR)
    if versions != card["saved_model_versions"] or not versions or versions[-1] != card["version"]:
        problems.append(
            f"{entry_dir / SAVED_MODEL_DIR}: versions on disk {versions} do not match the card's "
            f"saved_model_versions {card['saved_model_versions']!r} and version {card['version']!r}"
        )
    readme = entry_dir / README_FILE
    try:
        up_to_date = readme.read_text() == card_lib.render_readme(card)
    except (OSError, UnicodeDecodeError):
        up_to_date = False
    if not up_to_date:
        problems.append(f"{readme}: missing or out of date with card.json")
    return problems


def _card_type_problems(card):
    """What is wrong with the types of the card's required sections."""
    checks = {
        "name": (isinstance(card["name"], str), "a string"),
        "version": (index_lib.is_positive_int(card["version"]), "a positive integer"),
        "saved_model_versions": (
            isinstance(card["saved_model_versions"], list)
            and all(index_lib.is_positive_int(v) for v in card["saved_model_versions"]),
            "a list of positive integers",
        ),
        "model": (isinstance(card["model"], dict), "a JSON object"),
        "artifacts": (isinstance(card["artifacts"], dict), "a JSON object"),
        "parity": (isinstance(card["parity"], dict), "a JSON object"),
    }
    return [
        f"{key} must be {expected}, got {_short_repr(card[key])} ({type(card[key]).__name__})"
        for key, (ok, expected) in checks.items()
        if not ok
    ]


def _short_repr(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _checksum_problems(entry_dir, card):
    expected = card["artifacts"]
    if not isinstance(expected, dict):
        return []  # Reported by _card_problems.
    problems = []
    for relative, digest in sorted(expected.items()):
        path = entry_dir / relative
        if not index_lib.is_inside_path(relative):
            problems.append(
                f"{entry_dir / CARD_FILE}: artifact {relative!r} is outside the entry"
            )
        elif not path.is_file():
            problems.append(f"{path}: missing")
        else:
            problems += _digest_problems(path, digest)
    for relative in artifact_files(entry_dir):
        if relative not in expected:
            problems.append(f"{entry_dir / relative}: not listed in the card's checksums")
    return problems


def _runtime_problems(entry_dir, card, tolerance, random_images):
    from tfjsigr.zoo.layout import load_model

    try:
        model = load_model(entry_dir / MODEL_FILE)
    except (OSError, ValueError) as error:  # any load failure is a problem to report
        return [f"{entry_dir / MODEL_FILE}: cannot load ({_one_line(error)})"]
    images, recorded, problems = _parity_inputs(entry_dir, card, random_images)
    if images is None:
        return problems
    try:
        reference = keras_logits(model, images)
    except Exception as error:  # noqa: BLE001
        return problems + [f"{entry_dir / MODEL_FILE}: cannot run ({_one_line(error)})"]
    if recorded is not None:
        drift = _max_abs(reference[: len(recorded)], np.asarray(recorded, np.float64))
        if not drift < tolerance:
            problems.append(
                f"{entry_dir / MODEL_FILE}: logits differ from those recorded at export by {drift:.3g}"
            )
    runtimes = {
        ONNX_FILE: lambda: _checked_onnx_outputs(entry_dir / ONNX_FILE, images),
        f"{SAVED_MODEL_DIR}/{card['version']}": lambda: saved_model_outputs(
            entry_dir / SAVED_MODEL_DIR / str(card["version"]), images
        ),
    }
    for relative, run in runtimes.items():
        try:
            figures = {relative: parity(reference, run())}
        except Exception as error:  # noqa: BLE001
            problems.append(f"{entry_dir / relative}: cannot run ({_one_line(error)})")
            continue
        problems += [f"{entry_dir}/{line}" for line in parity_failures(figures, tolerance)]
    return problems


def _digest_problems(path, digest):
    try:
        actual = sha256(path)
    except OSError as error:
        return [f"{path}: unreadable ({error.strerror or error})"]
    return [] if actual == digest else [f"{path}: sha256 mismatch (file changed since export)"]


def _checked_onnx_outputs(path, images):
    import onnx

    onnx.checker.check_model(str(path))
    return onnx_outputs(path, images)


def _parity_inputs(entry_dir, card, random_images):
    """Stored sample (with its recorded logits) followed by fresh random images in [0, 1].

    Returns:
        (images or None when there is no input shape to draw from, recorded logits or None,
        problems).
    """
    shape = _card_input_shape(card)
    problems, stored, recorded = [], [], None
    path = entry_dir / SAMPLE_FILE
    try:
        with np.load(path) as sample:
            stored, recorded = sample["images"].astype(np.float32), sample["logits"]
        shape = stored.shape[1:]
    except Exception as error:  # noqa: BLE001
        problems.append(f"{path}: cannot read the stored sample ({_one_line(error)})")
    if not shape:
        problem = f"{entry_dir / CARD_FILE}: no input shape to draw random images from"
        return None, None, [*problems, problem]
    fresh = np.random.default_rng(0).uniform(size=(random_images, *shape)).astype(np.float32)
    images = np.concatenate([np.reshape(stored, (-1, *shape)), fresh])
    return images, recorded, problems


def _card_input_shape(card):
    """(H, W, C) from the card's model.input.shape [None, H, W, C]; () when it has none."""
    try:
        shape = tuple(card["model"]["input"]["shape"][1:])
    except (KeyError, IndexError, TypeError):
        return ()
    if not all(index_lib.is_positive_int(d) for d in shape):
        return ()
    return shape


def _one_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def verify_zoo(zoo_dir, tolerance=PARITY_TOLERANCE):
    """Checks every entry of a zoo, the index that lists them, and for leftover staging folders.

    Args:
        zoo_dir: the zoo directory.
        tolerance: max abs logit/probability difference allowed (see `verify_entry`).

    Returns:
        A list of one-line problems; empty when the whole zoo is sound.

    Raises:
        FileNotFoundError: `zoo_dir` does not exist.
        ValueError: `zoo_dir` is one entry of a zoo, not a zoo.
    """
    zoo_dir = pathlib.Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise FileNotFoundError(f"{zoo_dir}: no such zoo directory")
    layout.check_is_zoo_not_entry(zoo_dir)
    on_disk = [p.name for p in sorted(zoo_dir.iterdir()) if layout.is_entry(p)]
    problems, listed = _index_problems(zoo_dir, on_disk)
    problems += _leftover_problems(zoo_dir)
    if not on_disk and not listed:
        problems.append(f"{zoo_dir}: no entries to verify")
    for name in on_disk:
        problems += _guarded_verify_entry(zoo_dir / name, tolerance)
    return problems


def _leftover_problems(zoo_dir):
    """Staging folders an interrupted export left behind (`.<name>.XXXX.staging[.old]`)."""
    return [
        f"{path}: left behind by an interrupted export; delete it (unless an export is running)"
        for path in sorted(zoo_dir.iterdir())
        if path.name.startswith(".") and STAGING_PATTERN.search(path.name)
    ]


def _guarded_verify_entry(entry_dir, tolerance):
    """`verify_entry`, with anything unforeseen reported as that entry's problem."""
    try:
        return verify_entry(entry_dir, tolerance)
    except Exception as error:  # noqa: BLE001  (one broken entry must not hide the others)
        return [f"{entry_dir}: cannot verify ({_one_line(error)})"]


def _index_problems(zoo_dir, on_disk):
    index_path = zoo_dir / INDEX_FILE
    try:
        records = index_lib.read_index(zoo_dir)
    except ValueError as error:
        return [str(error)], []
    if on_disk and not index_path.exists():
        return [f"{index_path}: missing"], []
    problems = []
    for record in records:
        name = record["name"]
        if name not in on_disk:
            problems.append(f"{index_path}: lists {name!r}, which has no entry directory")
            continue
        try:
            expected = index_lib.index_record(card_lib.read_card(zoo_dir / name))
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # verify_entry reports the card itself.
        if record != expected:
            problems.append(f"{index_path}: record of {name!r} does not match its card")
    for name in sorted(set(on_disk) - {r["name"] for r in records}):
        problems.append(f"{index_path}: entry {name!r} is not listed")
    return problems, [r["name"] for r in records]
