"""The `tfjsigr` command line: one click group; each module below adds its commands."""

from tfjsigr.cli.group import cli

# Importing a command module registers its commands on `cli` (or its `zoo` group).
from tfjsigr.cli import training_commands  # noqa: E402,F401
from tfjsigr.cli import zoo_commands  # noqa: E402,F401
from tfjsigr.cli import evaluation_commands  # noqa: E402,F401
from tfjsigr.cli import serving_commands  # noqa: E402,F401
from tfjsigr.cli import explain_commands  # noqa: E402,F401


def main():
    cli()
