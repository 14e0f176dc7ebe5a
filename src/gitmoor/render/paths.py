"""Keeping every read inside the checked-out repository.

An app's path, a Helm value file and a Kustomize base all come from the
repository or the Application spec, i.e. from users; a path that escapes the
checkout (``..``, an absolute path, a symlink) would let one tenant read another
tenant's checkout or the controller's own files and see them in a rendered
ConfigMap. The rule is Argo CD's: a symlink anywhere in what we render that
points outside the repository fails the render (its repo-server refuses
"out-of-bounds symlinks" the same way).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path, PurePosixPath, PureWindowsPath

from gitmoor.model import PermanentError, UserInputError
from gitmoor.render.base import AppSource


def _resolve(p: Path, *, strict: bool, concerns: str) -> Path:
    try:
        return p.resolve(strict=strict)
    except FileNotFoundError as err:
        raise UserInputError("path does not exist", concerns=concerns) from err
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop (Python < 3.13)
        raise UserInputError(f"cannot resolve path: {err}", concerns=concerns) from err


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


def open_app(root: Path, path: str, revision: str) -> AppSource:
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
    return AppSource(root=root_real, app_dir=app_dir, path=rel, revision=revision)


def refuse_outbound_symlinks(app: AppSource, top: Path) -> None:
    """Fail if any symlink below ``top`` points outside the repository.

    Helm loads every file of a chart and follows symlinks (``.Files.Get`` would
    hand the target's content to a template), so checking only the files we read
    ourselves is not enough. Symlinked directories that stay inside are walked
    too, since a tool would follow them; each real directory is visited once, so
    a link cycle ends.
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
            if entry.is_symlink():
                shown = app.repo_relative(p)
                target = _resolve(p, strict=False, concerns=shown)
                if not target.is_relative_to(app.root):
                    raise UserInputError(
                        "symlink points outside the repository; refusing to read it",
                        concerns=shown,
                    )
                if target.is_dir():
                    stack.append(target)
            elif entry.is_dir(follow_symlinks=False):
                stack.append(p)


def read_text(app: AppSource, path: Path) -> str:
    """A UTF-8 file of the repository (a BOM tolerated), errors naming it."""
    shown = app.repo_relative(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserInputError("file is not UTF-8 text", concerns=shown) from err
    except FileNotFoundError as err:  # a dangling symlink inside the repository
        raise UserInputError("file does not exist (dangling symlink?)", concerns=shown) from err
    except OSError as err:
        raise UserInputError(f"cannot read file: {err.strerror}", concerns=shown) from err
