"""Running kustomize and helm: the one place render/ starts a process.

Every run is shut in, because the tools read files that anyone who can push
to a repository wrote:

- **No network** (unless the app allows remote kustomize bases): the proxy
  variables point at a closed loopback port with an empty ``NO_PROXY``. The
  port is one this process holds bound and never listens on, so no other
  program can take it and a connection is refused at once instead of hanging
  (a fixed port such as 9, "discard", may have a listener on some hosts). Go's HTTP client never proxies loopback
  addresses, so two more doors close what the proxy leaves open:
  ``REQUEST_METHOD`` is set, with which Go refuses every ``http://`` request
  while a proxy is configured (its "httpoxy" rule for CGI programs,
  golang.org/s/cgihttpproxy), and ``SSL_CERT_FILE``/``SSL_CERT_DIR`` name an
  empty bundle, so an ``https://`` handshake trusts no server and no request is
  ever sent. git, which kustomize runs for remote bases, may use no transport
  (``GIT_ALLOW_PROTOCOL``). The checks before the run (``kustomize``) refuse
  URLs; this is the wall behind them.
- **Nothing of the controller's own environment** beyond ``PATH``, locale and
  ``TMPDIR``: no ``GIT_*``, no ``KUBECONFIG``, no cloud or proxy credentials;
  ``HOME`` and the XDG directories are a fresh temporary directory.
- **Bounded output**: stdout and stderr are read as they come, and the tool is
  killed (with everything it started: it runs in its own session) once stdout
  passes ``MAX_RENDER_BYTES`` or stderr ``MAX_TOOL_STDERR_BYTES``, or when the
  timeout passes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitmoor.model import PermanentError, RetryableError, UserInputError
from gitmoor.render.limits import MAX_RENDER_BYTES, MAX_TOOL_STDERR_BYTES, mib

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


_closed: socket.socket | None = None
_closed_lock = threading.Lock()


def closed_proxy() -> str:
    """A proxy URL whose port refuses every connection, for as long as we run.

    A TCP socket that is bound but never listens answers a connection with a
    reset; holding it keeps the port from being given to anyone else.
    """
    global _closed
    with _closed_lock:
        if _closed is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            _closed = sock
        return f"http://127.0.0.1:{_closed.getsockname()[1]}"


#: What a tool may inherit from the controller's environment, nothing else.
_INHERITED = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def tool_env(
    home: Path, *, network: bool, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a tool run; ``home`` is a fresh directory of the run."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
    # The caller's additions first, so that none of them can undo what follows.
    env.update(extra or {})
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        # No system gitconfig either (credential helpers, url.insteadOf rewrites).
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    if network:
        # Remote kustomize bases, by the app's choice: public https only, with no
        # credentials of the controller's (ssh would find its keys through the
        # password database, whatever HOME says).
        env["GIT_ALLOW_PROTOCOL"] = "https"
    else:
        proxy = closed_proxy()
        for var in _PROXY_VARS:
            env[var] = env[var.lower()] = proxy
        env["NO_PROXY"] = env["no_proxy"] = ""
        env["REQUEST_METHOD"] = "GET"  # Go: no http:// request while a proxy is set
        empty_bundle = home / "no-trusted-certificates.pem"
        empty_bundle.touch()
        (home / "no-trusted-certificates").mkdir(exist_ok=True)
        env["SSL_CERT_FILE"] = str(empty_bundle)
        env["SSL_CERT_DIR"] = str(home / "no-trusted-certificates")
        env["GIT_ALLOW_PROTOCOL"] = "none"  # not a protocol: git may use none
    return env


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # The tool leads its own session: this reaches git or plugins it started too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class _Overflow(Exception):
    def __init__(self, stream: str, limit: int) -> None:
        super().__init__(stream)
        self.stream = stream
        self.limit = limit


def _collect(proc: subprocess.Popen[bytes], deadline: float) -> tuple[bytes, bytes]:
    """Both pipes read to their end, or ``TimeoutError`` / ``_Overflow``."""
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    limits = {out_fd: MAX_RENDER_BYTES, err_fd: MAX_TOOL_STDERR_BYTES}
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    sizes = dict.fromkeys(chunks, 0)
    with selectors.DefaultSelector() as sel:
        sel.register(out_fd, selectors.EVENT_READ)
        sel.register(err_fd, selectors.EVENT_READ)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            for key, _ in sel.select(remaining):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    sel.unregister(key.fd)
                    continue
                sizes[key.fd] += len(data)
                if sizes[key.fd] > limits[key.fd]:
                    raise _Overflow(
                        "output" if key.fd == out_fd else "error output", limits[key.fd]
                    )
                chunks[key.fd].append(data)
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd])


def run_tool(
    cmd: Sequence[str],
    *,
    what: str,
    concerns: str,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    scrub: Sequence[Path] = (),
    network: bool = False,
) -> ToolOutput:
    """Run ``cmd`` (a list, never a shell), shut in as the module docstring says,
    and classify how it failed.

    ``env`` adds variables to the isolated environment (helm's homes); it cannot
    override what isolates the tool. A non-zero exit or too much output is the
    input's fault (the tool read the user's files and refused them, or they
    render too much); a missing binary is the installation's and permanent; a
    timeout, or a kill from outside, may pass (a loaded machine) and is retryable.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gitmoor-tool-") as tmp:
        home = Path(tmp)
        try:
            proc = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=tool_env(home, network=network, extra=env),
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as err:
            raise PermanentError(f"{what}: command not found: {cmd[0]}", concerns=concerns) from err
        except OSError as err:
            raise PermanentError(
                f"{what}: cannot run {cmd[0]}: {err.strerror or err}", concerns=concerns
            ) from err
        try:
            out, err_out = _collect(proc, started + timeout)
            proc.wait(max(0.0, started + timeout - time.monotonic()))
        except (TimeoutError, subprocess.TimeoutExpired) as err:
            _kill(proc)
            raise RetryableError(
                f"{what} did not finish within {timeout:g}s", concerns=concerns, retry_after=30.0
            ) from err
        except _Overflow as err:
            _kill(proc)
            raise UserInputError(
                f"{what} was stopped: its {err.stream} passed the {mib(err.limit)} limit",
                concerns=concerns,
            ) from err
        except BaseException:
            _kill(proc)
            raise
        finally:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            # Whatever the tool left running in its session goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    stdout = out.decode("utf-8", errors="replace")
    stderr = err_out.decode("utf-8", errors="replace")
    log.debug(
        "event=tool_ran tool=%s concerns=%s rc=%d seconds=%.3f stdout_bytes=%d",
        what,
        concerns,
        proc.returncode,
        time.monotonic() - started,
        len(out),
    )
    if proc.returncode < 0:
        # Killed by a signal from outside (the OOM killer, a shutdown): not
        # something the repository said, so try again later.
        raise RetryableError(
            f"{what} was killed by signal {-proc.returncode}", concerns=concerns, retry_after=30.0
        )
    if proc.returncode != 0:
        raise UserInputError(
            f"{what} failed: {tidy_stderr(stderr, (*scrub, home))}", concerns=concerns
        )
    warnings = tuple(
        f"{what}: {_scrub(line.strip().lstrip('# '), (*scrub, home))}"
        for line in stderr.splitlines()
        if line.strip()
    )
    return ToolOutput(stdout, warnings)
