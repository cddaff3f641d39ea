"""The click groups every command module attaches to."""

import click

import tfjsigr


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(tfjsigr.__version__, prog_name="tfjsigr")
def cli():
    """tfjsigr: train, evaluate, export and serve robust, interpretable image classifiers."""


@cli.group()
def zoo():
    """Build, list, verify and evaluate the model zoo."""
