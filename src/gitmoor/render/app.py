"""Choosing a renderer for an app path and running it: the entry point of render/."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from gitmoor.model import GitmoorError, PermanentError, UserInputError
from gitmoor.render.base import RenderOptions
from gitmoor.render.decrypt import (
    check_encrypted_secrets,
    check_no_sops,
    decrypted,
    scrub_values,
)
from gitmoor.render.directory import DirectoryRenderer
from gitmoor.render.helm import CHART_FILE, HelmRenderer
from gitmoor.render.kustomize import KustomizeRenderer, kustomization_file
from gitmoor.render.paths import open_app, path_error, refuse_outbound_symlinks

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.model import RenderResult
    from gitmoor.render.base import AppTree, Renderer

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


def renderer_name(root: Path, path: str, revision: str) -> str | None:
    """The ``name`` of the renderer ``render_app`` chooses for ``path`` in the
    checkout ``root``, or None when the path does not open (the render says why).

    A pure function of the commit and the path, like the render: the render
    cache keys a render by the options this renderer reads, and no others."""
    try:
        return select_renderer(open_app(root, path, revision).app_dir).name
    except (GitmoorError, OSError):
        return None


def _escaped(err: Exception, app: AppTree) -> GitmoorError:
    """An error that got past the renderers' own handling, as a sentence for the app.

    Callers (the engine's refresh, the controller) report ``GitmoorError``s as
    the app's condition; anything else would leave the app in silent backoff.
    What a repository can cause (deep nesting, a symlink loop, an unreadable or
    undecodable file) is the author's to fix; anything else is a bug of ours,
    logged with its traceback and still shown on the app.
    """
    if isinstance(err, RecursionError):
        return UserInputError("nesting too deep to render", concerns=app.path)
    if isinstance(err, RuntimeError) and "symlink loop" in str(err).lower():
        return UserInputError("symlink loop: a path never resolves", concerns=app.path)
    if isinstance(err, OSError):
        return path_error(err, app.path)
    if isinstance(err, UnicodeError):
        return UserInputError("a file is not UTF-8 text", concerns=app.path)
    if isinstance(err, MemoryError):
        return UserInputError("the render needs more memory than there is", concerns=app.path)
    log.exception("event=render_bug path=%s revision=%s", app.path, app.revision)
    return PermanentError(
        f"internal error while rendering: {type(err).__name__}: {err}", concerns=app.path
    )


def render_app(
    root: Path, path: str, revision: str, options: RenderOptions | None = None
) -> RenderResult:
    """Render the app at ``path`` of the checkout ``root`` at ``revision``.

    Synchronous and blocking (it runs kustomize or helm, and sops); the controller
    calls it through ``asyncio.to_thread``. Raises ``UserInputError`` for anything
    the repository or the spec must fix, naming the file (and line where known).
    An empty render is a warning, not an error: whether an app with nothing in
    it may be synced (and prune everything) is the engine's decision.

    With ``options.decryption``, SOPS files are decrypted first, in a private copy
    of the checkout (``decrypt``); without it, a render holding SOPS data is
    refused.
    """
    options = options or RenderOptions()
    open_app(root, path, revision)  # a bad path is refused before anything is decrypted
    if options.decryption is None:
        result = _render(root, path, revision, options)
        if not options.keep_encrypted:
            check_no_sops(result.manifests, path)
        if options.require_encrypted_secrets:
            check_encrypted_secrets(result.manifests, path, frozenset())
        return result
    with decrypted(root, options.decryption, timeout=options.timeout) as plain:
        try:
            result = _render(plain.root, path, revision, options)
        except UserInputError as err:
            raise scrub_values(err, plain.secret_values) from None
        check_no_sops(result.manifests, path, plain.failures, plain.root)
        if options.require_encrypted_secrets:
            check_encrypted_secrets(
                result.manifests, path, plain.secret_values, plain.root, plain.sops_files
            )
        return replace(result, secret_values=plain.secret_values)


def _render(root: Path, path: str, revision: str, options: RenderOptions) -> RenderResult:
    started = time.monotonic()
    app = open_app(root, path, revision)
    try:
        renderer = select_renderer(app.app_dir)
        # A directory app reads only its manifests (each size-checked as it is
        # read); the tools read whatever lies below the path.
        tool = not isinstance(renderer, DirectoryRenderer)
        refuse_outbound_symlinks(app, app.app_dir, check_sizes=tool)
        result = renderer.render(app, options)
    except GitmoorError:
        raise
    except Exception as err:  # the last wall, see _escaped
        raise _escaped(err, app) from err
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
