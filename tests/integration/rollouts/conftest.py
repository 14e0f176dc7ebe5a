"""Fixtures for the Rollout controller's integration tests."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from support.prometheus import LivePrometheus, running_prometheus
from support.rollouts import ensure_rollout_crds
from support.toolcache import prometheus_binary

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gitmoor.kube import KubeClient


@pytest.fixture(scope="session")
async def rollout_crds(kube: KubeClient) -> None:
    """gitmoor's Argo Rollouts CRDs, installed if absent; cluster-wide and shared
    with other tests, so never removed (Argo Rollouts' own CRDs fail the run)."""
    await ensure_rollout_crds(kube)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePrometheus]:
    """A real Prometheus server (testenv/build.sh builds it from its Go module)
    scraping a loopback endpoint whose success ratio the test sets; one per test
    module, so each test sets the ratio it needs first. Its absence fails the run
    on CI and skips the test locally, as for helm."""
    binary = prometheus_binary()
    if binary is None or not binary.is_file():
        message = "prometheus not found (set GITMOOR_PROMETHEUS or run testenv/build.sh prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with running_prometheus(binary, tmp_path_factory.mktemp("prometheus")) as live:
        yield live
