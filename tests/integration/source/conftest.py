"""Fixtures: a real git server over HTTP with Basic auth (see support/githttp.py)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from gitmoor.source import GitCache
from support.githttp import PASSWORD, USER, GitHTTPServer, _handler
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["PASSWORD", "USER"]


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitHTTPServer]:
    state = GitHTTPServer(root=tmp_path / "srv")
    state.root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def served_repo(git_server: GitHTTPServer) -> GitRepo:
    repo = GitRepo(git_server.root / "app")
    repo.commit({"deploy.yaml": "kind: Deployment\n"}, "first")
    return repo


@pytest.fixture
def cache(tmp_path: Path) -> GitCache:
    return GitCache(tmp_path / "cache")
