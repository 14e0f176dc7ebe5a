"""Starting `gitmoor` loads only what the command runs.

`gitmoor --help`, `gitmoor version` and every `--help` register all the command
groups, but they need neither a cluster nor the engine: the kube client (httpx,
h2), the engine, the controller (fastapi, uvicorn, prometheus_client), the
renderers and yaml are imported inside the commands that use them. Before the
CLI was split, `--help` loaded all of them, about half its start-up time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

#: Modules a command that talks to no cluster and runs no sync must not load.
HEAVY = (
    "gitmoor.engine",
    "gitmoor.kube",
    "gitmoor.controller",
    "gitmoor.render",
    "gitmoor.source",
    "gitmoor.settings",
    "httpx",
    "h2",
    "fastapi",
    "uvicorn",
    "prometheus_client",
    "yaml",
)

# Runs the command as `python -m gitmoor` does, then writes the loaded modules.
_PROBE = """
import json, runpy, sys
modules_file, *args = sys.argv[1:]
sys.argv = ["gitmoor", *args]
code = 0
try:
    runpy.run_module("gitmoor", run_name="__main__")
except SystemExit as e:
    code = e.code or 0
with open(modules_file, "w") as f:
    json.dump(sorted(sys.modules), f)
sys.exit(code)
"""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    modules_file = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(modules_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, set(json.loads(modules_file.read_text()))


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("version",),
        ("app", "--help"),
        ("app", "sync", "--help"),
        ("app", "terminate-op", "--help"),
        ("controller", "--help"),
        ("repo", "add", "--help"),
        ("cluster", "add", "--help"),
        ("proj", "create", "--help"),
        ("health", "--help"),
    ],
    ids=" ".join,
)
def test_help_and_version_load_no_engine_client_or_server(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    done, modules = _run(tmp_path, *args)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    loaded = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert loaded == [], f"`gitmoor {' '.join(args)}` imported {loaded}"


def test_version_prints_the_version(tmp_path: Path) -> None:
    import gitmoor

    done, _ = _run(tmp_path, "version")

    assert done.stdout == f"gitmoor {gitmoor.__version__}\n"
