"""A bounded in-memory cache of renders, keyed by what determines the output.

A render is a pure function of (commit, path, options): the commit pins every
file it reads, and remote bases are refused by default. So a commit is rendered
once per path and options, however often the controller reconciles, until the
entry is evicted. ``revision`` must therefore be a commit id, not a branch name.
The checkout's location is not part of the key: two checkouts of one commit
hold the same files. Nor are the options the app's renderer does not read
(``RenderOptions.cache_key``): every app of one commit and path whose renderer
reads nothing that tells them apart (a directory app, a kustomization, in
whichever destination namespace) shares one render.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from gitmoor.model import UserInputError
from gitmoor.model.jsondata import copy_json
from gitmoor.render.app import render_app, renderer_name
from gitmoor.render.base import RenderOptions
from gitmoor.render.paths import normalise_relative

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from gitmoor.model import RenderResult


class RenderFunction(Protocol):
    def __call__(
        self, root: Path, path: str, revision: str, options: RenderOptions | None = None
    ) -> RenderResult: ...


_Key = tuple[str, str, str]


class RenderCache:
    """LRU of renders; safe to share between threads.

    Concurrent requests for one key wait for the first render instead of running
    kustomize or helm again. A ``UserInputError`` is cached like a result: the
    same files give the same refusal, and a hostile commit (an alias bomb, a
    kustomization that names a URL) should cost one render, not one per
    reconcile; each call raises a fresh error with the same sentence. Other
    failures are not cached: the next call renders again (the error may have
    been a timeout, or the binary was missing).
    Each call returns its own copy of the manifests, because later steps
    (adding tracking ids, defaulting namespaces) change objects in place and
    must not change what the next reconcile gets from here.
    """

    def __init__(
        self,
        maxsize: int = 256,
        render: RenderFunction = render_app,
        renderer_of: Callable[[Path, str, str], str | None] | None = None,
    ) -> None:
        """``renderer_of(root, path, revision)`` names the renderer ``render`` uses
        for a path, so that only the options it reads key the render; by default
        ``render_app``'s own choice, and for any other render function none (every
        option counts)."""
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._render = render
        if renderer_of is None and render is render_app:
            renderer_of = renderer_name
        self._renderer_of = renderer_of
        #: (commit, path) -> renderer name: looked at once per commit, not per call
        self._renderers: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._entries: OrderedDict[_Key, RenderResult | UserInputError] = OrderedDict()
        self._inflight: dict[_Key, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get_or_render(
        self, root: Path, path: str, revision: str, options: RenderOptions | None = None
    ) -> RenderResult:
        options = options or RenderOptions()
        norm = normalise_relative(path, what="app path")
        key = (revision, norm, options.cache_key(self._renderer(root, norm, revision)))
        while True:
            with self._lock:
                hit = self._entries.get(key)
                if hit is not None:
                    self._entries.move_to_end(key)
                    if isinstance(hit, UserInputError):
                        raise UserInputError(hit.message, concerns=hit.concerns) from hit
                    return _copied(hit)
                waiting = self._inflight.get(key)
                if waiting is None:
                    done = self._inflight[key] = threading.Event()
                    break
            # Another thread renders this key: wait, then look again (if it
            # failed, this thread becomes the one that renders).
            waiting.wait()
        try:
            try:
                result = self._render(root, path, revision, options)
            except UserInputError as err:
                self._store(key, err)
                raise
            self._store(key, result)
            return _copied(result)
        finally:
            with self._lock:
                del self._inflight[key]
            done.set()

    def forget(self, path: str) -> int:
        """Drop every render of ``path`` (at any revision): a hard refresh renders it
        again, as Argo CD's hard refresh skips its manifest cache. The number dropped.

        A path that cannot be rendered (``../x``, absolute) has no render here: 0,
        not an error, so a hard refresh of such an app goes on to report why on its
        status instead of stopping at the cache."""
        try:
            norm = normalise_relative(path, what="app path")
        except UserInputError:
            return 0
        with self._lock:
            keys = [k for k in self._entries if k[1] == norm]
            for k in keys:
                del self._entries[k]
            for known in [k for k in self._renderers if k[1] == norm]:
                del self._renderers[known]
        return len(keys)

    def _renderer(self, root: Path, path: str, revision: str) -> str | None:
        if self._renderer_of is None:
            return None
        known = (revision, path)
        with self._lock:
            if known in self._renderers:
                self._renderers.move_to_end(known)
                return self._renderers[known]
        name = self._renderer_of(root, path, revision)
        with self._lock:
            self._renderers[known] = name
            while len(self._renderers) > self.maxsize:
                self._renderers.popitem(last=False)
        return name

    def _store(self, key: _Key, entry: RenderResult | UserInputError) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _copied(result: RenderResult) -> RenderResult:
    """A copy of ``result`` whose objects the caller may change (``copy_json``:
    a cache hit of 1,000 ConfigMaps took 0.04-0.14 s with ``copy.deepcopy``)."""
    return dataclasses.replace(
        result,
        manifests=tuple(dataclasses.replace(m, obj=copy_json(m.obj)) for m in result.manifests),
    )
