"""Where testenv/build.sh puts helm, kwok, sops and age (the tests put these on
PATH) and the Prometheus server the rollout analysis tests start."""

from __future__ import annotations

import os
from pathlib import Path


def _cache_root() -> Path:
    return Path(
        os.environ.get("GITMOOR_BIN_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gitmoor"
    )


def tools_bins() -> list[str]:
    """The tool cache's bin directories. A ``*.tmp`` directory is a build still
    running: its binaries may be half written."""
    return sorted(
        str(p) for p in _cache_root().glob("tools/*/bin") if not p.parent.name.endswith(".tmp")
    )


def prometheus_binary() -> Path | None:
    """The Prometheus server: ``$GITMOOR_PROMETHEUS``, else the one
    ``testenv/build.sh prometheus`` built (``prometheus/<module version>/bin``;
    the version build.sh pins is the only one it keeps fresh, but any finished
    build answers PromQL), else None."""
    explicit = os.environ.get("GITMOOR_PROMETHEUS")
    if explicit:
        return Path(explicit)
    built = [
        p
        for p in _cache_root().glob("prometheus/*/bin/prometheus")
        if not p.parent.parent.name.endswith(".tmp")
    ]
    return max(built, key=lambda p: p.stat().st_mtime) if built else None
