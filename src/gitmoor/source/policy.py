"""Which repository URLs gitmoor fetches at all: a policy over a parsed URL.

:func:`~gitmoor.source.urls.parse_repo_url` says whether a URL is well formed
and gives it an identity (webhook payloads and credential prefixes go through
it too, and may carry a user name). Before any git process starts for an
Application, :func:`check_fetchable` adds two refusals that a shared cluster
needs:

- **userinfo.** ``https://TOKEN@host/…`` or ``https://user:pass@host/…`` would
  put a secret into the Application's spec (readable by everyone who may read
  Applications) and onto git's command line (``ps``). Only the conventional
  ssh user ``git`` is accepted; everything else is refused with a sentence
  that points at ``gitmoor repo add``, where credentials live in a Secret.
  Argo CD accepts such URLs and keeps them in the Application; Flux refuses
  credentials in ``GitRepository.spec.url`` in favour of ``secretRef``, which
  is the rule followed here.
- **file://.** A ``file://`` URL names a directory on the machine gitmoor runs
  on: on a controller, any repository on its disk, including another app's
  mirror in the checkout cache (which may hold a private repository fetched
  with credentials this app's author does not have). ``file://`` is therefore
  refused unless the path lies under a root the operator named with
  ``--allow-file-repos DIR`` (repeatable) or ``GITMOOR_ALLOW_FILE_REPOS``
  (``:``-separated, for scripts and CI), after symlinks of both the root and
  the path are resolved. The checkout cache itself is never allowed, even
  under an allowed root. Argo CD has no ``file://`` support in its repo-server
  for the same reason; Flux's source-controller refuses local paths.

Both checks run on the URL text alone; nothing here starts a process.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from gitmoor.model import UserInputError
from gitmoor.source.urls import RepoURL, parse_repo_url

if TYPE_CHECKING:
    from collections.abc import Iterable

ENV_ALLOW_FILE_REPOS = "GITMOOR_ALLOW_FILE_REPOS"
#: the only user name a repository URL may carry (GitHub's, GitLab's, Gitea's
#: and Bitbucket's ssh user); it names no account and carries no secret
ALLOWED_USER = "git"

_roots: list[Path] = []
_roots_lock = threading.Lock()


log = logging.getLogger(__name__)


def allow_file_repos(dirs: Iterable[str | Path]) -> None:
    """Add roots under which ``file://`` repositories are allowed, for this process.

    Called by the CLI for ``--allow-file-repos``; the environment variable is
    read on every check, so it needs no call.
    """
    with _roots_lock:
        for d in dirs:
            # A flag's relative directory means where the user ran the command.
            path = Path(d).expanduser().absolute()
            if str(d).strip() and path not in _roots:
                _roots.append(path)


def reset_file_repo_roots() -> None:
    """Forget the roots given to :func:`allow_file_repos` (tests)."""
    with _roots_lock:
        _roots.clear()


def allowed_file_roots() -> tuple[Path, ...]:
    """The allowed roots, resolved: the ones given to :func:`allow_file_repos`,
    then those of ``GITMOOR_ALLOW_FILE_REPOS``. A root that does not resolve
    (a symlink loop) is left out: it can allow nothing."""
    with _roots_lock:
        given = list(_roots)
    env = os.environ.get(ENV_ALLOW_FILE_REPOS, "")
    given += [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for root in given:
        if not root.is_absolute():
            # Relative to what? The working directory of a controller means nothing.
            log.warning(
                "event=file_repo_root_ignored root=%s reason=not-absolute variable=%s",
                root,
                ENV_ALLOW_FILE_REPOS,
            )
            continue
        resolved = _resolve(root)
        if resolved is not None and resolved not in out:
            out.append(resolved)
    return tuple(out)


def check_repo_url(url: str | RepoURL) -> RepoURL:
    """``url`` parsed, if an Application may name it; else :class:`UserInputError`.

    What can be said before a fetch, on any machine: the URL is well formed
    and carries no credentials. ``gitmoor app create`` calls it, so a token
    never reaches the cluster; whether a ``file://`` path is allowed is for the
    process that fetches (its roots may differ from the CLI's).
    """
    repo = url if isinstance(url, RepoURL) else parse_repo_url(url)
    _check_userinfo(repo)
    return repo


def check_fetchable(url: str | RepoURL, *, forbidden: Iterable[Path] = ()) -> RepoURL:
    """``url`` parsed, if gitmoor may fetch it; else :class:`UserInputError`, one sentence.

    ``forbidden`` are directories no ``file://`` URL may point into whatever
    the allowed roots say (the checkout cache).
    """
    repo = url if isinstance(url, RepoURL) else parse_repo_url(url)
    _check_userinfo(repo)
    if repo.transport == "file":
        _check_file_root(repo, forbidden)
    return repo


def _check_userinfo(repo: RepoURL) -> None:
    if repo.user is None or repo.user == ALLOWED_USER:
        return
    # The user itself is never quoted: it is often the token. redact_url strips
    # it from scheme:// URLs only, so the scp-like form is rebuilt without it.
    shown = f"{repo.host}:{repo.path}" if repo.scp_like else repo.redacted
    raise UserInputError(
        f"repository URL {shown!r} carries a user name or token before '@': "
        f"remove it (only '{ALLOWED_USER}@' is accepted) and store the credentials with "
        "`gitmoor repo add URL --username … --password …` (or --ssh-private-key-path)",
        concerns=shown,
    )


def _check_file_root(repo: RepoURL, forbidden: Iterable[Path]) -> None:
    shown = repo.redacted
    how = (
        f"start the controller (or the CLI) with --allow-file-repos DIR, or set "
        f"{ENV_ALLOW_FILE_REPOS}=DIR, naming a directory that holds it"
    )
    # git decodes %XX in file:// URLs in some versions and not in others: both
    # spellings must lie inside, so neither reading escapes.
    candidates = {repo.path, unquote(repo.path)}
    resolved: list[Path] = []
    for text in candidates:
        path = _resolve(Path(text))
        if path is None:
            raise UserInputError(
                f"file:// repository {shown!r} cannot be resolved (a symlink loop?)",
                concerns=shown,
            )
        resolved.append(path)
    for bad in forbidden:
        root = _resolve(Path(bad))
        if root is not None and any(p.is_relative_to(root) for p in resolved):
            raise UserInputError(
                f"file:// repository {shown!r} points into gitmoor's checkout cache "
                f"({root}), which holds other applications' repositories; it is never allowed",
                concerns=shown,
            )
    roots = allowed_file_roots()
    if not roots:
        raise UserInputError(
            f"file:// repositories are not allowed, so {shown!r} is refused: {how}",
            concerns=shown,
        )
    if not all(any(p.is_relative_to(r) for r in roots) for p in resolved):
        raise UserInputError(
            f"file:// repository {shown!r} is outside the allowed roots "
            f"({', '.join(str(r) for r in roots)}): {how}",
            concerns=shown,
        )


def _resolve(path: Path) -> Path | None:
    """``path`` with every symlink resolved (missing tails kept), or None on a loop."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None
