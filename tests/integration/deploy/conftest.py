"""Fixtures for the tests of ``deploy/``: what a test creates outside its namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.model import ObjectRef

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient


@pytest.fixture
async def cluster_scoped(kube: KubeClient) -> AsyncIterator[list[ObjectRef]]:
    """Cluster-scoped objects a test created (append their refs); deleted afterwards."""
    created: list[ObjectRef] = []
    yield created
    for ref in created:
        await kube.delete(ref)


@pytest.fixture
async def extra_namespaces(kube: KubeClient) -> AsyncIterator[list[str]]:
    """Namespaces a test created besides the ``namespace`` fixture's; deleted afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        await kube.delete(ObjectRef("", "v1", "Namespace", "", name))
