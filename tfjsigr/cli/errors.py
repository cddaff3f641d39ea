"""What every command shares for user errors: one-line messages (exit status 1)."""

import contextlib
import sys

import click

from tfjsigr.checks import one_line

# Errors of the library a user causes beyond ValueError and OSError: (module, class name). They
# are looked up only once their module is imported (an error of a module never imported cannot
# have been raised), so no command imports TensorFlow or the serving stack for them.
_LIBRARY_USER_ERRORS = (
    ("tfjsigr.pipeline.runs", "TrainingDiverged"),
    ("tfjsigr.serving.client", "ServingError"),
)


def _user_error_types():
    loaded = (getattr(sys.modules[module], name, None) for module, name in _LIBRARY_USER_ERRORS
              if module in sys.modules)  # fmt: skip
    return (ValueError, OSError, EOFError, *(kind for kind in loaded if kind is not None))


@contextlib.contextmanager
def user_errors():
    """Turns the errors a user can cause into one-line click errors (exit status 1).

    Bad files, recipes, data and arguments raise ValueError; missing, unreadable or misplaced
    files raise OSError; an empty .npy raises EOFError (which click would report as "Aborted!");
    a diverged run raises TrainingDiverged and a serving failure ServingError; an input too
    large for this machine raises MemoryError.
    """
    try:
        yield
    except MemoryError as error:
        raise click.ClickException(f"out of memory ({one_line(error)})") from None
    except Exception as error:
        if isinstance(error, _user_error_types()):
            raise click.ClickException(one_line(error)) from None
        raise
