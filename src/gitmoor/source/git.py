"""The one door to the ``git`` binary: every git process of gitmoor starts here.

Each process gets an environment built from nothing rather than inherited, so
that neither the user's configuration nor a repository on the way can steer it:

- ``HOME`` is a private directory of the cache, with ``GIT_CONFIG_GLOBAL`` set
  to the null device and ``GIT_CONFIG_NOSYSTEM=1``: the user's or the image's
  ``~/.gitconfig`` and ``/etc/gitconfig`` could install credential helpers that
  answer for (or store) our credentials, ``url.*.insteadOf`` rewrites, a
  ``core.sshCommand`` or proxies. A controller must behave the same on every
  machine, and the CLI the same as the controller.
- ``GIT_CEILING_DIRECTORIES`` and a working directory inside that HOME stop git
  from discovering an enclosing repository: ``git ls-remote`` run inside a
  checkout of someone's repository would read that repository's
  ``.git/config`` (``core.sshCommand``, ``http.*``). Commands on the cache's
  mirrors name it with ``--git-dir``.
- ``GIT_PROTOCOL_FROM_USER=0`` with ``GIT_ALLOW_PROTOCOL`` set to the one
  transport of the URL (``http`` also allows ``https`` for the usual
  redirect), and ``protocol.file.allow=always`` only for ``file://`` URLs:
  nothing else (``ext::``, a ``file://`` submodule, see CVE-2022-39253) can
  be reached even if a URL got past :mod:`urls`.
- ``GIT_TERMINAL_PROMPT=0`` and no ``GIT_ASKPASS``/``SSH_ASKPASS``: a missing or
  wrong credential fails at once instead of waiting on a prompt nobody sees.
- ``LC_ALL=C`` so that git's messages, which :func:`classify` reads, are English.
- Kept from the parent: ``PATH``, ``TMPDIR``, proxy variables and CA bundle
  variables (``SSL_CERT_FILE``, ``GIT_SSL_CAINFO``…), which describe the
  machine's network rather than a user's preferences. Not kept:
  ``SSH_AUTH_SOCK`` and ``GIT_SSH_COMMAND``/``GIT_SSH``: the operator's ssh
  agent and keys must never answer for a repository whose Application names
  no credentials (an app author could otherwise reach every repository the
  operator can). ssh gets its whole configuration from
  :mod:`~gitmoor.source.creds` instead.

Arguments are built by the callers from validated values only, with ``--``
before positional arguments wherever git accepts it. stdin is closed; a
timeout kills the whole process group (git and the ssh or curl helper it
started).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitmoor.model import GitmoorError, PermanentError, RetryableError, UserInputError
from gitmoor.source.creds import NO_AUTH, GitAuth
from gitmoor.source.urls import redact_url

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from gitmoor.source.urls import RepoURL

log = logging.getLogger(__name__)

PASSTHROUGH_ENV = (
    "PATH",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
)

DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class GitOutput:
    """What a finished git process printed."""

    returncode: int
    stdout: str
    stderr: str


class Git:
    """Runs git with a clean environment; one instance per cache root.

    ``home`` is the private HOME described in the module docstring; it is
    created (mode 0700) if missing.
    """

    def __init__(
        self, home: Path, *, timeout: float = DEFAULT_TIMEOUT, binary: str | None = None
    ) -> None:
        self.home = home
        self.timeout = timeout
        self._binary = binary
        home.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def binary(self) -> str:
        if self._binary is None:
            found = shutil.which("git")
            if found is None:
                raise PermanentError("the git command is not installed or not on PATH")
            self._binary = found
        return self._binary

    def environment(self, repo: RepoURL, auth: GitAuth = NO_AUTH) -> dict[str, str]:
        """The complete environment of a git process working on ``repo``."""
        env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        env.setdefault("PATH", os.defpath)
        allowed = "http:https" if repo.transport == "http" else repo.transport
        env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_CEILING_DIRECTORIES": str(self.home.parent),
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_PROTOCOL_FROM_USER": "0",
                "GIT_ALLOW_PROTOCOL": allowed,
                "LC_ALL": "C",
                "LANG": "C",
            }
        )
        config = list(auth.config)
        if repo.transport == "file":
            config.append(("protocol.file.allow", "always"))
        if config:
            env["GIT_CONFIG_COUNT"] = str(len(config))
            for i, (key, value) in enumerate(config):
                env[f"GIT_CONFIG_KEY_{i}"] = key
                env[f"GIT_CONFIG_VALUE_{i}"] = value
        env.update(auth.env)
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        repo: RepoURL,
        action: str,
        auth: GitAuth = NO_AUTH,
        git_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> GitOutput:
        """Run ``git [--git-dir=…] <args>``; with ``check``, a failure raises.

        ``action`` completes "git could not …" in messages, e.g. "list the refs of".
        """
        argv = [self.binary]
        if git_dir is not None:
            argv.append(f"--git-dir={git_dir}")
        argv.extend(args)
        env = self.environment(repo, auth)
        if extra_env:
            env.update(extra_env)
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as err:
            raise PermanentError(
                f"git could not be started to {action} {repo.redacted}: {err.strerror}",
                concerns=repo.redacted,
            ) from err
        try:
            out, err_bytes = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired as err:
            _kill_group(proc)
            proc.communicate()
            log.warning("git timeout command=%s url=%s seconds=%.0f", args[0], repo.redacted, limit)
            raise RetryableError(
                f"git timed out after {limit:.0f}s trying to {action} {repo.redacted}",
                concerns=repo.redacted,
            ) from err
        elapsed_ms = (time.monotonic() - started) * 1000
        result = GitOutput(
            proc.returncode,
            out.decode("utf-8", "replace"),
            scrub(err_bytes.decode("utf-8", "replace"), auth.secrets),
        )
        log.debug(
            "git command=%s url=%s rc=%d duration_ms=%.0f",
            _command_name(args),
            repo.redacted,
            result.returncode,
            elapsed_ms,
        )
        if check and result.returncode != 0:
            raise classify(result.stderr, repo=repo, action=action)
        return result


def _command_name(args: Sequence[str]) -> str:
    return next((a for a in args if not a.startswith("-")), "git")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def check_branch_name(name: str, *, option: str = "branch") -> str:
    """``name`` when git accepts it as a branch name, by git's own rules
    (``git check-ref-format --branch``: no space, ``~^:?*[\\``, ``..``, ``@{``,
    a leading ``-`` or ``.``, a ``.lock`` ending, ``HEAD``...); otherwise a
    UserInputError naming ``option`` (e.g. ``--branch``), said before anything
    is fetched or written rather than as a push git refuses at the end.

    Runs with nothing of the user's configuration (as every git process here)
    and outside any repository, so ``@{-1}`` is never expanded from one."""
    if not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        raise UserInputError(f"{option} {name!r} is not a valid git branch name", concerns=option)
    git = shutil.which("git")
    if git is None:
        raise PermanentError("the git command is not installed or not on PATH")
    env = {k: os.environ[k] for k in ("PATH", "TMPDIR") if k in os.environ}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CEILING_DIRECTORIES": "/",
            "HOME": os.devnull,
            "LC_ALL": "C",
        }
    )
    try:
        done = subprocess.run(
            [git, "check-ref-format", "--branch", name],
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10.0,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise PermanentError(f"git could not check the branch name {name!r}: {err}") from err
    if done.returncode != 0:
        raise UserInputError(
            f"{option} {name!r} is not a valid git branch name (git check-ref-format "
            "--branch refuses it: no spaces, '~^:?*[\\', '..', '@{', a leading '-' or a "
            "'.lock' ending)",
            concerns=option,
        )
    return name


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with URL userinfo and every secret replaced; applied to all git output we keep."""
    text = redact_url(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# Substrings of git's (LC_ALL=C) messages, by what the caller should do next.
_AUTH = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "http basic: access denied",
    "permission denied (publickey",
    "permission denied, please try again",
    "returned error: 401",
    "returned error: 403",
    "invalid username or password",
)
_HOST_KEY = (
    "host key verification failed",
    "remote host identification has changed",
    "no matching host key type",
)
_TLS = (
    "ssl certificate problem",
    "server certificate verification failed",
    "certificate verify failed",
    "unable to get local issuer certificate",
)
_NOT_FOUND = (
    "does not appear to be a git repository",
    "repository not found",
    "returned error: 404",
)
_UNREACHABLE = (
    "could not resolve host",
    "could not resolve hostname",
    "failed to connect",
    "couldn't connect",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "connection reset",
    "network is unreachable",
    "no route to host",
    "the remote end hung up",
    "early eof",
    "returned error: 5",
    "could not read from remote repository",
)


def classify(stderr: str, *, repo: RepoURL, action: str) -> GitmoorError:
    """The typed error for a failed git process, from what git printed.

    Refusals that retrying cannot change (bad credentials, an unknown host key,
    a certificate problem) are permanent; everything else, unreachable servers
    and missing repositories included, is retryable: a repository being created
    or a server restarting is the common case, and the controller backs off.
    """
    low = stderr.lower()
    url = repo.redacted
    said = _summary(stderr)
    if any(s in low for s in _AUTH):
        return PermanentError(
            f"authentication failed for {url}: check the repository credentials ({said})",
            concerns=url,
        )
    if any(s in low for s in _HOST_KEY):
        return PermanentError(
            f"ssh host key verification failed for {url}: store the server's key with "
            f"`gitmoor repo add URL --known-hosts-path FILE` ({said})",
            concerns=url,
        )
    if any(s in low for s in _TLS):
        return PermanentError(
            f"TLS certificate verification failed for {url} ({said})", concerns=url
        )
    if "not allowed" in low and "transport" in low:
        return PermanentError(f"git refused the transport of {url} ({said})", concerns=url)
    if any(s in low for s in _NOT_FOUND):
        return RetryableError(
            f"git could not {action} {url}: repository not found or not readable ({said})",
            concerns=url,
        )
    if any(s in low for s in _UNREACHABLE):
        return RetryableError(
            f"git could not {action} {url}: server unreachable ({said})", concerns=url
        )
    return RetryableError(f"git could not {action} {url} ({said})", concerns=url)


def _summary(stderr: str, limit: int = 300) -> str:
    """git's last ``fatal:``/``error:`` lines, or its last line, for a message."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    chosen = [ln for ln in lines if ln.startswith(("fatal:", "error:"))][-2:] or lines[-1:]
    text = "; ".join(chosen) or "no message"
    return f"git said: {text[:limit]}"
