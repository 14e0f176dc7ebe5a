"""The sync as a step function: gates that end, resuming where it stood, terminate.

Each test drives ``Engine.step`` itself, so "the middle" of a sync is a state the
operation reports (its ``progress``), not a moment a poll hopes to catch.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gitmoor.engine import Engine
from gitmoor.engine.operation import status_of
from gitmoor.engine.sync import Phase, SyncOptions
from gitmoor.model import ObjectRef
from gitmoor.model.status import SyncOperation
from support.apps import (
    HOOK,
    SYNC_WAVE,
    configmap,
    dump,
    job,
    service,
    slow_deployment,
)

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.engine.sync import StepOutcome
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv

JSON = dict[str, Any]


def in_wave(obj: JSON, wave: str) -> JSON:
    obj["metadata"].setdefault("annotations", {})[SYNC_WAVE] = wave
    return obj


def load_balancer(name: str) -> JSON:
    s = service(name)
    s["spec"]["type"] = "LoadBalancer"
    return s


async def step_until(
    engine: Engine, env: AppEnv, name: str, done: Any, within: float = 60
) -> StepOutcome:
    """Step the app's operation (as the controller does, one step per pass) until
    ``done(outcome)``; fails when the operation ends first or time runs out."""
    deadline = time.monotonic() + within
    while True:
        outcome = await engine.step(await env.app(name))
        assert outcome is not None, "no operation runs"
        if done(outcome):
            return outcome
        assert outcome.result is None, f"ended before the state looked for: {outcome.message}"
        assert time.monotonic() < deadline, f"still {outcome.message}"
        await _pause()


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.3)


async def rv(kube: KubeClient, ref: ObjectRef) -> str:
    live = await kube.get(ref)
    assert live is not None, ref
    return str(live["metadata"]["resourceVersion"])


async def test_a_final_load_balancer_without_address_ends_succeeded_and_turns_healthy(
    env: AppEnv, kube: KubeClient
) -> None:
    env.repo.commit({"app.yaml": dump(configmap("settings"), load_balancer("front"))})
    await env.create("lb")
    result = await env.sync("lb", SyncOptions(timeout=600))
    # No controller will ever give it an address here: the last wave does not wait.
    assert result.phase is Phase.SUCCEEDED, result.message
    app = await env.app("lb")
    st = status_of(app)
    assert (st.sync_status, st.health_status) == ("Synced", "Progressing")
    assert st.health_message == "Service front: Waiting for the load balancer to get an address"
    assert len(st.history) == 1

    ref = ObjectRef("", "v1", "Service", env.namespace, "front")
    await kube.merge_patch(
        ref, {"status": {"loadBalancer": {"ingress": [{"ip": "10.9.9.9"}]}}}, subresource="status"
    )
    app, _ = await env.refresh("lb")
    st = status_of(app)
    assert (st.sync_status, st.health_status) == ("Synced", "Healthy")
    assert len(st.history) == 1, "healthy without a second sync"


async def test_a_gate_names_what_it_waits_for_and_status_is_synced_meanwhile(
    env: AppEnv, engine: Engine
) -> None:
    env.repo.commit(
        {
            "a.yaml": dump(slow_deployment("api", 20, wave="0")),
            "b.yaml": dump(in_wave(configmap("after"), "1")),
        }
    )
    await env.create("gated")
    await engine.start_sync(await env.app("gated"), SyncOperation(initiated_by="tests"))
    outcome = await step_until(engine, env, "gated", lambda o: bool(o.waiting))
    assert outcome.phase is Phase.RUNNING
    assert [w.ref.name for w in outcome.waiting] == ["api"]
    assert outcome.message.startswith("waiting for wave 0: Deployment api:")
    app = await env.app("gated")
    state = status_of(app).operation_state
    assert state is not None and state.progress is not None
    assert (state.progress.stage, state.progress.wave, state.progress.part) == ("wave", 0, "gate")
    assert state.message == outcome.message
    assert await env.get(env.cm("after")) is None, "wave 1 waits for wave 0's health"
    # The status follows the live state while the operation waits.
    app, _ = await env.refresh("gated")
    resources = {r["name"]: r["status"] for r in app.status["resources"]}
    assert resources == {"api": "Synced", "after": "OutOfSync"}


async def test_a_gated_object_that_turns_degraded_fails_at_once(env: AppEnv) -> None:
    env.repo.commit(
        {
            # A Job that fails turns Degraded at once (a crash-looping Deployment
            # only at its progressDeadlineSeconds, as in Argo CD).
            "a.yaml": dump(job("broken", image="busybox:fail", annotations={SYNC_WAVE: "0"})),
            "b.yaml": dump(in_wave(configmap("after"), "1")),
        }
    )
    await env.create("degraded")
    started = time.monotonic()
    result = await env.sync("degraded", SyncOptions(timeout=600))
    assert result.phase is Phase.FAILED
    assert "is Degraded" in result.message and "broken" in result.message
    assert time.monotonic() - started < 120, "failed on Degraded, not at the timeout"
    assert await env.get(env.cm("after")) is None


async def test_terminate_stops_a_running_operation_between_steps(
    env: AppEnv, engine: Engine
) -> None:
    env.repo.commit(
        {
            "a.yaml": dump(slow_deployment("api", 60, wave="0")),
            "b.yaml": dump(in_wave(configmap("after"), "1")),
        }
    )
    await env.create("stopme")
    await engine.start_sync(await env.app("stopme"), SyncOperation(initiated_by="tests"))
    await step_until(engine, env, "stopme", lambda o: bool(o.waiting))
    assert await engine.terminate(await env.app("stopme"))
    outcome = await engine.step(await env.app("stopme"))
    assert outcome is not None and outcome.result is not None
    assert outcome.phase is Phase.FAILED and outcome.message == "operation terminated"
    assert await env.get(env.cm("after")) is None
    assert not await engine.terminate(await env.app("stopme")), "nothing runs any more"


async def test_another_process_resumes_where_the_operation_stood(
    env: AppEnv, engine: Engine, kube: KubeClient, git_cache: Path
) -> None:
    """A PreSync hook and three waves; the first process stops taking steps in
    the middle of wave 1 (as a killed controller does). Another process finishes:
    the hook is not created again and waves 0 and 1 are not applied again."""
    env.repo.commit(
        {
            "pre.yaml": dump(job("pre", seconds=1, annotations={HOOK: "PreSync"})),
            "w0.yaml": dump(in_wave(configmap("zero"), "0")),
            "w1.yaml": dump(slow_deployment("one", 8, wave="1"), in_wave(configmap("one"), "1")),
            "w2.yaml": dump(in_wave(configmap("two"), "2")),
        }
    )
    await env.create("resume")
    await engine.start_sync(await env.app("resume"), SyncOperation(initiated_by="tests"))
    await step_until(
        engine,
        env,
        "resume",
        lambda o: o.progress.stage == "wave" and o.progress.wave == 1 and o.waiting,
    )
    hook = ObjectRef("batch", "v1", "Job", env.namespace, "pre")
    deploy = ObjectRef("apps", "v1", "Deployment", env.namespace, "one")
    hook_uid = (await kube.get(hook) or {})["metadata"]["uid"]
    before = {
        "zero": await rv(kube, env.cm("zero")),
        "one": await rv(kube, env.cm("one")),
    }
    assert await env.get(env.cm("two")) is None

    other = Engine(kube, git_cache_dir=git_cache, namespace=env.apps_namespace)
    other.identity = "another-process"
    outcome = await step_until(other, env, "resume", lambda o: o.result is not None, within=90)
    assert outcome.phase is Phase.SUCCEEDED, outcome.message
    assert (await kube.get(hook) or {})["metadata"]["uid"] == hook_uid, "hook not run again"
    assert {
        "zero": await rv(kube, env.cm("zero")),
        "one": await rv(kube, env.cm("one")),
    } == before, "waves 0 and 1 not applied again"
    assert await env.get(env.cm("two")) is not None
    assert await kube.get(deploy) is not None
    app = await env.app("resume")
    state = status_of(app).operation_state
    assert state is not None and state.phase is Phase.SUCCEEDED
    assert state.runner == "another-process"
    assert len(status_of(app).history) == 1


async def test_a_progress_no_step_wrote_does_not_skip_waves(
    env: AppEnv, engine: Engine, kube: KubeClient
) -> None:
    """Status is writable by more than gitmoor: a progress that points past the last
    wave (or names no stage a step writes) starts the waves over, never skips them."""
    env.repo.commit(
        {
            "a.yaml": dump(in_wave(configmap("zero"), "0")),
            "b.yaml": dump(in_wave(configmap("one"), "1")),
        }
    )
    await env.create("forged")
    await engine.start_sync(await env.app("forged"), SyncOperation(initiated_by="tests"))
    await kube.merge_patch(
        env.app_ref("forged"),
        {"status": {"operationState": {"progress": {"stage": "wave", "wave": 99}}}},
        subresource="status",
    )
    outcome = await step_until(engine, env, "forged", lambda o: o.result is not None)
    assert outcome.phase is Phase.SUCCEEDED, outcome.message
    assert await env.get(env.cm("zero")) is not None
    assert await env.get(env.cm("one")) is not None
