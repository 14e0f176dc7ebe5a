"""Keeping every read inside the checked-out repository.

An app's path, a Helm value file and a Kustomize base all come from the
repository or the Application spec, i.e. from users; a path that escapes the
checkout (``..``, an absolute path, a symlink) would let one tenant read another
tenant's checkout or the controller's own files and see them in a rendered
ConfigMap. The rule is Argo CD's: a symlink anywhere in what we render that
points outside the repository fails the render (its repo-server refuses
"out-of-bounds symlinks" the same way).

Size: no file larger than ``MAX_FILE_BYTES`` is read (``stat`` first, then a
bounded read), and none is left for kustomize or helm to read either: for them
the walk that looks for outbound symlinks refuses it too, since they read files
we never open. A symlink loop, or any other ``OSError`` of a path the repository
chose, becomes a ``UserInputError`` naming the path, never a traceback.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from gitmoor.model import PermanentError, UserInputError
from gitmoor.render.base import AppTree
from gitmoor.render.limits import MAX_FILE_BYTES, mib


def _resolve(p: Path, *, strict: bool, concerns: str) -> Path:
    try:
        return p.resolve(strict=strict)
    except FileNotFoundError as err:
        raise UserInputError("path does not exist", concerns=concerns) from err
    except RuntimeError as err:  # how pathlib reports a symlink loop before Python 3.13
        raise UserInputError("symlink loop: the path never resolves", concerns=concerns) from err
    except OSError as err:
        raise path_error(err, concerns) from err


def path_error(err: OSError, concerns: str) -> UserInputError:
    """An ``OSError`` on a path of the repository, as one sentence without host paths."""
    if err.errno == errno.ELOOP:
        return UserInputError("symlink loop: the path never resolves", concerns=concerns)
    return UserInputError(f"cannot read path: {err.strerror or err}", concerns=concerns)


def safe_resolve(p: Path, *, concerns: str) -> Path:
    """``p`` resolved as far as it exists; a loop is a ``UserInputError`` naming ``concerns``."""
    return _resolve(p, strict=False, concerns=concerns)


def normalise_relative(path: str, *, what: str) -> str:
    """``path`` as a normalised POSIX path that stays below where it is relative to."""
    raw = path or "."
    if "\x00" in raw:
        raise UserInputError(f"{what} contains a NUL byte", concerns=repr(path))
    if PurePosixPath(raw).is_absolute() or PureWindowsPath(raw).drive:
        raise UserInputError(
            f"{what} must be relative to the repository root, not absolute", concerns=path
        )
    norm = posixpath.normpath(raw)
    if norm == ".." or norm.startswith("../"):
        raise UserInputError(f"{what} escapes the repository root", concerns=path)
    return norm


def inside_root(root: Path, candidate: Path, *, concerns: str) -> Path:
    """``candidate`` resolved, or ``UserInputError`` if it exists outside ``root``."""
    real = _resolve(candidate, strict=True, concerns=concerns)
    if not real.is_relative_to(root):
        raise UserInputError("path resolves outside the repository", concerns=concerns)
    return real


def open_app(root: Path, path: str, revision: str) -> AppTree:
    """Check the app ``path`` inside the checkout at ``root`` and resolve it."""
    norm = normalise_relative(path, what="app path")
    try:
        root_real = root.resolve(strict=True)
    except OSError as err:  # the checkout is ours, not the user's: nothing to fix in git
        raise PermanentError(f"repository checkout is missing: {err}", concerns=str(root)) from err
    app_dir = inside_root(root_real, root_real / norm, concerns=path or ".")
    if not app_dir.is_dir():
        raise UserInputError("app path is not a directory", concerns=path)
    rel = app_dir.relative_to(root_real).as_posix()
    return AppTree(root=root_real, app_dir=app_dir, path=rel, revision=revision)


def refuse_outbound_symlinks(app: AppTree, top: Path, *, check_sizes: bool = True) -> None:
    """Fail if any symlink below ``top`` points outside the repository.

    Helm loads every file of a chart and follows symlinks (``.Files.Get`` would
    hand the target's content to a template), so checking only the files we read
    ourselves is not enough. Symlinked directories that stay inside are walked
    too, since a tool would follow them; each real directory is visited once, so
    a link cycle ends. With ``check_sizes`` (for kustomize and helm, which read
    files we never open) a file over ``MAX_FILE_BYTES`` fails the render too.
    """
    seen: set[Path] = set()
    stack = [top]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            entries = list(os.scandir(current))
        except OSError as err:
            raise UserInputError(
                f"cannot list directory: {err.strerror}", concerns=app.repo_relative(current)
            ) from err
        for entry in entries:
            if entry.name == ".git":
                continue
            p = Path(entry.path)
            shown = app.repo_relative(p)
            try:
                if entry.is_file(follow_symlinks=False):
                    if check_sizes:
                        _check_size(entry.stat(follow_symlinks=False), shown)
                elif entry.is_symlink():
                    target = _resolve(p, strict=False, concerns=shown)
                    if not target.is_relative_to(app.root):
                        raise UserInputError(
                            "symlink points outside the repository; refusing to read it",
                            concerns=shown,
                        )
                    if target.is_dir():
                        stack.append(target)
                    elif check_sizes and target.is_file():
                        _check_size(target.stat(), shown)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(p)
            except OSError as err:
                raise path_error(err, shown) from err


def _check_size(st: os.stat_result, shown: str) -> None:
    if st.st_size > MAX_FILE_BYTES:
        raise UserInputError(
            f"file is {mib(st.st_size)}, larger than the {mib(MAX_FILE_BYTES)} limit per file",
            concerns=shown,
        )


def file_size(app: AppTree, path: Path) -> int:
    """The size of a regular file of the repository, checked against ``MAX_FILE_BYTES``."""
    shown = app.repo_relative(path)
    try:
        st = path.stat()
    except FileNotFoundError as err:  # a dangling symlink inside the repository
        raise UserInputError("file does not exist (dangling symlink?)", concerns=shown) from err
    except OSError as err:
        raise path_error(err, shown) from err
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or a device would block the read or never end it.
        raise UserInputError("not a regular file", concerns=shown)
    _check_size(st, shown)
    return st.st_size


def read_text(app: AppTree, path: Path) -> str:
    """A UTF-8 file of the repository (a BOM tolerated), errors naming it.

    Checked with ``stat`` before it is opened and read with a bound, so neither a
    100 MB file nor one that grows meanwhile is ever held in memory.
    """
    shown = app.repo_relative(path)
    file_size(app, path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise path_error(err, shown) from err
    if len(data) > MAX_FILE_BYTES:
        raise UserInputError(
            f"file is larger than the {mib(MAX_FILE_BYTES)} limit per file", concerns=shown
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserInputError("file is not UTF-8 text", concerns=shown) from err
