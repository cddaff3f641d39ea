"""What every command shares for user errors: one-line messages (exit status 1)."""

import contextlib

import click

from tfjsigr.checks import is_user_error, one_line


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
        if is_user_error(error):
            raise click.ClickException(one_line(error)) from None
        raise
