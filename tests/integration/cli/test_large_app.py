"""An app of 10,000 objects: its per-object detail lives in inventory objects, the
Application stays small, and every object is still listed and pruned."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from gitmoor.engine.inventory import OF_LABEL, owner_label
from gitmoor.engine.operation import status_of
from gitmoor.engine.sync import Phase, SyncOptions
from gitmoor.kube import wait_for
from support.apps import dump

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.cli import Gitmoor

N = 10_000


def _cms(n: int, value: str) -> str:
    return dump(
        *(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{i:05}"},
                "data": {"value": value},
            }
            for i in range(n)
        )
    )


async def _inventory_objects(kube: KubeClient, namespace: str, app: str) -> int:
    res = await kube.resource("", "v1", "ConfigMap")
    listed = await kube.list(res, namespace, label_selector=f"{OF_LABEL}={owner_label(app)}")
    return len(listed.items)


async def test_an_app_of_ten_thousand_objects(
    env: AppEnv, kube: KubeClient, gitmoor: Gitmoor
) -> None:
    env.repo.commit({"all.yaml": _cms(N, "one")})
    await env.create("huge")
    result = await env.sync("huge", SyncOptions(timeout=600))
    assert result.phase is Phase.SUCCEEDED, result.message
    assert result.message == f"successfully synced: {N} object(s) changed"

    raw = await kube.get(env.app_ref("huge"))
    assert raw is not None
    size = len(json.dumps(raw, separators=(",", ":")))
    assert size < 64 * 1024, f"the Application is {size} bytes"
    st = status_of(await env.app("huge"))
    assert (st.sync_status, st.total) == ("Synced", N)
    assert st.operation_state is not None and st.operation_state.sync_result is not None
    assert st.operation_state.sync_result.total == N
    assert await _inventory_objects(kube, env.apps_namespace, "huge") >= 1

    listed = gitmoor("app", "get", "huge", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    resources = json.loads(listed.stdout)["status"]["resources"]
    assert len(resources) == N
    assert {r["name"] for r in resources} == {f"cm-{i:05}" for i in range(N)}

    # Git drops half: the inventory is the prune set.
    env.repo.commit({"all.yaml": _cms(N // 2, "one")})
    result = await env.sync("huge", SyncOptions(prune=True, timeout=600))
    assert result.phase is Phase.SUCCEEDED, result.message
    assert sum(1 for r in result.resources if r.action.value == "pruned") == N // 2
    assert status_of(await env.app("huge")).total == N // 2

    await env.engine.delete(await env.app("huge"), cascade=False)
    env.created.remove("huge")

    async def inventory_gone() -> bool:
        return await _inventory_objects(kube, env.apps_namespace, "huge") == 0

    await wait_for(inventory_gone, within=60, what="the inventory objects deleted with the app")
