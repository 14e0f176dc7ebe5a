"""Fixtures for tests against the real local control plane.

One control plane serves the whole test run: the one `make cluster` left
running (``.local/cluster``) when it is healthy, otherwise a fresh one that
is stopped at the end. Each test gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gitmoor.kube import KubeClient, load_kubeconfig
from gitmoor.testenv import ControlPlane

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    shared = ControlPlane.attach(REPO_ROOT / ".local" / "cluster")
    if shared is not None and not os.environ.get("GITMOOR_FRESH_CLUSTER"):
        yield shared
        return
    home = Path(tempfile.mkdtemp(prefix="gitmoor-test-cluster-"))
    cp = ControlPlane(home=home / "cp", nodes=2, name="gitmoor-test")
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()
        home.rmdir()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    async with KubeClient(load_kubeconfig(control_plane.kubeconfig)) as kc:
        yield kc


def _ns_name(nodeid: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", nodeid.split("::")[-1].lower()).strip("-")[:40]
    return f"t-{base}-{secrets.token_hex(3)}".replace("--", "-")


async def _new_namespace(kube: KubeClient, name: str) -> str:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"gitmoor.io/test": "true"}},
        }
    )
    return name


@pytest.fixture
async def namespace(kube: KubeClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A namespace of this test's own, deleted (not waited for) afterwards."""
    from gitmoor.model import ObjectRef

    name = await _new_namespace(kube, _ns_name(request.node.nodeid))
    yield name
    await kube.delete(ObjectRef("", "v1", "Namespace", "", name))
