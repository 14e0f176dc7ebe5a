"""Fixtures: a real git server over HTTP with Basic auth (see support/githttp.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.source import GitCache
from support.githttp import PASSWORD, USER, GitHTTPServer
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["PASSWORD", "USER"]


@pytest.fixture
def served_repo(git_server: GitHTTPServer) -> GitRepo:
    repo = GitRepo(git_server.root / "app")
    repo.commit({"deploy.yaml": "kind: Deployment\n"}, "first")
    return repo


@pytest.fixture
def cache(tmp_path: Path) -> GitCache:
    return GitCache(tmp_path / "cache")
