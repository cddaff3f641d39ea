"""Helpers for the CLI's tests: invoke a command in-process, check user errors."""

from click.testing import CliRunner

from tfjsigr.cli import cli


def run(*args):
    """Invokes `tfjsigr ARGS...` in-process; arguments may be paths or numbers."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, expected, only_line=False):
    """Nonzero exit, no traceback, and one `Error: ...` line holding `expected`.

    The error must be the last line of the output (progress may come before it), or with
    `only_line` the whole output.
    """
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert not only_line or len(lines) == 1, result.output
    assert expected in errors[0]
