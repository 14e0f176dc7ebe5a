"""The git cache: resolve revisions, and trees of exact commits fetched once.

Layout under the root (``$GITMOOR_CACHE_DIR/git``, default
``~/.cache/gitmoor/git``); everything here may be deleted at any time::

    .home/                  the private HOME of every git process (see git.py)
    <key>/                  one repository; key = sha256 of its normalised URL
    <key>/url               that URL, for people looking at the cache
    <key>/.lock             flock(2) taken while fetching or exporting
    <key>/mirror.git/       bare, shallow: only the commits asked for
    <key>/<commit>/         the tree of that commit: no .git, read-only; its
                            mtime is the time it was last handed out
    <key>/<commit>.size     its size in bytes, written when it was exported

A checkout is fetched with ``git fetch --depth=1 <url> <sha>``, which git
servers answer over protocol v2 (and GitHub, GitLab and Gitea over v0 too); a
server that refuses a bare SHA gets a full fetch of its branches and tags
instead, as Argo CD's repo-server falls back to fetching all refs. The tree is
written with ``read-tree`` + ``checkout-index`` into a private index, then
renamed into place, so a ``<commit>`` directory that exists is complete and
the fast path needs no lock. Ten applications on one repository at one
commit fetch once: a per-repository lock (a thread lock inside the process,
``flock`` across processes sharing the cache) lets the first fetch and the
others find the directory.

Disk budget (``GITMOOR_CACHE_MAX_BYTES``, default 2 GiB): after each new
checkout, when checkouts and mirrors together pass the budget, the checkouts
handed out least recently are deleted first, then the mirrors of repositories
with no checkout left, until the cache fits. Nothing handed out within the
last ``min_age`` seconds (10 minutes) is deleted: every refresh of an app asks
for its checkout again, so a checkout untouched that long is one no app uses
any more, and a render reading a tree is never pulled from under it. When
everything is that recent the cache stays over budget and says so in the
log. Flux's source-controller garbage-collects artifacts the same way (by
age and count); Argo CD's repo-server keeps one working copy per repository
and never deletes. A single commit whose tree, or a mirror whose fetched
objects, exceed the whole budget is refused with a sentence instead of
filling the disk.

Every URL passes :func:`~gitmoor.source.policy.check_fetchable` before any git
process starts: no userinfo but ``git@``, ``file://`` only under the allowed
roots and never into this cache.

The controller is asyncio: the ``*_async`` methods run the blocking ones in a
thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitmoor.model import UserInputError
from gitmoor.source.creds import git_auth
from gitmoor.source.git import DEFAULT_TIMEOUT, Git, classify
from gitmoor.source.policy import check_fetchable
from gitmoor.source.revisions import is_full_sha, resolve_revision
from gitmoor.source.urls import RepoURL, parse_repo_url, validate_revision

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from gitmoor.source.creds import RepoCredentials

log = logging.getLogger(__name__)

ENV_CACHE_DIR = "GITMOOR_CACHE_DIR"
ENV_CACHE_MAX_BYTES = "GITMOOR_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 2 << 30
#: seconds a checkout or mirror stays after it was last handed out, whatever the budget
DEFAULT_MIN_AGE = 600.0
MIRROR = "mirror.git"
_SIZE_SUFFIX = ".size"

# What a server says when it will not (or cannot) serve a commit by SHA.
_SHA_REFUSED = re.compile(
    r"not our ref|unadvertised object|couldn't find remote ref|no such remote ref"
    r"|want .* not valid",
    re.IGNORECASE,
)


def default_cache_dir() -> Path:
    """``$GITMOOR_CACHE_DIR/git``, else ``$XDG_CACHE_HOME/gitmoor/git``, else ``~/.cache/gitmoor/git``.

    ``GITMOOR_CACHE_DIR`` names gitmoor's cache as a whole, so that the render
    cache can live beside this one under the same variable.
    """
    base = os.environ.get(ENV_CACHE_DIR)
    if base:
        return Path(base).expanduser() / "git"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "gitmoor" / "git"


def default_max_bytes() -> int:
    """``$GITMOOR_CACHE_MAX_BYTES`` (bytes; ``K``/``M``/``G`` suffixes of 1024 accepted), else 2 GiB."""
    text = os.environ.get(ENV_CACHE_MAX_BYTES, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    scale = units.get(text[-1].upper(), 1)
    digits = text[:-1] if text[-1].upper() in units else text
    try:
        value = int(digits) * scale
    except ValueError:
        value = 0
    if value <= 0:
        log.warning(
            "cache budget ignored variable=%s value=%r default=%d",
            ENV_CACHE_MAX_BYTES,
            text,
            DEFAULT_MAX_BYTES,
        )
        return DEFAULT_MAX_BYTES
    return value


@dataclass
class CacheStats:
    """Counters of the work a cache did, for metrics and tests."""

    ls_remotes: int = 0
    fetches: int = 0
    exports: int = 0
    hits: int = 0
    evicted: int = 0


class GitCache:
    """Revision resolution and commit checkouts over one cache root.

    One instance per root is enough for a process (see :func:`get_cache`);
    every method is safe to call from many threads at once.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int | None = None,
        min_age: float = DEFAULT_MIN_AGE,
    ) -> None:
        # Absolute: git runs with its working directory in .home, and ignores
        # relative GIT_CEILING_DIRECTORIES.
        base = Path(root).expanduser() if root is not None else default_cache_dir()
        self.root = base.absolute()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.git = Git(self.root / ".home", timeout=timeout)
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        self.min_age = min_age
        self.stats = CacheStats()
        self._stats_lock = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._evict_lock = threading.Lock()

    # --- public API -------------------------------------------------------------

    def resolve(
        self, repo_url: str, target_revision: str, creds: RepoCredentials | None = None
    ) -> str:
        """The full commit SHA ``target_revision`` names in ``repo_url`` now.

        Raises UserInputError for a refused URL or revision or one not found,
        RetryableError when the server cannot be reached, PermanentError when
        it refuses the credentials.
        """
        return self.resolve_tagged(repo_url, target_revision, creds)[0]

    def resolve_tagged(
        self, repo_url: str, target_revision: str, creds: RepoCredentials | None = None
    ) -> tuple[str, str | None]:
        """:meth:`resolve`, and the tag's name when ``target_revision`` is a tag or a
        semver constraint (the tag it chose), else None."""
        repo = self._fetchable(repo_url)
        revision = validate_revision(target_revision, repo)
        if not is_full_sha(revision):
            self._count("ls_remotes")
        found = resolve_revision(self.git, repo, revision, creds)
        log.info(
            "revision resolved url=%s revision=%r commit=%s ref=%s",
            repo.redacted,
            target_revision,
            found.commit,
            found.ref,
        )
        return found.commit, found.tag

    def checkout(self, repo_url: str, commit: str, creds: RepoCredentials | None = None) -> Path:
        """A read-only directory holding exactly the tree of ``commit`` (no ``.git``).

        ``commit`` must be a full SHA (from :meth:`resolve`). The directory is
        shared by every caller asking for the same repository and commit and
        stays valid until the cache is cleaned; callers must not write into it.
        """
        repo = self._fetchable(repo_url)
        sha = self._valid_commit(commit, repo)
        repo_dir = self.repo_dir(repo)
        dest = repo_dir / sha
        if _touch(dest):
            self._count("hits")
            return dest
        with self._repo_lock(repo_dir):
            if _touch(dest):
                self._count("hits")
                return dest
            mirror = self._mirror(repo_dir, repo)
            _touch(mirror)
            if not self._has_commit(mirror, repo, sha):
                self._fetch(mirror, repo, sha, creds)
                self._check_mirror_size(mirror, repo, sha)
            self._export(mirror, repo, sha, dest)
        self.evict()
        return dest

    async def resolve_async(
        self, repo_url: str, target_revision: str, creds: RepoCredentials | None = None
    ) -> str:
        """:meth:`resolve` in a worker thread."""
        return await asyncio.to_thread(self.resolve, repo_url, target_revision, creds)

    async def resolve_tagged_async(
        self, repo_url: str, target_revision: str, creds: RepoCredentials | None = None
    ) -> tuple[str, str | None]:
        """:meth:`resolve_tagged` in a worker thread."""
        return await asyncio.to_thread(self.resolve_tagged, repo_url, target_revision, creds)

    async def checkout_async(
        self, repo_url: str, commit: str, creds: RepoCredentials | None = None
    ) -> Path:
        """:meth:`checkout` in a worker thread."""
        return await asyncio.to_thread(self.checkout, repo_url, commit, creds)

    def count_commits(
        self, repo_url: str, base: str, head: str, creds: RepoCredentials | None = None
    ) -> int | None:
        """How many commits ``head`` is ahead of ``base`` (``git rev-list --count
        base..head``), for "pinned at X; main is at Y (n commits ahead)"; None
        when git cannot tell (a commit gone, a server that refuses the fetch).

        The checkout mirror is shallow (``--depth=1``), so the count uses a
        second bare repository per remote that holds commits only (a
        ``--filter=tree:0`` fetch of both commits, no trees or files): asked
        when a user reads ``app why``, never on a refresh."""
        repo = self._fetchable(repo_url)
        shas = [self._valid_commit(c, repo) for c in (base, head)]
        repo_dir = self.repo_dir(repo)
        history = repo_dir / "history.git"
        with self._repo_lock(repo_dir):
            if not (history / "HEAD").is_file():
                self.git.run(
                    ["init", "--quiet", "--bare", "--template=", "--", str(history)],
                    repo=repo,
                    action="create a history cache for",
                )
            missing = [sha for sha in shas if not self._has_commit(history, repo, sha)]
            if missing:
                with git_auth(repo, creds) as auth:
                    out = self.git.run(
                        [
                            "fetch",
                            "--quiet",
                            "--filter=tree:0",
                            "--no-tags",
                            "--no-recurse-submodules",
                            "--",
                            repo.raw,
                            *(f"+{sha}:refs/gitmoor/commits/{sha}" for sha in missing),
                        ],
                        repo=repo,
                        auth=auth,
                        git_dir=history,
                        action="fetch the history of",
                        check=False,
                    )
                if out.returncode != 0:
                    log.info("git count url=%s result=unknown reason=fetch", repo.redacted)
                    return None
            counted = self.git.run(
                ["rev-list", "--count", f"{shas[0]}..{shas[1]}"],
                repo=repo,
                git_dir=history,
                action="count the commits of",
                check=False,
            )
        text = counted.stdout.strip() if counted.returncode == 0 else ""
        return int(text) if text.isdigit() else None

    async def count_commits_async(
        self, repo_url: str, base: str, head: str, creds: RepoCredentials | None = None
    ) -> int | None:
        """:meth:`count_commits` in a worker thread."""
        return await asyncio.to_thread(self.count_commits, repo_url, base, head, creds)

    def evict(self, *, now: float | None = None) -> int:
        """Delete least recently used checkouts, then unused mirrors, until the
        cache fits ``max_bytes``; the bytes freed (see the module docstring).

        Called after every new checkout; safe to call at any time and from
        several processes sharing the cache (each deletion happens under the
        repository's lock, after checking once more that nobody took the tree
        in the meantime).
        """
        # One eviction at a time is enough: a checkout finishing while another
        # evicts skips its own pass instead of queueing a worker thread behind it.
        if not self._evict_lock.acquire(blocking=False):
            return 0
        try:
            return self._evict(time.time() if now is None else now)
        finally:
            self._evict_lock.release()

    def usage(self) -> int:
        """Bytes the cache's checkouts and mirrors take (sizes recorded at export)."""
        return sum(e.size for e in self._entries())

    def repo_dir(self, repo: RepoURL | str) -> Path:
        """The cache directory of a repository (every spelling of one URL shares it)."""
        parsed = repo if isinstance(repo, RepoURL) else parse_repo_url(repo)
        key = hashlib.sha256(parsed.normalized.encode()).hexdigest()[:32]
        path = self.root / key
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            (path / "url").write_text(parsed.normalized + "\n", encoding="utf-8")
        return path

    # --- steps ------------------------------------------------------------------

    def _fetchable(self, repo_url: str) -> RepoURL:
        # The cache roots of this process and the default one: a file:// URL
        # into any of them would read another application's mirror.
        with _caches_lock:
            roots = {self.root, default_cache_dir(), *_caches}
        return check_fetchable(repo_url, forbidden=roots)

    def _valid_commit(self, commit: str, repo: RepoURL) -> str:
        text = commit.strip() if isinstance(commit, str) else ""
        if not is_full_sha(text):
            raise UserInputError(
                f"cannot check out {commit!r} from {repo.redacted}: a full commit SHA is "
                "needed (resolve the revision first)",
                concerns=repo.redacted,
            )
        return text.lower()

    def _mirror(self, repo_dir: Path, repo: RepoURL) -> Path:
        mirror = repo_dir / MIRROR
        if (mirror / "HEAD").is_file():
            return mirror
        # Initialise beside and rename, so a crash never leaves half a mirror.
        staging = repo_dir / f".tmp-mirror-{uuid.uuid4().hex[:12]}"
        try:
            # --template= : no sample hooks or info/exclude from the system templates.
            self.git.run(
                ["init", "--quiet", "--bare", "--template=", "--", str(staging)],
                repo=repo,
                action="create a cache mirror for",
            )
            _force_rmtree(mirror)
            staging.rename(mirror)
        finally:
            _force_rmtree(staging)
        return mirror

    def _has_commit(self, mirror: Path, repo: RepoURL, sha: str) -> bool:
        out = self.git.run(
            ["cat-file", "-e", f"{sha}^{{commit}}"],
            repo=repo,
            git_dir=mirror,
            action="read the cache of",
            check=False,
        )
        return out.returncode == 0

    def _fetch(self, mirror: Path, repo: RepoURL, sha: str, creds: RepoCredentials | None) -> None:
        with git_auth(repo, creds) as auth:
            self._count("fetches")
            log.info("git fetch url=%s commit=%s depth=1", repo.redacted, sha)
            out = self.git.run(
                [
                    "fetch",
                    "--quiet",
                    "--depth=1",
                    "--no-tags",
                    "--no-recurse-submodules",
                    "--",
                    repo.raw,
                    f"+{sha}:refs/gitmoor/commits/{sha}",
                ],
                repo=repo,
                auth=auth,
                git_dir=mirror,
                action="fetch from",
                check=False,
            )
            if out.returncode == 0:
                return
            if not _SHA_REFUSED.search(out.stderr):
                raise classify(out.stderr, repo=repo, action="fetch from")
            # The server will not hand out this SHA alone: take its branches
            # and tags whole, then look again.
            self._count("fetches")
            log.info("git fetch url=%s commit=%s depth=full reason=sha-refused", repo.redacted, sha)
            shallow = (mirror / "shallow").is_file()
            self.git.run(
                [
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--no-recurse-submodules",
                    *(["--unshallow"] if shallow else []),
                    "--",
                    repo.raw,
                    "+refs/heads/*:refs/gitmoor/heads/*",
                    "+refs/tags/*:refs/gitmoor/tags/*",
                ],
                repo=repo,
                auth=auth,
                git_dir=mirror,
                action="fetch from",
            )
        if not self._has_commit(mirror, repo, sha):
            raise UserInputError(
                f"commit {sha} not found in {repo.redacted}", concerns=repo.redacted
            )

    def _export(self, mirror: Path, repo: RepoURL, sha: str, dest: Path) -> None:
        declared = self._declared_bytes(mirror, repo, sha)
        if declared > self.max_bytes:
            raise UserInputError(
                f"{repo.redacted} at commit {sha} holds {_mib(declared)} of files, more than "
                f"the whole checkout cache budget of {_mib(self.max_bytes)}; raise "
                f"{ENV_CACHE_MAX_BYTES} if this repository is meant to be that large",
                concerns=repo.redacted,
            )
        staging = dest.parent / f".tmp-{sha}-{uuid.uuid4().hex[:12]}"
        index = staging.with_name(staging.name + ".index")
        staging.mkdir()
        self._count("exports")
        try:
            # A private index keeps the shared mirror untouched; checkout-index
            # writes files, modes and symlinks as a checkout would, without .git.
            env = {"GIT_INDEX_FILE": str(index)}
            self.git.run(
                ["read-tree", "--", sha],
                repo=repo,
                git_dir=mirror,
                extra_env=env,
                action="read the cache of",
            )
            self.git.run(
                [f"--work-tree={staging}", "checkout-index", "--all", "--force"],
                repo=repo,
                git_dir=mirror,
                extra_env=env,
                action="write a checkout of",
            )
            _check_symlinks(staging, repo, sha)
            _make_read_only(staging)
            size_file = dest.with_name(dest.name + _SIZE_SUFFIX)
            size_file.write_text(f"{_tree_bytes(staging)}\n", encoding="utf-8")
            staging.rename(dest)
            log.info("checkout ready url=%s commit=%s path=%s", repo.redacted, sha, dest)
        finally:
            _force_rmtree(staging)
            index.unlink(missing_ok=True)

    def _check_mirror_size(self, mirror: Path, repo: RepoURL, sha: str) -> None:
        fetched = _tree_bytes(mirror)
        if fetched > self.max_bytes:
            # Thrown away whole: a mirror this size would evict every other app's cache.
            _force_rmtree(mirror)
            raise UserInputError(
                f"{repo.redacted} at commit {sha} fetched {_mib(fetched)}, more than the "
                f"whole checkout cache budget of {_mib(self.max_bytes)}; raise "
                f"{ENV_CACHE_MAX_BYTES} if this repository is meant to be that large",
                concerns=repo.redacted,
            )

    def _declared_bytes(self, mirror: Path, repo: RepoURL, sha: str) -> int:
        """The bytes of every file of ``sha``'s tree, from the mirror, before any is written."""
        out = self.git.run(
            ["ls-tree", "-r", "-l", "--full-tree", sha],
            repo=repo,
            git_dir=mirror,
            action="read the cache of",
        )
        total = 0
        for line in out.stdout.splitlines():
            meta, _, _path = line.partition("\t")
            fields = meta.split()
            # "<mode> blob <object> <size>"; submodules ("commit") have "-".
            if len(fields) == 4 and fields[3].isdigit():
                total += int(fields[3])
        return total

    # --- eviction ---------------------------------------------------------------

    def _entries(self) -> list[_Entry]:
        entries: list[_Entry] = []
        for repo_dir in _subdirs(self.root):
            if repo_dir.name.startswith("."):
                continue
            for child in _subdirs(repo_dir):
                if is_full_sha(child.name):
                    size_file = child.with_name(child.name + _SIZE_SUFFIX)
                    entries.append(_Entry(repo_dir, child, _recorded_size(size_file, child)))
                elif child.name == MIRROR:
                    entries.append(_Entry(repo_dir, child, _tree_bytes(child)))
        return entries

    def _evict(self, now: float) -> int:
        entries = self._entries()
        total = sum(e.size for e in entries)
        if total <= self.max_bytes:
            return 0
        freed = 0
        checkouts = sorted((e for e in entries if e.path.name != MIRROR), key=_Entry.last_used)
        mirrors = sorted((e for e in entries if e.path.name == MIRROR), key=_Entry.last_used)
        for entry in [*checkouts, *mirrors]:
            if total - freed <= self.max_bytes:
                break
            if entry.path.name == MIRROR and any(
                is_full_sha(c.name) for c in _subdirs(entry.repo_dir)
            ):
                continue  # its checkouts are still here: they will need it again
            with self._repo_lock(entry.repo_dir):
                # Looked at again under the lock: a checkout handed out since the
                # listing (its mtime moved) stays.
                if now - entry.last_used() < self.min_age or not entry.path.is_dir():
                    continue
                _force_rmtree(entry.path)
                if entry.path.name != MIRROR:
                    entry.path.with_name(entry.path.name + _SIZE_SUFFIX).unlink(missing_ok=True)
            freed += entry.size
            self._count("evicted")
            log.info(
                "cache evicted path=%s bytes=%d idle_seconds=%.0f",
                entry.path.relative_to(self.root),
                entry.size,
                now - entry.last_used(),
            )
        if total - freed > self.max_bytes:
            log.warning(
                "cache over budget bytes=%d budget=%d reason=all-recently-used min_age=%.0f",
                total - freed,
                self.max_bytes,
                self.min_age,
            )
        return freed

    # --- plumbing ---------------------------------------------------------------

    @contextlib.contextmanager
    def _repo_lock(self, repo_dir: Path) -> Iterator[None]:
        with self._locks_lock:
            lock = self._locks.setdefault(repo_dir, threading.Lock())
        with lock:
            fd = os.open(repo_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)


@dataclass(frozen=True, slots=True)
class _Entry:
    """A checkout or a mirror, with the bytes it takes."""

    repo_dir: Path
    path: Path
    size: int

    def last_used(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0


def _touch(path: Path) -> bool:
    """Mark ``path`` as just used (its mtime); False when it does not exist.

    The tree is read-only, but its owner may still set its times.
    """
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except OSError:
        return path.is_dir()
    return path.is_dir()


def _subdirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def _tree_bytes(root: Path) -> int:
    """Bytes of the regular files under ``root`` (symlinks not followed)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            with contextlib.suppress(OSError):
                st = (Path(dirpath) / name).lstat()
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def _recorded_size(size_file: Path, tree: Path) -> int:
    try:
        return int(size_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return _tree_bytes(tree)  # a checkout from before sizes were recorded


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _check_symlinks(root: Path, repo: RepoURL, sha: str) -> None:
    """Refuse a tree with a symlink that leaves it.

    A link to ``/etc/passwd`` or ``../../other-app`` would let a renderer read
    files of the host or of another repository; Argo CD refuses such
    repositories for the same reason (CVE-2022-24904, ``CheckOutOfBoundsSymlinks``).
    """
    # Resolved, not lexically normalised: with ``d -> .``, ``d/../x`` looks
    # inside but resolves to the parent of the tree.
    base = root.resolve()
    for dirpath, dirnames, filenames in os.walk(base):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if not path.is_symlink():
                continue
            try:
                target = path.resolve()
            except (RuntimeError, OSError) as err:  # a loop: RuntimeError before Python 3.13
                raise UserInputError(
                    f"{repo.redacted} at commit {sha} has a symlink "
                    f"{str(path.relative_to(base))!r} that loops and never resolves",
                    concerns=repo.redacted,
                ) from err
            if not target.is_relative_to(base):
                raise UserInputError(
                    f"{repo.redacted} at commit {sha} has a symlink "
                    f"{str(path.relative_to(base))!r} that points outside the repository",
                    concerns=repo.redacted,
                )


def _make_read_only(root: Path) -> None:
    """Owner-only, no write bits: the tree is shared by every app on this commit.

    Owner-only as well, since a private repository's files must not become
    readable by other users of the machine through the cache.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(stat.S_IMODE(path.lstat().st_mode) & 0o500)
    root.chmod(0o500)


def _force_rmtree(path: Path) -> None:
    """Remove a tree even where :func:`_make_read_only` took the write bits."""
    if not os.path.lexists(path):
        return

    def retry(func: Callable[..., object], p: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            Path(p).parent.chmod(0o700)
            if not Path(p).is_symlink():
                Path(p).chmod(0o700)
        with contextlib.suppress(OSError):
            func(p)

    shutil.rmtree(path, onerror=retry)


# --- module-level API over one cache per root -------------------------------------

_caches: dict[Path, GitCache] = {}
_caches_lock = threading.Lock()


def get_cache(root: Path | str | None = None) -> GitCache:
    """The process-wide :class:`GitCache` of ``root`` (default :func:`default_cache_dir`)."""
    path = (Path(root).expanduser() if root is not None else default_cache_dir()).absolute()
    with _caches_lock:
        cache = _caches.get(path)
        if cache is None:
            cache = _caches[path] = GitCache(path)
        return cache


def resolve(
    repo_url: str,
    target_revision: str,
    creds: RepoCredentials | None = None,
    *,
    cache_dir: Path | str | None = None,
) -> str:
    """The full commit SHA ``target_revision`` names in ``repo_url`` (see :meth:`GitCache.resolve`)."""
    return get_cache(cache_dir).resolve(repo_url, target_revision, creds)


def checkout(
    repo_url: str,
    commit: str,
    creds: RepoCredentials | None = None,
    *,
    cache_dir: Path | str | None = None,
) -> Path:
    """The read-only tree of ``commit`` (see :meth:`GitCache.checkout`)."""
    return get_cache(cache_dir).checkout(repo_url, commit, creds)


async def resolve_async(
    repo_url: str,
    target_revision: str,
    creds: RepoCredentials | None = None,
    *,
    cache_dir: Path | str | None = None,
) -> str:
    """:func:`resolve` in a worker thread."""
    return await get_cache(cache_dir).resolve_async(repo_url, target_revision, creds)


async def resolve_tagged_async(
    repo_url: str,
    target_revision: str,
    creds: RepoCredentials | None = None,
    *,
    cache_dir: Path | str | None = None,
) -> tuple[str, str | None]:
    """The commit and, for a tag or semver target, the tag (see :meth:`GitCache.resolve_tagged`)."""
    return await get_cache(cache_dir).resolve_tagged_async(repo_url, target_revision, creds)


async def count_commits_async(
    repo_url: str,
    base: str,
    head: str,
    creds: RepoCredentials | None = None,
    *,
    cache_dir: Path | str | None = None,
) -> int | None:
    """Commits ``head`` is ahead of ``base`` (see :meth:`GitCache.count_commits`)."""
    return await get_cache(cache_dir).count_commits_async(repo_url, base, head, creds)


async def checkout_async(
    repo_url: str,
    commit: str,
    creds: RepoCredentials | None = None,
    *,
    cache_dir: Path | str | None = None,
) -> Path:
    """:func:`checkout` in a worker thread."""
    return await get_cache(cache_dir).checkout_async(repo_url, commit, creds)
