"""`gitmoor app terminate-op NAME` end to end, as `argocd app terminate-op` is used:
a running operation waits at a health gate, another process asks it to stop, and
it ends at its next step without applying what came after the gate.

The operation is driven through the engine's steps (as the controller drives it),
so "the operation waits at the gate" is a state the operation reports, not a
moment a poll hopes to catch."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from gitmoor.engine.sync import Phase
from gitmoor.model.status import SyncOperation
from support.apps import SYNC_WAVE, configmap, deployment, dump

if TYPE_CHECKING:
    from gitmoor.engine.sync import StepOutcome
    from support.apps import AppEnv
    from support.cli import Gitmoor


def _slow(name: str, seconds: int) -> dict[str, Any]:
    """A wave-0 Deployment whose pod turns Ready only ``seconds`` after it starts
    (the local control plane honours the readinessProbe's initialDelaySeconds), so
    the operation waits at its gate for that long."""
    d = deployment(name)
    d["metadata"]["annotations"] = {SYNC_WAVE: "0"}
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/", "port": 80},
        "initialDelaySeconds": seconds,
    }
    return d


async def _step_until_waiting(env: AppEnv, name: str, within: float = 60) -> StepOutcome:
    deadline = time.monotonic() + within
    while True:
        outcome = await env.engine.step(await env.app(name))
        assert outcome is not None, "no operation runs"
        if outcome.waiting:
            return outcome
        assert outcome.result is None, f"ended before its gate: {outcome.message}"
        assert time.monotonic() < deadline, f"never reached the gate: {outcome.message}"
        await asyncio.sleep(0.3)


async def test_terminate_op_stops_an_operation_waiting_at_a_gate(
    gitmoor: Gitmoor, env: AppEnv
) -> None:
    after = configmap("after", annotations={SYNC_WAVE: "1"})
    env.repo.commit({"a.yaml": dump(_slow("api", 120)), "b.yaml": dump(after)})
    await env.create("stopme")
    await env.engine.start_sync(await env.app("stopme"), SyncOperation(initiated_by="tests"))
    await _step_until_waiting(env, "stopme")

    asked = gitmoor("app", "terminate-op", "stopme")

    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "operation of stopme asked to terminate"
    state = (await env.app("stopme")).status["operationState"]
    assert state["phase"] == "Terminating"
    outcome = await env.engine.step(await env.app("stopme"))
    assert outcome is not None and outcome.phase is Phase.FAILED, outcome
    assert await env.get(env.cm("after")) is None, "wave 1 was applied after terminate-op"

    again = gitmoor("app", "terminate-op", "stopme")
    assert again.returncode == 1
    assert "no operation is running for stopme" in again.stderr


async def test_terminate_op_stops_an_app_sync_running_in_another_process(
    gitmoor: Gitmoor, env: AppEnv
) -> None:
    """The user's case: `gitmoor app sync` hangs at a gate in one terminal, and
    `gitmoor app terminate-op` in another ends it."""
    after = configmap("after", annotations={SYNC_WAVE: "1"})
    env.repo.commit({"a.yaml": dump(_slow("api", 120)), "b.yaml": dump(after)})
    await env.create("stuck")
    sync = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "gitmoor.cli.main", "--kubeconfig", str(gitmoor.kubeconfig)),
        *("--apps-namespace", gitmoor.apps_namespace, "app", "sync", "stuck"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=gitmoor.env,
    )
    try:
        deadline = time.monotonic() + 60
        # The gate is reported in the operation's progress: no moment to catch.
        while True:
            state = (await env.app("stuck")).status.get("operationState") or {}
            if (state.get("progress") or {}).get("waiting"):
                break
            assert sync.returncode is None, "app sync ended before its gate"
            assert time.monotonic() < deadline, f"never reached the gate: {state}"
            await asyncio.sleep(0.3)

        asked = gitmoor("app", "terminate-op", "stuck")
        assert asked.returncode == 0, asked.stderr

        # Well inside the 120 s the gate would otherwise hold the sync.
        out, err = await asyncio.wait_for(sync.communicate(), timeout=60)
    finally:
        if sync.returncode is None:
            sync.kill()
            await sync.communicate()
    assert sync.returncode == 1, (out + err).decode()
    assert "operation terminated" in err.decode()
    assert await env.get(env.cm("after")) is None, "wave 1 was applied after terminate-op"


async def test_terminate_op_without_an_operation_says_so(gitmoor: Gitmoor, env: AppEnv) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("idle")

    idle = gitmoor("app", "terminate-op", "idle")
    missing = gitmoor("app", "terminate-op", "no-such-app")

    assert idle.returncode == 1, idle.stdout
    assert "no operation is running for idle" in idle.stderr
    assert missing.returncode == 2
    assert "no-such-app" in missing.stderr and "not found" in missing.stderr
