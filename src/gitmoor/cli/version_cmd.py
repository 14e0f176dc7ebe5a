"""`gitmoor version`."""

from __future__ import annotations

import gitmoor
from gitmoor.cli._common import out


def version() -> None:
    """Print gitmoor's version."""
    out.print(f"gitmoor {gitmoor.__version__}")
