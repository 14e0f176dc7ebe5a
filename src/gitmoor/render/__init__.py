"""Rendering an app at a commit into manifests: directory, Kustomize or Helm.

The only package that runs ``kubectl kustomize`` and ``helm``. Everything it
reads stays inside the checked-out repository (see ``paths``); errors the
repository's author must fix are ``UserInputError`` naming the file and line.
Every render runs under the limits of ``limits`` (file and output sizes, YAML
depth and alias expansion, enforced in ``paths``, ``yamlload`` and ``proc``),
and kustomize and helm run with no way out to the network (``proc``).

    render_app(root, path, revision, options) -> RenderResult
    RenderCache(maxsize).get_or_render(root, path, revision, options) -> RenderResult
"""

from gitmoor.render.app import render_app, select_renderer
from gitmoor.render.base import AppTree, DecryptionKeys, Renderer, RenderOptions
from gitmoor.render.cache import RenderCache
from gitmoor.render.decrypt import decoded_secret_values
from gitmoor.render.directory import DirectoryRenderer
from gitmoor.render.helm import HelmRenderer
from gitmoor.render.kustomize import KustomizeRenderer
from gitmoor.render.paths import open_app

__all__ = [
    "AppTree",
    "DecryptionKeys",
    "DirectoryRenderer",
    "HelmRenderer",
    "KustomizeRenderer",
    "RenderCache",
    "RenderOptions",
    "Renderer",
    "decoded_secret_values",
    "open_app",
    "render_app",
    "select_renderer",
]
