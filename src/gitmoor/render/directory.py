"""Plain directories of manifests, like Argo CD's "directory" source type.

Limits (``limits``): each file at most ``MAX_FILE_BYTES``, all of them together
at most ``MAX_RENDER_BYTES``, both checked with ``stat`` before anything is
read, as Argo CD's repo-server caps a directory app's combined manifest size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from gitmoor.model import Manifest, RenderResult, UserInputError
from gitmoor.render.limits import MAX_RENDER_BYTES, mib
from gitmoor.render.objects import manifests_of
from gitmoor.render.paths import file_size, read_text
from gitmoor.render.yamlload import load_documents

if TYPE_CHECKING:
    from gitmoor.render.base import AppTree, RenderOptions

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def manifest_files(app: AppTree) -> list[Path]:
    """The manifest files below the app path, in a stable order.

    Dot-prefixed files and directories are skipped: they hold tooling
    (``.github/workflows``, ``.pre-commit-config.yaml``, ``.sops.yaml``) whose
    YAML is not Kubernetes objects. Symlinked directories are not descended, as
    Go's ``filepath.Walk`` (and so Argo CD) does not, which also keeps a link
    cycle from repeating files. The order is that of a sorted walk, so a file
    comes before a sibling directory's contents only by name, the same on every
    machine and every run.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(app.app_dir, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".") and name.endswith(MANIFEST_SUFFIXES)
        )
    return sorted(found, key=lambda p: p.relative_to(app.app_dir).parts)


class DirectoryRenderer:
    """Every ``.yaml``/``.yml``/``.json`` below the app path, recursively."""

    name = "directory"

    def render(self, app: AppTree, options: RenderOptions) -> RenderResult:
        files = manifest_files(app)
        total = sum(file_size(app, path) for path in files)
        if total > MAX_RENDER_BYTES:
            raise UserInputError(
                f"the manifests under the app path add up to {mib(total)}, more than the "
                f"{mib(MAX_RENDER_BYTES)} an app may render",
                concerns=app.path,
            )
        manifests: list[Manifest] = []
        for path in files:
            where = app.repo_relative(path)
            source_file = app.app_relative(path)
            for doc in load_documents(read_text(app, path), where=where):
                manifests.extend(manifests_of(doc, where=where, source_file=source_file))
        return RenderResult(app.revision, tuple(manifests))
