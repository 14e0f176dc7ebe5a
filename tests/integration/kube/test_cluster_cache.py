"""ClusterCache against the real API server: what a consumer that mirrors it relies on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.kube import wait_for
from gitmoor.kube.cache import ClusterCache, Key
from gitmoor.model import JSONDict, ObjectRef

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

LABEL = "gitmoor.io/test-cache"


def _cm(namespace: str, name: str) -> JSONDict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: "yes"}},
        "data": {"k": "v"},
    }


async def test_on_synced_sees_the_first_list_and_watch_events_go_to_on_change(
    kube: KubeClient, namespace: str
) -> None:
    for name in ("a", "b"):
        await kube.create(_cm(namespace, name))
    synced: list[tuple[tuple[str, str], list[str]]] = []
    changes: list[tuple[str, bool]] = []
    cache: ClusterCache

    def on_synced(group_kind: tuple[str, str]) -> None:
        # What a mirror reconciles with: the list is complete when this is called.
        names = sorted(o["metadata"]["name"] for o in cache.items(*group_kind))
        synced.append((group_kind, names))

    def on_change(key: Key, obj: JSONDict, deleted: bool) -> None:
        changes.append((key[3], deleted))

    cache = ClusterCache(
        kube, label_selector=LABEL, namespace=namespace, on_change=on_change, on_synced=on_synced
    )
    try:
        assert await cache.ensure(ObjectRef("", "v1", "ConfigMap", namespace, "-"))
        assert synced == [(("", "ConfigMap"), ["a", "b"])]
        # The first list is told through on_synced alone, never object by object.
        assert changes == []

        await kube.create(_cm(namespace, "c"))
        await kube.delete(ObjectRef("", "v1", "ConfigMap", namespace, "a"))

        async def both_seen() -> bool:
            return ("c", False) in changes and ("a", True) in changes

        await wait_for(both_seen, within=30, what="the watch's ADDED and DELETED events")
        assert len(synced) == 1, "a watch event is not a relist"
    finally:
        await cache.aclose()
