"""`gitmoor install`: what a cluster needs before it holds Applications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.cli._common import State, out, run

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient


def install() -> None:
    """Install the Application and AppProject CRDs, create the Applications' namespace
    and the `default` project (everything permitted, as Argo CD's default; an existing
    one is left as it is)."""
    from gitmoor.engine import store

    async def go(kube: KubeClient) -> bool:
        return await store.install(kube, State.namespace)

    created = run(go)
    out.print(
        "installed: CustomResourceDefinitions applications.gitmoor.io and "
        f"appprojects.gitmoor.io, namespace {State.namespace}, project default "
        + ("(created)" if created else "(kept as it is)")
    )
