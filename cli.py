"""Runs the tfjsigr command line from a checkout: python cli.py --help."""

from tfjsigr.cli import main

if __name__ == "__main__":
    main()
