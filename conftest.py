"""Test-suite settings: the suite never reaches for the network (CI has none)."""

import os

os.environ.setdefault("TFJSIGR_OFFLINE", "1")
