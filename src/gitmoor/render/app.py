"""Choosing a renderer for an app path and running it: the entry point of render/."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from gitmoor.render.base import RenderOptions
from gitmoor.render.directory import DirectoryRenderer
from gitmoor.render.helm import CHART_FILE, HelmRenderer
from gitmoor.render.kustomize import KustomizeRenderer, kustomization_file
from gitmoor.render.paths import open_app, refuse_outbound_symlinks

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.model import RenderResult
    from gitmoor.render.base import Renderer

log = logging.getLogger(__name__)


def select_renderer(app_dir: Path) -> Renderer:
    """What the directory holds decides, in Argo CD's order of discovery.

    A chart may ship a ``kustomization.yaml`` for other tooling, so ``Chart.yaml``
    wins; a kustomization in a plain directory means its other YAML files are
    kustomize inputs (patches, generator sources), not objects to apply.
    """
    if (app_dir / CHART_FILE).is_file():
        return HelmRenderer()
    if kustomization_file(app_dir) is not None:
        return KustomizeRenderer()
    return DirectoryRenderer()


def render_app(
    root: Path, path: str, revision: str, options: RenderOptions | None = None
) -> RenderResult:
    """Render the app at ``path`` of the checkout ``root`` at ``revision``.

    Synchronous and blocking (it runs kustomize or helm); the controller calls it
    through ``asyncio.to_thread``. Raises ``UserInputError`` for anything the
    repository or the spec must fix, naming the file (and line where known).
    An empty render is a warning, not an error: whether an app with nothing in
    it may be synced (and prune everything) is the engine's decision.
    """
    options = options or RenderOptions()
    started = time.monotonic()
    app = open_app(root, path, revision)
    refuse_outbound_symlinks(app, app.app_dir)
    renderer = select_renderer(app.app_dir)
    result = renderer.render(app, options)
    if not result.manifests:
        result = replace(
            result, warnings=(*result.warnings, f"no manifests found under path {app.path!r}")
        )
    log.info(
        "event=rendered renderer=%s path=%s revision=%s manifests=%d warnings=%d seconds=%.3f",
        renderer.name,
        app.path,
        revision,
        len(result.manifests),
        len(result.warnings),
        time.monotonic() - started,
    )
    return result
