"""Where testenv/build.sh puts helm, kwok, sops and age: the tests put these on PATH."""

from __future__ import annotations

import os
from pathlib import Path


def tools_bins() -> list[str]:
    """The tool cache's bin directories. A ``*.tmp`` directory is a build still
    running: its binaries may be half written."""
    cache = os.environ.get("GITMOOR_BIN_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gitmoor"
    )
    return sorted(
        str(p) for p in Path(cache).glob("tools/*/bin") if not p.parent.name.endswith(".tmp")
    )
