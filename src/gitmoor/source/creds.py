"""Repository credentials: which ones apply to a URL, and how git is handed them.

Credentials never travel in a URL or on a command line, where ``ps`` and
``/proc/<pid>/cmdline`` show them to every user of the machine:

- https/http: ``http.extraHeader=Authorization: Basic …`` passed as
  configuration through the environment (``GIT_CONFIG_COUNT``/``_KEY_n``/
  ``_VALUE_n``, git >= 2.31). A process's environment is readable only by its
  own user (``/proc/<pid>/environ`` is mode 0400). curl (>= 7.58) drops a custom
  ``Authorization`` header when a redirect leads to another host.
- ssh: the private key is written to a 0600 file in a fresh 0700 directory and
  named by ``GIT_SSH_COMMAND``; the directory is removed when the command ends.
  ssh reads no configuration of the machine's user: ``-F /dev/null`` (no
  ``~/.ssh/config``), ``IdentityAgent=none`` (no agent), ``IdentitiesOnly``
  with only the stored key (or ``IdentityFile=none`` without one, so that the
  default ``~/.ssh/id_*`` keys are not offered) and known hosts only from the
  stored credentials (``GlobalKnownHostsFile=/dev/null``). A repository with
  no stored credentials therefore fails at once, "host key verification
  failed", on a machine whose operator could reach it with their own keys:
  the CLI and the controller see the same repositories.

Reading credentials from Kubernetes Secrets belongs to another module; this one
takes :class:`RepoCredentials` values.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitmoor.model import UserInputError
from gitmoor.source.urls import RepoURL, parse_repo_url

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RepoCredentials:
    """Credentials for every repository whose URL starts with ``url_prefix``.

    Like an Argo CD repository credential template: ``url_prefix`` may be a
    whole repository URL or a prefix such as ``https://github.com/my-org``.
    https uses ``username``/``password`` (a token goes in ``password``); ssh uses
    ``ssh_private_key`` (PEM/OpenSSH text) checked against ``known_hosts``
    (lines of an OpenSSH known_hosts file) unless ``insecure_ignore_host_key``.
    Secrets are left out of ``repr`` so that logging a value cannot leak them.
    """

    url_prefix: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssh_private_key: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    insecure_ignore_host_key: bool = False
    #: the project whose apps alone may use these (Argo CD's project-scoped
    #: repositories); "" for every app. Choosing among them is the engine's.
    project: str = ""


def match_credentials(
    url: str | RepoURL, creds_list: Iterable[RepoCredentials]
) -> RepoCredentials | None:
    """The credentials with the longest ``url_prefix`` that matches ``url``, or None.

    Both sides are normalised (scp-like form as ``ssh://``, host lowercased,
    ``.git`` and trailing slash dropped, user ignored) and compared by
    transport, host, port and then path, whole segments only. Argo CD compares
    raw strings with ``strings.HasPrefix``, under which a prefix
    ``https://git.example.com`` also matches ``https://git.example.com.evil.io/x``
    and would send the token there; segment matching closes that hole.
    A prefix that does not parse is skipped with a warning rather than failing
    every repository.
    """
    repo = url if isinstance(url, RepoURL) else parse_repo_url(url)
    target = repo.normalized
    best: RepoCredentials | None = None
    best_len = -1
    for creds in creds_list:
        try:
            prefix = parse_repo_url(creds.url_prefix).normalized
        except UserInputError as err:
            log.warning("credentials skipped reason=invalid-url-prefix error=%r", str(err))
            continue
        if _is_prefix(prefix, target) and len(prefix) > best_len:
            best, best_len = creds, len(prefix)
    return best


def _is_prefix(prefix: str, target: str) -> bool:
    # Whole segments only: the character after the prefix must start a new one.
    if target == prefix:
        return True
    return target.startswith(prefix) and (prefix.endswith("/") or target[len(prefix)] == "/")


@dataclass(frozen=True, slots=True)
class GitAuth:
    """What one git invocation needs to authenticate.

    ``config`` goes to git as environment configuration, ``env`` is added to
    the process environment, and every string in ``secrets`` is scrubbed from
    anything git prints before it reaches a message or a log.
    """

    config: tuple[tuple[str, str], ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = field(default=(), repr=False)


NO_AUTH = GitAuth()


@contextlib.contextmanager
def git_auth(repo: RepoURL, creds: RepoCredentials | None) -> Iterator[GitAuth]:
    """Prepare authentication for ``repo``; temporary key files live only inside the block."""
    if repo.transport in ("https", "http"):
        yield _http_auth(repo, creds)
        return
    if repo.transport == "ssh":
        with _ssh_auth(creds) as auth:
            yield auth
        return
    yield NO_AUTH


def _http_auth(repo: RepoURL, creds: RepoCredentials | None) -> GitAuth:
    if creds is None or (not creds.password and not creds.username):
        return NO_AUTH
    if repo.transport == "http" and not _is_loopback(repo.host):
        log.warning(
            "credentials sent over plain http url=%s; use https outside loopback", repo.redacted
        )
    # Git hosts accept a token as the password with any user name (GitHub,
    # GitLab, Gitea); some reject an empty one, so fall back to a harmless name.
    user = creds.username or "git"
    token = base64.b64encode(f"{user}:{creds.password or ''}".encode()).decode("ascii")
    secrets = tuple(s for s in (creds.password, token) if s)
    return GitAuth(config=(("http.extraHeader", f"Authorization: Basic {token}"),), secrets=secrets)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "[::1]") or host.startswith("127.")


#: ssh options that shut out the machine's ssh configuration (see the module docstring);
#: BatchMode: a missing key or host key fails at once instead of prompting
SSH_BASE = (
    "ssh",
    "-F",
    os.devnull,
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=30",
    "-o",
    "IdentityAgent=none",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    f"GlobalKnownHostsFile={os.devnull}",
)


@contextlib.contextmanager
def _ssh_auth(creds: RepoCredentials | None) -> Iterator[GitAuth]:
    args = list(SSH_BASE)
    tmp = Path(tempfile.mkdtemp(prefix="gitmoor-ssh-"))  # mode 0700
    try:
        secrets: tuple[str, ...] = ()
        if creds is not None and creds.ssh_private_key:
            key = tmp / "id"
            _write_private(key, _with_newline(creds.ssh_private_key))
            args += ["-i", str(key)]
            secrets = (creds.ssh_private_key.strip(),)
        else:
            # Without this ssh would still offer ~/.ssh/id_* of the process's
            # passwd entry (HOME does not change it), IdentitiesOnly or not.
            args += ["-o", "IdentityFile=none"]
        if creds is not None and creds.insecure_ignore_host_key:
            args += ["-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={os.devnull}"]
        else:
            # No stored known_hosts: an empty file, so the host key check fails
            # cleanly instead of reading ~/.ssh/known_hosts.
            known = tmp / "known_hosts"
            _write_private(known, _with_newline(creds.known_hosts or "") if creds else "")
            args += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        yield GitAuth(
            env={"GIT_SSH_COMMAND": shlex.join(args), "GIT_SSH_VARIANT": "ssh"}, secrets=secrets
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _with_newline(text: str) -> str:
    # OpenSSH refuses a key file whose last line has no newline ("invalid format").
    return text if text.endswith("\n") else text + "\n"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
