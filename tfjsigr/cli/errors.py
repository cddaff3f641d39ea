"""What every command shares for user errors: one-line messages, and loading a saved model."""

import contextlib
import pathlib

import click

from tfjsigr.training import MODEL_FILE


def one_line(error):
    """The message of an exception on a single line."""
    return " ".join((str(error).strip() or type(error).__name__).split())


@contextlib.contextmanager
def user_errors():
    """Turns the errors a user can cause into one-line click errors (exit status 1).

    Bad files, recipes, data and arguments raise ValueError; missing, unreadable or misplaced
    files raise OSError; an empty .npy raises EOFError (which click would report as "Aborted!");
    a diverged run raises TrainingDiverged and a serving failure ServingError; an input too
    large for this machine raises MemoryError.
    """
    from tfjsigr.serving import ServingError
    from tfjsigr.training import TrainingDiverged

    try:
        yield
    except (ValueError, OSError, EOFError, TrainingDiverged, ServingError) as error:
        raise click.ClickException(one_line(error)) from None
    except MemoryError as error:
        raise click.ClickException(f"out of memory ({one_line(error)})") from None


def resolve_model_path(model):
    """(folder, model.keras path) from a run folder, a zoo entry or a .keras file."""
    path = pathlib.Path(model)
    model_file = path / MODEL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise click.ClickException(f"model not found: {model_file}")
    return model_file.parent, model_file


def load_keras_model(path):
    """A saved Keras model from a .keras file or a folder holding model.keras.

    Raises:
        click.ClickException: the file is missing or is not a loadable Keras model.
    """
    import keras

    import tfjsigr  # noqa: F401  (registers RegularizedModel and the penalties for loading)

    _, model_file = resolve_model_path(path)
    if model_file.suffix != ".keras":
        raise click.ClickException(f"{model_file}: not a .keras file")
    try:
        return keras.saving.load_model(model_file)
    except Exception as error:  # noqa: BLE001 (Keras raises many types for corrupt archives)
        reason = one_line(error)
        if reason.startswith("File not found"):  # Keras' words for a file that is no zip archive.
            reason = "not a .keras (zip) archive"
        raise click.ClickException(
            f"{model_file}: not a loadable Keras model ({reason[:200]})"
        ) from None
