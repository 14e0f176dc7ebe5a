"""Rollback to an earlier history entry, and deleting an app with and without cascade."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import UserInputError
from gitmoor.model.application import TRACKING_ANNOTATION, Automated
from support.apps import actions, annotations_of, configmap, dump, gone

if TYPE_CHECKING:
    from support.apps import AppEnv


async def test_rollback_restores_the_first_revision_and_stops_automation(env: AppEnv) -> None:
    first = env.repo.commit({"cm.yaml": dump(configmap("settings", {"version": "1"}))})
    await env.create("rolling", automated=Automated(prune=True, self_heal=True))
    assert (await env.sync("rolling")).ok
    second = env.repo.commit(
        {
            "cm.yaml": dump(configmap("settings", {"version": "2"})),
            "extra.yaml": dump(configmap("extra")),
        }
    )
    assert (await env.sync("rolling")).ok
    app = await env.app("rolling")
    assert [(h["id"], h["revision"]) for h in app.status["history"]] == [(1, first), (2, second)]
    assert ((await env.get(env.cm("settings"))) or {})["data"] == {"version": "2"}

    result = await env.engine.rollback(app, 1, initiated_by="tests")

    assert result.ok, result.message
    assert result.revision == first
    assert ((await env.get(env.cm("settings"))) or {})["data"] == {"version": "1"}
    app = await env.app("rolling")
    assert app.spec.sync_policy.automated is None
    assert "automated" not in (app.raw["spec"].get("syncPolicy") or {})
    assert [(h["id"], h["revision"]) for h in app.status["history"]] == [
        (1, first),
        (2, second),
        (3, first),
    ]
    # Deployed is the first revision; the target (HEAD) is the second, so the app
    # is OutOfSync, and `extra` (not in the first revision) waits to be pruned:
    # automation was on with prune, but a rollback does not prune unless asked.
    assert app.status["sync"] == {"status": "OutOfSync", "revision": second}
    assert actions(result) == {
        "ConfigMap/settings": "configured",
        "ConfigMap/extra": "prune-skipped",
    }
    assert await env.get(env.cm("extra")) is not None


async def test_rollback_to_an_unknown_entry_is_refused(env: AppEnv) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("norollback")
    assert (await env.sync("norollback")).ok

    with pytest.raises(UserInputError, match=r"no history entry 7 \(has \[1\]\)"):
        await env.engine.rollback(await env.app("norollback"), 7)


async def test_delete_with_cascade_removes_only_what_the_app_owns(env: AppEnv) -> None:
    env.repo.commit(
        {
            "mine/a.yaml": dump(configmap("a")),
            "mine/b.yaml": dump(configmap("b")),
            "mine/moved.yaml": dump(configmap("moved")),
            "mine/replaced.yaml": dump(configmap("replaced")),
            "other/o.yaml": dump(configmap("other-cm")),
        }
    )
    await env.create("doomed", path="mine")
    assert (await env.sync("doomed")).ok
    # Since that sync, and before any refresh of "doomed" (so its inventory still
    # lists both): another app took over "moved", and "replaced" was deleted and
    # made again by hand, without a tracking id.
    env.repo.commit({"other/moved.yaml": dump(configmap("moved"))}, remove=("mine/moved.yaml",))
    await env.create("neighbour", path="other")
    assert (await env.sync("neighbour")).ok
    await env.kube.delete(env.cm("replaced"))
    await wait_for(lambda: gone(env.kube, env.cm("replaced")), within=30, what="replaced gone")
    await env.kube.create(configmap("replaced", {"by": "hand"}, namespace=env.namespace))
    await env.kube.create(configmap("foreign", namespace=env.namespace))
    doomed = await env.app("doomed")
    assert {r["name"] for r in doomed.status["resources"]} == {"a", "b", "moved", "replaced"}

    deleted = (await env.engine.delete(doomed, cascade=True)).deleted

    assert sorted(ref.name for ref in deleted) == ["a", "b"]
    for name in ("a", "b"):
        await wait_for(lambda n=name: gone(env.kube, env.cm(n)), within=30, what=f"{name} gone")
    for name in ("moved", "replaced", "foreign", "other-cm"):
        live = await env.get(env.cm(name))
        assert live is not None, name
        assert live["metadata"].get("deletionTimestamp") is None, name
    assert await env.get(env.app_ref("doomed")) is None
    assert [a.name for a in await store.list_apps(env.kube, env.apps_namespace)] == ["neighbour"]


async def test_delete_without_cascade_keeps_the_objects(env: AppEnv) -> None:
    env.repo.commit({"a.yaml": dump(configmap("a"))})
    await env.create("orphaning")
    assert (await env.sync("orphaning")).ok
    app = await env.app("orphaning")

    result = await env.engine.delete(app, cascade=False)

    assert (result.deleted, result.left, result.note) == ((), (), "")
    assert await env.get(env.app_ref("orphaning")) is None
    kept = await env.get(env.cm("a"))
    assert kept is not None
    assert kept.get("metadata", {}).get("deletionTimestamp") is None
    assert annotations_of(kept)[TRACKING_ANNOTATION].startswith(app.tracking_prefix)
