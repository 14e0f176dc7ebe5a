"""Running kustomize and helm: the one place render/ starts a process."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitmoor.model import PermanentError, RetryableError, UserInputError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

#: Enough of a tool's complaint to act on; beyond that it is a wall of text
#: that hides the first line in the Application's conditions.
_MAX_MESSAGE = 2000

# kubectl ≥ 1.31 reports through klog: ``E1125 10:44 1234 run.go:72] "command
# failed" err="..."``; older releases and helm print ``error: ...`` / ``Error: ...``.
_KLOG_ERR = re.compile(r'^[EWIF]\d{4} [\d:.]+\s+\d+ \S+\] "[^"]*" err="(?P<msg>(?:[^"\\]|\\.)*)"')
_PREFIX = re.compile(r"^(?:error|Error|ERROR):\s*")
#: Advice aimed at someone at a terminal, not at the author of a repository.
_HINTS = ("Use --debug flag",)


@dataclass(frozen=True, slots=True)
class ToolOutput:
    stdout: str
    #: stderr lines of a successful run (deprecation notices and the like).
    warnings: tuple[str, ...]


def command_from_env(var: str, default: str) -> list[str]:
    """The tool's command: ``$var`` (split like a shell would, for wrappers), else
    ``default`` from PATH, else the binary that ``testenv/build.sh`` put in
    gitmoor's tool cache (so a checkout works without installing helm by hand)."""
    value = os.environ.get(var, "").strip()
    if value:
        return shlex.split(value)
    if shutil.which(default) is None:
        cached = _from_tool_cache(default)
        if cached is not None:
            return [str(cached)]
    return [default]


def _from_tool_cache(name: str) -> Path | None:
    root = Path(
        os.environ.get("GITMOOR_BIN_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gitmoor"
    )
    found = sorted(
        (p for p in root.glob(f"tools/*/bin/{name}") if not p.parent.parent.name.endswith(".tmp")),
        key=lambda p: p.stat().st_mtime,
    )
    return found[-1] if found else None


def _scrub(text: str, roots: Sequence[Path]) -> str:
    # Users know their repository, not where the controller checked it out;
    # absolute cache paths in a message are noise (and a small information leak).
    for root in roots:
        text = text.replace(f"{root}/", "").replace(str(root), ".")
    return text


def _unquote_go(quoted: str) -> str:
    # Go's %q escapes are JSON's for everything kustomize prints in practice.
    try:
        return str(json.loads(f'"{quoted}"'))
    except ValueError:
        return quoted.replace('\\"', '"').replace("\\\\", "\\")


def tidy_stderr(stderr: str, roots: Sequence[Path]) -> str:
    """The useful part of a tool's stderr: its error lines, without log prefixes."""
    lines: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line or line.startswith(_HINTS):
            continue
        m = _KLOG_ERR.match(line)
        if m:
            line = _unquote_go(m.group("msg"))
        lines.append(_PREFIX.sub("", line))
    text = _scrub("\n".join(lines), roots)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text or "(no error message)"


def run_tool(
    cmd: Sequence[str],
    *,
    what: str,
    concerns: str,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    scrub: Sequence[Path] = (),
) -> ToolOutput:
    """Run ``cmd`` (a list, never a shell) and classify how it failed.

    A non-zero exit is the input's fault (the tool read the user's files and
    refused them); a missing binary is the installation's and permanent; a
    timeout may pass (a loaded machine) and is retryable.
    """
    started = time.monotonic()
    try:
        proc = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as err:
        raise PermanentError(f"{what}: command not found: {cmd[0]}", concerns=concerns) from err
    except subprocess.TimeoutExpired as err:
        raise RetryableError(
            f"{what} did not finish within {timeout:g}s", concerns=concerns, retry_after=30.0
        ) from err
    log.debug(
        "event=tool_ran tool=%s concerns=%s rc=%d seconds=%.3f",
        what,
        concerns,
        proc.returncode,
        time.monotonic() - started,
    )
    if proc.returncode != 0:
        raise UserInputError(f"{what} failed: {tidy_stderr(proc.stderr, scrub)}", concerns=concerns)
    warnings = tuple(
        f"{what}: {_scrub(line.strip().lstrip('# '), scrub)}"
        for line in proc.stderr.splitlines()
        if line.strip()
    )
    return ToolOutput(proc.stdout, warnings)
