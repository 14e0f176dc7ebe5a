"""Writing to Git: read a branch, let the caller edit files, commit, push with a lease.

Everything else in :mod:`gitmoor.source` only reads. ``gitmoor promote`` and
``gitmoor bootstrap`` write, and both follow the same rules as a fetch (see
:mod:`gitmoor.source.git` and :mod:`gitmoor.source.creds`): git runs with an
environment built from nothing, the stored credentials reach it only as
environment configuration (never in argv, a URL or a log line), and the URL
passes the same policy as a fetch (no userinfo, ``file://`` only under the
allowed roots).

The push is guarded by a lease on the commit that was read:
``git push --force-with-lease=refs/heads/B:<sha read>``. The server refuses the
update unless ``B`` still points at that commit, so a change someone else
pushed in between is never overwritten or silently merged; the caller reads
again and recomputes its edit (what ``kubectl apply`` does with a
resourceVersion, and what Argo CD Image Updater's git write-back leaves to a
plain push). A new branch is leased against "absent" (``B:`` with no value), so
an existing branch of that name is not replaced either::

    with open_branch(url, "main", creds) as work:
        (work.file("apps/x/kustomization.yaml")).write_text(...)
        result = work.commit_and_push("promote ...")   # None commit: nothing changed

Errors: :class:`BranchMovedError` (the lease failed: a :class:`PermanentError`,
because retrying the same push can never succeed), otherwise those of
:func:`~gitmoor.source.git.classify` (credentials refused, server unreachable).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitmoor.model import GitmoorError, PermanentError, UserInputError
from gitmoor.source.cache import get_cache
from gitmoor.source.creds import git_auth
from gitmoor.source.git import classify, scrub
from gitmoor.source.policy import check_fetchable
from gitmoor.source.revisions import parse_ls_remote
from gitmoor.source.urls import validate_revision

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from gitmoor.source.creds import GitAuth, RepoCredentials
    from gitmoor.source.git import Git, GitOutput
    from gitmoor.source.urls import RepoURL

log = logging.getLogger(__name__)

DEFAULT_AUTHOR_NAME = "gitmoor"
DEFAULT_AUTHOR_EMAIL = "gitmoor@localhost"


@dataclass(frozen=True, slots=True)
class Author:
    """Author and committer of the commits gitmoor makes."""

    name: str = DEFAULT_AUTHOR_NAME
    email: str = DEFAULT_AUTHOR_EMAIL


@dataclass(frozen=True, slots=True)
class PushResult:
    """What :meth:`WorkingCopy.commit_and_push` did.

    ``commit`` is None when the files were unchanged: nothing was committed or
    pushed (re-running a promote or a bootstrap is a no-op).
    """

    branch: str
    base: str | None
    commit: str | None

    @property
    def changed(self) -> bool:
        return self.commit is not None


class BranchMovedError(PermanentError):
    """The branch no longer points at the commit that was read: someone pushed in between."""

    def __init__(self, branch: str, was: str | None, now: str | None, *, concerns: str) -> None:
        self.branch, self.was, self.now = branch, was, now
        super().__init__(
            f"the branch {branch} moved since gitmoor read it (was {_short(was)}, "
            f"now {_short(now)}); run again",
            concerns=concerns,
        )


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "absent"


class WorkingCopy:
    """A private checkout of one branch, in a temporary directory of its own.

    ``base`` is the commit the branch pointed at when it was read (None for a
    branch that does not exist yet: the tree starts empty).
    """

    def __init__(
        self,
        *,
        git: Git,
        repo: RepoURL,
        auth: GitAuth,
        branch: str,
        base: str | None,
        git_dir: Path,
        root: Path,
    ) -> None:
        self._git, self._repo, self._auth = git, repo, auth
        self.branch, self.base = branch, base
        self._git_dir, self.root = git_dir, root

    def file(self, rel: str) -> Path:
        """The path of ``rel`` in the working copy, refused if it leaves it.

        A repository may hold symlinks; writing through one that points out of
        the checkout would let a repository's author make gitmoor overwrite a
        file of the machine it runs on.
        """
        rel = rel.strip("/")
        if not rel or any(part in ("", ".", "..") for part in rel.split("/")):
            raise UserInputError(f"invalid path {rel!r} in the repository", concerns=rel)
        if rel.split("/")[0] == ".git":
            raise UserInputError(f"refusing to touch {rel} inside .git", concerns=rel)
        target = self.root / rel
        probe = self.root
        parts = rel.split("/")
        for i, part in enumerate(parts):
            probe = probe / part
            if probe.is_symlink():
                raise UserInputError(
                    f"{rel} goes through a symbolic link ({probe.relative_to(self.root)}); "
                    "gitmoor writes only regular files and directories",
                    concerns=rel,
                )
            if i < len(parts) - 1 and probe.exists() and not probe.is_dir():
                # Said here, not as an OSError (a traceback) when the caller
                # reads or creates the directory.
                raise UserInputError(
                    f"{rel}: {probe.relative_to(self.root)} is a file in the repository, "
                    "not a directory",
                    concerns=rel,
                )
        return target

    def read_text(self, rel: str) -> str:
        """The text of file ``rel`` (:meth:`file`'s checks), as UTF-8: a file that is
        not text is a UserInputError naming it, not a decoding traceback."""
        try:
            return self.file(rel).read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise UserInputError(f"{rel} is not UTF-8 text ({err.reason})", concerns=rel) from err

    def run_git(
        self,
        *args: str,
        action: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> GitOutput:
        """``git <args>`` on this working copy, with its credentials; ``env`` is added."""
        return self._git.run(
            [f"--work-tree={self.root}", *args],
            repo=self._repo,
            git_dir=self._git_dir,
            auth=self._auth,
            action=action,
            check=check,
            extra_env=env,
        )

    def commit(self, message: str, *, author: Author | None = None) -> str | None:
        """Commit every change of the working copy; None when there is none."""
        who = author or Author()
        self.run_git("add", "--all", action="stage the changes for")
        if (
            self.run_git("diff", "--cached", "--quiet", action="compare", check=False).returncode
            == 0
        ):
            return None
        ident = {
            "GIT_AUTHOR_NAME": who.name,
            "GIT_AUTHOR_EMAIL": who.email,
            "GIT_COMMITTER_NAME": who.name,
            "GIT_COMMITTER_EMAIL": who.email,
        }
        self.run_git(
            "commit",
            "--quiet",
            "--no-verify",
            "--no-gpg-sign",
            "-m",
            message,
            action="commit to",
            env=ident,
        )
        return self.run_git("rev-parse", "HEAD", action="read the commit of").stdout.strip()

    def push(self, commit: str, *, to_branch: str | None = None) -> None:
        """Push ``commit`` to ``to_branch`` (default: the branch read), leased.

        To the branch read, the lease is the commit read; to another branch,
        that it does not exist yet (a new branch for a pull request).
        """
        dest = validate_revision(to_branch, self._repo) if to_branch else self.branch
        expected = self.base if dest == self.branch else None
        ref = f"refs/heads/{dest}"
        out = self._git.run(
            [
                "push",
                "--porcelain",
                "--no-verify",
                f"--force-with-lease={ref}:{expected or ''}",
                "--",
                self._repo.raw,
                f"{commit}:{ref}",
            ],
            repo=self._repo,
            git_dir=self._git_dir,
            auth=self._auth,
            action="push to",
            check=False,
        )
        if out.returncode == 0:
            log.info(
                "git push url=%s branch=%s commit=%s base=%s",
                self._repo.redacted,
                dest,
                commit,
                expected or "absent",
            )
            return
        said = (out.stdout + "\n" + out.stderr).lower()
        if "stale info" in said or "fetch first" in said or "non-fast-forward" in said:
            now = remote_branch(self._git, self._repo, self._auth, dest)
            log.warning(
                "git push refused url=%s branch=%s reason=moved was=%s now=%s",
                self._repo.redacted,
                dest,
                expected or "absent",
                now or "absent",
            )
            raise BranchMovedError(dest, expected, now, concerns=self._repo.redacted)
        raise push_error(out, self._repo, self._auth.secrets)

    def commit_and_push(
        self, message: str, *, author: Author | None = None, to_branch: str | None = None
    ) -> PushResult:
        """:meth:`commit`, then :meth:`push` when something changed."""
        dest = to_branch or self.branch
        commit = self.commit(message, author=author)
        if commit is None:
            return PushResult(dest, self.base, None)
        self.push(commit, to_branch=to_branch)
        return PushResult(dest, self.base, commit)


def push_error(out: GitOutput, repo: RepoURL, secrets: tuple[str, ...]) -> GitmoorError:
    """The typed error of a failed push, from what git printed. git's stderr is
    scrubbed by ``Git.run``; its stdout (the ``--porcelain`` report, used when
    stderr says nothing, and which carries the server's own words) is not, so it
    is scrubbed here the same way before a word of it reaches a message."""
    return classify(out.stderr or scrub(out.stdout, secrets), repo=repo, action="push to")


def remote_branch(git: Git, repo: RepoURL, auth: GitAuth, branch: str) -> str | None:
    """The commit ``branch`` points at on the server now, or None if it does not exist."""
    out = git.run(
        ["ls-remote", "--heads", "--", repo.raw, f"refs/heads/{branch}"],
        repo=repo,
        auth=auth,
        action="list the refs of",
    )
    refs = parse_ls_remote(out.stdout)
    return refs.get(f"refs/heads/{branch}")


@contextlib.contextmanager
def open_branch(
    repo_url: str,
    branch: str,
    creds: RepoCredentials | None = None,
    *,
    cache_dir: Path | str | None = None,
    create: bool = False,
) -> Iterator[WorkingCopy]:
    """A working copy of ``branch``'s tip (shallow: its history is not needed).

    With ``create``, a branch that does not exist (an empty repository, too)
    yields an empty working copy whose push creates it; otherwise that is a
    :class:`UserInputError`. The temporary directory is removed on leaving.
    """
    cache = get_cache(cache_dir)
    repo = check_fetchable(repo_url, forbidden={cache.root})
    branch = validate_revision(branch, repo)
    if branch.startswith("refs/"):
        branch = branch.removeprefix("refs/heads/")
    git = cache.git
    tmp = Path(tempfile.mkdtemp(prefix="gitmoor-push-"))
    try:
        with git_auth(repo, creds) as auth:
            git_dir, root = tmp / "git", tmp / "tree"
            root.mkdir()
            git.run(
                ["init", "--quiet", "--bare", "--template=", "--", str(git_dir)],
                repo=repo,
                action="prepare a working copy of",
            )
            base = remote_branch(git, repo, auth, branch)
            if base is None and not create:
                raise UserInputError(
                    f"branch {branch} not found in {repo.redacted}", concerns=repo.redacted
                )
            work = WorkingCopy(
                git=git, repo=repo, auth=auth, branch=branch, base=base, git_dir=git_dir, root=root
            )
            if base is not None:
                # By name, not by SHA: every server serves a branch, not every
                # one an unadvertised commit. The lease is what was fetched.
                git.run(
                    [
                        "fetch",
                        "--quiet",
                        "--depth=1",
                        "--no-tags",
                        "--no-recurse-submodules",
                        "--",
                        repo.raw,
                        f"+refs/heads/{branch}:refs/gitmoor/base",
                    ],
                    repo=repo,
                    auth=auth,
                    git_dir=git_dir,
                    action="fetch from",
                )
                work.base = base = work.run_git(
                    "rev-parse", "refs/gitmoor/base^{commit}", action="read the branch of"
                ).stdout.strip()
                log.info(
                    "git fetch url=%s branch=%s commit=%s depth=1", repo.redacted, branch, base
                )
                # A detached HEAD at the commit read: the commit's parent is then
                # exactly the lease's commit.
                work.run_git("checkout", "--quiet", "--detach", base, action="check out")
            yield work
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
