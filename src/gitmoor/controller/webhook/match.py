"""Which apps a push touches, after Argo CD's ``GetWebURLRegex`` and ``sourceRevisionHasChanged``.

- the repository: the payload's clone and web URLs against the app's
  ``repoURL``, each through :func:`~gitmoor.source.normalize_repo_url`, then
  compared on host and path only, as Argo CD's regex does (any of http,
  https, ssh and scp-like; user and port ignored; ``.git`` optional; an app
  URL may add an ``ssh.`` or ``altssh.`` host prefix, GitHub's and
  Bitbucket's SSH-over-443 hosts). The path is compared case-insensitively
  (Argo CD's regex is ``(?i)``): GitHub, GitLab, Gitea and Bitbucket all
  refuse two repositories whose paths differ only in case, so this finds no
  false match and avoids missing ``github.com/Org/Repo`` written lowercase;
- the revision: :func:`gitmoor.source.match.revision_touched` (``HEAD``, a
  branch or tag name, a semver constraint; a full commit SHA never), kept
  beside the resolver so that both read ``targetRevision`` alike.

The same host-and-path key names a repository for the per-repository rate
limit (:func:`repo_key`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gitmoor.model import UserInputError
from gitmoor.source import normalize_repo_url
from gitmoor.source.match import revision_touched

if TYPE_CHECKING:
    from gitmoor.controller.webhook.providers import PushEvent
    from gitmoor.model.application import Application

# Argo CD's optional SSH-over-443 host prefixes (``ssh.github.com``, ``altssh.bitbucket.org``).
_SSH_HOST_PREFIXES = ("ssh.", "altssh.")


def path_changed(app: Application, event: PushEvent) -> bool:
    """Did the push change a file under the app's path? (Argo CD's
    manifest-generate-paths idea, used here to refresh such apps first.)"""
    root = app.spec.source.path.strip("/")
    if root in ("", "."):
        return bool(event.paths)
    return any(p == root or p.startswith(root + "/") for p in event.paths)


def touches(app: Application, event: PushEvent) -> bool:
    """Whether ``event`` may change what ``app`` deploys (see the module docstring)."""
    source = app.spec.source
    if _app_keys(source.repo_url).isdisjoint(_event_keys(event.repo_urls)):
        return False
    return revision_touched(source.target_revision, event.ref_kind, event.ref, event.default_branch)


def _key(url: str) -> tuple[str, str] | None:
    try:
        normalized = normalize_repo_url(url)
    except UserInputError:
        return None
    parts = urlsplit(normalized)
    return (parts.hostname or "", parts.path.rstrip("/").lower())


@functools.lru_cache(maxsize=4096)
def _app_keys(repo_url: str) -> frozenset[tuple[str, str]]:
    key = _key(repo_url)
    if key is None:
        return frozenset()
    host, path = key
    keys = {key}
    for prefix in _SSH_HOST_PREFIXES:
        if host.startswith(prefix):
            keys.add((host[len(prefix) :], path))
    return frozenset(keys)


@functools.lru_cache(maxsize=256)
def _event_keys(repo_urls: frozenset[str]) -> frozenset[tuple[str, str]]:
    return frozenset(k for k in map(_key, repo_urls) if k is not None)


def repo_key(event: PushEvent) -> str:
    """The rate limiter's key: the pushed repository as host and path, so that the
    https and ssh spellings of one repository in one payload share a bucket."""
    keys = sorted(_event_keys(event.repo_urls))
    if keys:
        host, path = keys[0]
        return f"{host}{path}"
    return min(event.repo_urls, default="")


def repo_keys(event: PushEvent) -> list[str]:
    """Every repository (host and path) a push names, each spelling once."""
    keys = sorted({f"{host}{path}" for host, path in _event_keys(event.repo_urls)})
    return keys or [repo_key(event)]
