"""A request lost with its connection: sent again only when the server cannot have acted.

kube-apiserver closes an HTTP/2 connection idle for 90 s; a request written in
that instant fails in the transport. The failure is injected here with a request
hook that raises the transport error httpx would raise, before the request
leaves, so each case is exact; the request then goes to the real API server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from gitmoor.kube import ApiUnavailableError, KubeClient, load_kubeconfig
from gitmoor.model import ObjectRef

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from gitmoor.testenv import ControlPlane


def _cm(namespace: str, name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"},
    }


def _fail_first(kc: KubeClient, error: type[httpx.TransportError]) -> list[str]:
    """Make the first request for an object (discovery's are not counted) fail
    with ``error``; returns the object requests tried."""
    tried: list[str] = []

    async def hook(request: httpx.Request) -> None:
        if "/namespaces/" not in request.url.path:
            return
        tried.append(request.method)
        if len(tried) == 1:
            raise error("connection lost", request=request)

    hooks: list[Callable[[httpx.Request], Coroutine[None, None, None]]] = [hook]
    kc._http.event_hooks["request"] = hooks
    return tried


async def test_a_delete_that_could_not_be_written_is_sent_again_and_done(
    control_plane: ControlPlane, kube: KubeClient, namespace: str
) -> None:
    await kube.create(_cm(namespace, "doomed"))
    ref = ObjectRef("", "v1", "ConfigMap", namespace, "doomed")
    async with KubeClient(load_kubeconfig(control_plane.kubeconfig)) as kc:
        tried = _fail_first(kc, httpx.WriteError)
        await kc.delete(ref)
    assert tried == ["DELETE", "DELETE"]
    assert await kube.get(ref) is None


async def test_a_create_whose_answer_was_lost_is_not_sent_twice(
    control_plane: ControlPlane, namespace: str
) -> None:
    # The server may have created it: sending again could act twice, so the
    # caller is told instead (and its own retry reads the state first).
    async with KubeClient(load_kubeconfig(control_plane.kubeconfig)) as kc:
        tried = _fail_first(kc, httpx.ReadError)
        with pytest.raises(ApiUnavailableError, match="cannot reach the API server"):
            await kc.create(_cm(namespace, "once"))
    assert tried == ["POST"]


async def test_a_read_whose_answer_was_lost_is_read_again(
    control_plane: ControlPlane, kube: KubeClient, namespace: str
) -> None:
    await kube.create(_cm(namespace, "seen"))
    ref = ObjectRef("", "v1", "ConfigMap", namespace, "seen")
    async with KubeClient(load_kubeconfig(control_plane.kubeconfig)) as kc:
        tried = _fail_first(kc, httpx.RemoteProtocolError)
        got = await kc.get(ref)
    assert got is not None and got["data"] == {"k": "v"}
    assert tried == ["GET", "GET"]
