"""One Application with an invalid spec does not hide the others from a listing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitmoor.engine import store

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient


def _app(name: str, namespace: str, policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example.org/org/repo.git", "path": "."},
            "destination": {"namespace": "somewhere"},
            "syncPolicy": policy,
        },
    }


async def test_an_app_under_the_refresh_floor_does_not_hide_the_others(
    kube: KubeClient, apps_namespace: str
) -> None:
    # Written straight to the cluster, as kubectl apply would: the CRD schema
    # cannot express the floor, so only the parser refuses it.
    await kube.create(_app("fine", apps_namespace, {}))
    await kube.create(_app("too-eager", apps_namespace, {"refreshInterval": "500ms"}))
    listed = await store.list_apps(kube, apps_namespace)
    assert [a.name for a in listed] == ["fine"]
