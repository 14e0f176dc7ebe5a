"""Shared by every test tier: where the repository is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session", autouse=True)
def allow_file_repos_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests' git repositories are ``file://`` URLs in pytest's temporary
    directories; gitmoor refuses ``file://`` outside the roots an operator allows
    (``GITMOOR_ALLOW_FILE_REPOS``), so the tests allow exactly that tree. Set in
    ``os.environ``, so controllers and CLIs started as subprocesses inherit it."""
    root = str(tmp_path_factory.getbasetemp().resolve())
    before = os.environ.get("GITMOOR_ALLOW_FILE_REPOS")
    os.environ["GITMOOR_ALLOW_FILE_REPOS"] = root
    yield
    if before is None:
        os.environ.pop("GITMOOR_ALLOW_FILE_REPOS", None)
    else:
        os.environ["GITMOOR_ALLOW_FILE_REPOS"] = before
