"""Fixtures for lint tests: the fixture repository copied out of the tree, and
helm (for the chart) on PATH where testenv/build.sh put it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.toolcache import tools_bins

if TYPE_CHECKING:
    from collections.abc import Iterator

TESTDATA = Path(__file__).parent / "testdata"


@pytest.fixture(scope="session", autouse=True)
def lint_tools_on_path() -> Iterator[None]:
    """kubectl (kustomize) and helm, as the renderer runs them; missing helm fails
    the run on CI and skips it locally, as the render tests do."""
    with pytest.MonkeyPatch.context() as mp:
        bins = tools_bins()
        if bins:
            mp.setenv("PATH", os.pathsep.join([*bins, os.environ.get("PATH", "")]))
        if not (os.environ.get("GITMOOR_HELM") or shutil.which("helm")):
            message = "helm not found (set GITMOOR_HELM or run testenv/build.sh tools)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        yield


@pytest.fixture
def fixture_repo(tmp_path: Path) -> Path:
    """A copy of the fixture repository (apps with one example of every finding)."""
    root = tmp_path / "repo"
    shutil.copytree(TESTDATA / "repo", root)
    return root
