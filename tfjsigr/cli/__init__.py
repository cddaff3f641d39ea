"""The `tfjsigr` command line: one click group; each module below adds its commands."""

# Importing a command module registers its commands on `cli` (or its `zoo` group).
from tfjsigr.cli import (  # noqa: F401
    evaluation_commands,
    explain_commands,
    serving_commands,
    training_commands,
    tune_commands,
    zoo_commands,
)
from tfjsigr.cli.group import cli


def main():
    cli()
