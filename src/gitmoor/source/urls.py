"""Repository URLs and revisions: what may reach git, and one identity per repository.

Everything a user writes (an Application's ``repoURL`` and ``targetRevision``, a
webhook's payload) passes through here before any git process starts, so that
untrusted text never becomes a git option or a transport of git's choosing:

- Only four transports are accepted: ``https://``, ``http://`` (loopback test
  servers and internal mirrors), ``ssh://`` with its scp-like shorthand
  ``git@host:org/repo.git``, and ``file://``. Git's remote-helper syntax
  ``<transport>::<address>`` (``ext::sh -c …`` runs a command, ``fd::`` reads a
  file descriptor) and bare local paths are refused.
- Nothing may start with ``-`` (CVE-2017-1000117: an ssh "host" of
  ``-oProxyCommand=…`` ran a command), and hosts and users are checked
  character by character for the same reason.
- A password in the URL is refused: it would show in ``ps`` and in the
  mirror's config; credentials come from :class:`~gitmoor.source.creds.RepoCredentials`.
  A user name alone is parsed (webhook payloads and credential prefixes carry
  one), and refused for fetching by :mod:`~gitmoor.source.policy` unless it is
  ``git``.

:func:`normalize_repo_url` gives the identity of a repository (cache key,
credential matching, webhook matching), after Argo CD's ``git.NormalizeGitURL``.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from gitmoor.model import UserInputError

Transport = Literal["https", "http", "ssh", "file"]

_SCHEMES: dict[str, Transport] = {
    "https": "https",
    "http": "http",
    "ssh": "ssh",
    "git+ssh": "ssh",
    "ssh+git": "ssh",
    "file": "file",
}
_DEFAULT_PORTS: dict[Transport, int] = {"https": 443, "http": 80, "ssh": 22}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# `<transport>::<address>` is git's syntax for a remote helper (ext::, fd::, …).
_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# git's rule for the scp-like form: a colon before the first slash, optional user@.
_SCP = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.*)$")
_HOST = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._~%+!$&'*=-]*$")
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
# An scp-like ``user@host:path`` whose user is not ``git`` may be a token written
# as a user name (``ghp_…@github.com:org/repo``): it is dropped from messages too.
_SCP_USER_IN_TEXT = re.compile(r"(?<![\w.+-])(?!git@)[^@/:\s'\"]+@(?=[\w.-]+:(?!//))")
#: ``.``/``..`` segments (curl and git's file transport fold them, so the repository
#: fetched would not be the one named, matched by sourceRepos, credentials and
#: caches) and encoded slashes or question marks, raw or percent-encoded.
_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")

MAX_REVISION_LENGTH = 255


@dataclass(frozen=True, slots=True)
class RepoURL:
    """A validated repository URL.

    ``raw`` is what git is given (the user's spelling: servers may care about a
    ``.git`` suffix); ``normalized`` is the repository's identity; ``redacted``
    is what messages and logs show.
    """

    raw: str
    transport: Transport
    host: str
    port: int | None
    user: str | None
    path: str
    scp_like: bool = False

    @property
    def normalized(self) -> str:
        """``scheme://host[:port]/path`` with no user, ``.git`` or trailing slash.

        The user is left out on purpose: ``git@github.com:org/repo`` and
        ``ssh://github.com/org/repo`` are one repository, and identities must
        never carry credentials.
        """
        path = self.path.rstrip("/")
        if path.endswith(".git"):
            path = path[: -len(".git")].rstrip("/")
        if self.transport == "file":
            return f"file://{path or '/'}"
        port = f":{self.port}" if self.port is not None else ""
        if path and not path.startswith("/"):
            path = "/" + path
        return f"{self.transport}://{self.host}{port}{path}"

    @property
    def redacted(self) -> str:
        """The URL as the user wrote it, less any userinfo of a ``scheme://`` URL."""
        return redact_url(self.raw)

    def __str__(self) -> str:
        return self.redacted


def redact_url(text: str) -> str:
    """``text`` with the userinfo of every ``scheme://user:pass@`` URL in it removed.

    Used on URLs and on git's own messages, which quote the URL they failed on.
    """
    return _SCP_USER_IN_TEXT.sub("", _USERINFO_IN_TEXT.sub(r"\g<scheme>", text))


def _check_path(path: str, shown: str, *, file: bool = False) -> None:
    """Refuse a path whose meaning git would change after our checks."""
    decoded = urllib.parse.unquote(path)
    if _DOT_SEGMENT.search(path) or _DOT_SEGMENT.search(decoded):
        raise UserInputError(
            f"repository URL {shown!r} has a '.' or '..' path segment; write the path plainly",
            concerns=shown,
        )
    if "%2f" in path.lower() or "%5c" in path.lower():
        raise UserInputError(f"repository URL {shown!r} has an encoded slash", concerns=shown)
    if file and ("?" in decoded or "#" in decoded):
        # git url-decodes a file:// URL and uses all of it as the path, query included.
        raise UserInputError(
            f"repository URL {shown!r}: a file:// path may not contain '?' or '#'",
            concerns=shown,
        )


def parse_repo_url(url: str) -> RepoURL:
    """Validate ``url`` and split it; :class:`UserInputError` naming it if refused."""
    if not isinstance(url, str) or not url.strip():
        raise UserInputError("repository URL is empty")
    shown = redact_url(url)
    if url != url.strip() or _CONTROL.search(url) or any(c.isspace() for c in url):
        raise UserInputError(
            f"repository URL {shown!r} contains whitespace or control characters",
            concerns=shown,
        )
    if url.startswith("-"):
        raise UserInputError(
            f"repository URL {shown!r} starts with '-', which git would read as an option",
            concerns=shown,
        )
    if _HELPER.match(url):
        raise UserInputError(
            f"repository URL {shown!r} uses a git remote helper ('::'); "
            "only https://, http://, ssh://, git@host:path and file:// are allowed",
            concerns=shown,
        )
    m = _SCHEME.match(url)
    if m:
        return _parse_scheme_url(url, m.group("scheme").lower(), shown)
    scp = _SCP.match(url)
    if scp and not url.startswith(("/", ".")):
        return _parse_scp_url(url, scp, shown)
    raise UserInputError(
        f"repository URL {shown!r} is not a URL git can fetch from here; "
        "use https://, http://, ssh://, git@host:path or file://",
        concerns=shown,
    )


def normalize_repo_url(url: str) -> str:
    """The identity of a repository: lowercase scheme and host, no user, no
    default port, no ``.git`` or trailing slash, scp-like turned into ``ssh://``.

    ``git@GitHub.com:org/repo.git`` and ``ssh://github.com:22/org/repo/`` both give
    ``ssh://github.com/org/repo``. The path keeps its case (GitLab and Gitea paths
    are case-sensitive), unlike Argo CD, which lowercases the whole URL.
    """
    return parse_repo_url(url).normalized


def validate_revision(revision: str, repo: RepoURL | str) -> str:
    """Refuse revisions that could be read as an option or a range.

    The revision never reaches git as an argument (:mod:`revisions` matches it
    against ``ls-remote`` output in Python), but a leading ``-``, ``..`` or a
    control character is never a valid branch, tag, SHA or semver constraint,
    so saying so early gives a clearer error than "not found".
    """
    shown = repo.redacted if isinstance(repo, RepoURL) else redact_url(repo)
    if not isinstance(revision, str):
        raise UserInputError(f"revision for {shown} is not a string", concerns=shown)
    text = revision.strip()
    if (
        text.startswith("-")
        or ".." in text
        or _CONTROL.search(revision)
        or len(text) > MAX_REVISION_LENGTH
    ):
        raise UserInputError(
            f"revision {revision!r} for {shown} is not allowed: it must not start with '-', "
            f"contain '..' or control characters, or exceed {MAX_REVISION_LENGTH} characters",
            concerns=shown,
        )
    return text


def _parse_scheme_url(url: str, scheme: str, shown: str) -> RepoURL:
    transport = _SCHEMES.get(scheme)
    if transport is None:
        raise UserInputError(
            f"repository URL {shown!r} uses transport {scheme!r}; "
            "only https://, http://, ssh://, git@host:path and file:// are allowed",
            concerns=shown,
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise UserInputError(
            f"repository URL {shown!r} is malformed: {err}", concerns=shown
        ) from err
    if parts.password is not None:
        raise UserInputError(
            f"repository URL {shown!r} embeds a password: remove it and store the "
            "credentials with `gitmoor repo add URL --username … --password …`",
            concerns=shown,
        )
    if parts.fragment:
        raise UserInputError(f"repository URL {shown!r} has a '#' fragment", concerns=shown)
    if transport == "file":
        if parts.netloc not in ("", "localhost"):
            raise UserInputError(
                f"repository URL {shown!r} names a host; file:// URLs must be file:///path",
                concerns=shown,
            )
        if not parts.path.startswith("/"):
            raise UserInputError(f"repository URL {shown!r} has no absolute path", concerns=shown)
        _check_path(url.split("://", 1)[1], shown, file=True)
        return RepoURL(raw=url, transport="file", host="", port=None, user=None, path=parts.path)
    host = (parts.hostname or "").lower()
    if "[" in parts.netloc:
        host = f"[{host}]"
    _check_host(host, shown)
    user = parts.username
    if user is not None:
        _check_user(user, shown)
    if port is not None and port == _DEFAULT_PORTS[transport]:
        port = None
    path = parts.path
    _check_path(path, shown)
    if parts.query:
        path = f"{path}?{parts.query}"
    if path.startswith("-"):
        raise UserInputError(
            f"repository URL {shown!r} has a path starting with '-'", concerns=shown
        )
    return RepoURL(raw=url, transport=transport, host=host, port=port, user=user, path=path)


def _parse_scp_url(url: str, m: re.Match[str], shown: str) -> RepoURL:
    host = m.group("host").lower()
    _check_host(host, shown)
    user = m.group("user")
    if user is not None:
        _check_user(user, shown)
    path = m.group("path")
    if not path or path.startswith(("-", ":")):
        raise UserInputError(f"repository URL {shown!r} has no usable path", concerns=shown)
    _check_path(path, shown)
    return RepoURL(
        raw=url, transport="ssh", host=host, port=None, user=user, path=path, scp_like=True
    )


def _check_host(host: str, shown: str) -> None:
    if not host or not _HOST.match(host):
        raise UserInputError(
            f"repository URL {shown!r} has an invalid host {host!r}", concerns=shown
        )


def _check_user(user: str, shown: str) -> None:
    if not _USER.match(user):
        raise UserInputError(f"repository URL {shown!r} has an invalid user name", concerns=shown)
