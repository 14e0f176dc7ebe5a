"""Fixtures for multi-cluster tests: a second control plane beside the session's.

The second one starts once for this directory's tests (about 5 s) and is
stopped at the end of the session; the session's ``control_plane`` is the home
cluster, where gitmoor keeps its Applications and the cluster Secrets. Each
test registers clusters in its own namespace (the ``namespace`` fixture), so no
test sees another's registrations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.kube import KubeClient, load_kubeconfig
from gitmoor.testenv import ControlPlane

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


@pytest.fixture(scope="session")
def second_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(home=tmp_path_factory.mktemp("clusters") / "second", name="second")
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
async def second_admin(second_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    """A client of the second cluster of the test's own, to check what gitmoor did there."""
    async with KubeClient(load_kubeconfig(second_plane.kubeconfig)) as kc:
        yield kc
