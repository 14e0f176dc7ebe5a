"""Fixtures of the controller tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.engine import store
from gitmoor.model import ObjectRef

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient


@pytest.fixture
async def apps_ns(kube: KubeClient, namespace: str) -> AsyncIterator[str]:
    """A namespace for Applications, installed as `gitmoor install` does (CRDs, the
    default project); its Applications and then the namespace deleted afterwards."""
    ns = f"{namespace}-apps"
    await store.install(kube, ns)
    yield ns
    for a in await store.list_apps(kube, ns):
        await kube.delete(store.app_ref(a.name, ns))
    await kube.delete(ObjectRef("", "v1", "Namespace", "", ns))
