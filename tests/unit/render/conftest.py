"""Fixtures for render tests: real files in tmp_path, the real kubectl and helm."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.toolcache import tools_bins


@pytest.fixture(scope="session", autouse=True)
def tools_on_path() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        bins = tools_bins()
        if bins:
            mp.setenv("PATH", os.pathsep.join([*bins, os.environ.get("PATH", "")]))
        yield


def _require(tool: str, env_var: str) -> str:
    found = os.environ.get(env_var) or shutil.which(tool)
    if found:
        return found
    message = f"{tool} not found (set {env_var} or run testenv/build.sh tools)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def helm() -> str:
    """The helm binary; its absence fails the run on CI and skips it locally."""
    return _require("helm", "GITMOOR_HELM")


@pytest.fixture
def kubectl() -> str:
    found = os.environ.get("GITMOOR_KUBECTL") or shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: the kustomize tests need kubectl kustomize")
    return found


Writer = Callable[[str, str], Path]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty 'checkout', with a sibling directory that is outside it."""
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    return root


@pytest.fixture
def write(repo: Path) -> Writer:
    """write("apps/a.yaml", text): creates the file (dedented) under the repo."""

    def _write(rel: str, text: str) -> Path:
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
