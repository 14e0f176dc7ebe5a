"""Real git repositories in tmp_path, served over file:// URLs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.source import GitCache
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    r = GitRepo(tmp_path / "repo")
    r.commit({"README.md": "hello\n"}, "first")
    return r


@pytest.fixture
def cache(tmp_path: Path) -> GitCache:
    return GitCache(tmp_path / "cache")
