"""The click groups every command module attaches to."""

import logging

import click

import tfjsigr


def _is_not_retracing_notice(record):
    # Evaluating several models traces one tf.function per model, which TensorFlow reports as
    # excessive retracing; on the command line that notice is noise.
    return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_is_not_retracing_notice)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(tfjsigr.__version__, prog_name="tfjsigr")
def cli():
    """tfjsigr: train, evaluate, export and serve robust, interpretable image classifiers."""


@cli.group()
def zoo():
    """Build, list, verify and evaluate the model zoo."""
