"""A plain `rollback` (without --pin) of a pinned app removes the pin: the app is
the user's again, and its status compares with its target, not the old pin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.model.application import Automated
from support.apps import configmap, dump

if TYPE_CHECKING:
    from support.apps import AppEnv


async def test_plain_rollback_of_a_pinned_app_clears_the_pin(env: AppEnv) -> None:
    first = env.repo.commit({"cm.yaml": dump(configmap("settings", {"version": "1"}))})
    await env.create("held", automated=Automated(prune=True))
    assert (await env.sync("held")).ok
    second = env.repo.commit({"cm.yaml": dump(configmap("settings", {"version": "2"}))})
    assert (await env.sync("held")).ok
    third = env.repo.commit({"cm.yaml": dump(configmap("settings", {"version": "3"}))})
    assert (await env.sync("held")).ok

    pinned = await env.engine.rollback(await env.app("held"), 1, initiated_by="tests", pin=True)
    assert pinned.ok, pinned.message
    app = await env.app("held")
    assert app.spec.sync_policy.pin is not None
    assert app.spec.sync_policy.pin.revision == first

    result = await env.engine.rollback(await env.app("held"), 2, initiated_by="tests")

    assert result.ok, result.message
    assert result.revision == second
    app = await env.app("held")
    assert app.spec.sync_policy.pin is None
    assert app.spec.sync_policy.automated is None
    assert ((await env.get(env.cm("settings"))) or {})["data"] == {"version": "2"}
    # Compared with the target (main, at the third commit), not the old pin.
    app, _ = await env.refresh("held")
    assert app.status["sync"] == {"status": "OutOfSync", "revision": third}
