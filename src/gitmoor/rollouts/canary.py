"""The basic canary (no traffic router), one reconcile at a time (upstream's
rollout/canary.go with utils/replicaset/canary.go).

The weight of the current step (the last ``setWeight`` at or before
``status.currentStepIndex``; 100 once every step is done, 0 when aborted) is
turned into replica counts for the canary and stable ReplicaSets by
:func:`~gitmoor.rollouts.replicasets.basic_canary_counts`, within maxSurge and
maxUnavailable. A step completes when:

- ``setWeight``: both ReplicaSets are at the counts of that weight and available;
- ``pause: {duration}``: its deadline passed (pauseCondition ``CanaryPauseStep``
  with its startTime; the controller wakes at the deadline);
- ``pause: {}``: a promote cleared the pause conditions;
- ``analysis``: its AnalysisRun (``<rollout>-<hash>-<revision>-<step>``) is
  Successful; Failed or Error aborts, Inconclusive pauses.

Background analysis (``spec.strategy.canary.analysis``) runs from its
``startingStep`` until the update is promoted; a failure aborts. An abort
returns every replica to the stable ReplicaSet (weight 0) and points both
Services at it; ``promoteFull`` skips the remaining steps. Once all steps are
done and the canary is at full size, it becomes ``stableRS``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from gitmoor.rollouts import replicasets as rsu
from gitmoor.rollouts.context import (
    PAUSE_CANARY_STEP,
    PAUSE_INCONCLUSIVE,
    RolloutContext,
    analysis_failure_message,
    failed,
    run_phase,
)
from gitmoor.rollouts.spec import Canary, CanaryStep

if TYPE_CHECKING:
    from gitmoor.model import JSONDict


def current_weight(steps: tuple[CanaryStep, ...], index: int, *, aborted: bool) -> int:
    """Upstream's GetCurrentSetWeight: 0 when aborted, 100 past the last step,
    else the last setWeight at or before ``index`` (0 if none)."""
    if aborted:
        return 0
    if index >= len(steps):
        return 100
    for step in reversed(steps[: index + 1]):
        if step.set_weight is not None:
            return step.set_weight
    return 0


def at_counts(new: JSONDict | None, stable: JSONDict | None, want: tuple[int, int]) -> bool:
    """Both ReplicaSets scaled to ``want`` and that many available
    (upstream's AtDesiredReplicaCountsForCanary)."""
    n, s = want
    ok_new = rsu.rs_replicas(new) == n and rsu.rs_available(new) >= n
    ok_stable = stable is None or (rsu.rs_replicas(stable) == s and rsu.rs_available(stable) >= s)
    return ok_new and ok_stable


async def reconcile_canary(ctx: RolloutContext) -> None:
    canary = ctx.rollout.strategy
    assert isinstance(canary, Canary)
    ro, st = ctx.rollout, ctx.status
    cs: dict[str, object] = st.setdefault("canary", {})
    steps = canary.steps
    first = not ctx.stable_hash or (ctx.stable_rs is None and not ctx.promoted)
    if first or ctx.promoted:
        if ctx.aborted:
            st["abort"] = False
            st.pop("abortedAt", None)
        new = await ctx.ensure_new_rs(ro.replicas)
        await ctx.scale(new, ro.replicas)
        await _point_services(ctx, canary, ctx.new_hash, ctx.new_hash)
        st["currentStepIndex"] = len(steps)
        if rsu.rs_available(ctx.new_rs) >= ro.replicas:
            if first:
                st["stableRS"] = ctx.new_hash
                ctx.stable_rs = ctx.new_rs
            for rs in ctx.others(ctx.new_rs):
                await ctx.scale(rs, 0)
        ctx.clear_pause()
        st["promoteFull"] = False
        await _finish(ctx, canary)
        return

    index = int(st.get("currentStepIndex") or 0)
    if ctx.aborted:
        ctx.note_abort()
        index = int(st.get("currentStepIndex") or 0)
    full = bool(st.get("promoteFull"))
    weight = 100 if full else current_weight(steps, index, aborted=ctx.aborted)
    surge, unavailable = rsu.fenceposts(canary, ro.replicas)
    older = ctx.others(ctx.new_rs, ctx.stable_rs)
    new = ctx.new_rs if ctx.new_rs is not None else await ctx.ensure_new_rs(0)
    counts = rsu.basic_canary_counts(
        replicas=ro.replicas,
        weight=weight,
        max_surge=surge,
        max_unavailable=unavailable,
        new=rsu.RSCount.of(new),
        stable=rsu.RSCount.of(ctx.stable_rs),
        older_replicas=sum(rsu.rs_replicas(rs) for rs in older),
    )
    for rs in older:
        await ctx.scale(rs, 0)
    await ctx.scale(ctx.new_rs, counts[0])
    await ctx.scale(ctx.stable_rs, counts[1])

    if ctx.aborted:
        await _point_services(ctx, canary, ctx.stable_hash, ctx.stable_hash)
        for key in ("currentStepAnalysisRunStatus", "currentBackgroundAnalysisRunStatus"):
            ref = cs.get(key)
            if isinstance(ref, dict) and ref.get("name"):
                await ctx.terminate(str(ref["name"]))
        await _finish(ctx, canary)
        return

    await _point_services(ctx, canary, ctx.new_hash, ctx.stable_hash)
    await _background_analysis(ctx, canary, index)
    if ctx.aborted or ro.paused:
        if ctx.aborted:
            ctx.note_abort()
        await _finish(ctx, canary)
        return

    want = rsu.weighted_counts(ro.replicas, weight, surge)
    if full or index >= len(steps):
        if (
            at_counts(ctx.new_rs, None, (ro.replicas, 0))
            and rsu.rs_replicas(ctx.new_rs) == ro.replicas
        ):
            # Every step done and the canary at full size: it is the stable now.
            st["stableRS"] = ctx.new_hash
            st["promoteFull"] = False
            st["currentStepIndex"] = len(steps)
            ctx.clear_pause()
            await _stop_background(ctx, canary)
            ctx.stable_rs = ctx.new_rs
            await _point_services(ctx, canary, ctx.new_hash, ctx.new_hash)
            for rs in ctx.others(ctx.new_rs):
                await ctx.scale(rs, 0)
        await _finish(ctx, canary)
        return

    step = steps[index]
    done = False
    if step.set_weight is not None:
        done = at_counts(ctx.new_rs, ctx.stable_rs, want)
    elif step.pause:
        done = _pause_step(ctx, step)
    elif step.analysis is not None:
        run = await ctx.analysis(
            step.analysis,
            ctx.run_name(str(index)),
            "Step",
            cs,
            "currentStepAnalysisRunStatus",
        )
        phase = run_phase(run)
        if failed(phase):
            ctx.abort(analysis_failure_message(run))
            ctx.note_abort()
        elif phase == "Inconclusive":
            if ctx.resumed:
                done = True
            else:
                ctx.add_pause(PAUSE_INCONCLUSIVE)
        done = done or phase == "Successful"
    else:
        done = True  # a step kind this controller does not run: InvalidSpec says so
    if done and not ctx.aborted:
        st["currentStepIndex"] = index + 1
        cs.pop("currentStepAnalysisRunStatus", None)
        ctx.clear_pause()
        # The next step acts on the next reconcile, which the status write triggers.
        ctx.wake(ctx.now)
    await _finish(ctx, canary)


def _pause_step(ctx: RolloutContext, step: CanaryStep) -> bool:
    if ctx.resumed:
        return True
    started = ctx.pause_started(PAUSE_CANARY_STEP)
    if started is None:
        ctx.add_pause(PAUSE_CANARY_STEP)
        started = ctx.now
    if step.pause_seconds is None:
        return False
    due = started + timedelta(seconds=step.pause_seconds)
    if due <= ctx.now:
        return True
    ctx.wake(due)
    return False


async def _background_analysis(ctx: RolloutContext, canary: Canary, index: int) -> None:
    ref = canary.analysis
    if ref is None or ref.empty:
        return
    if ref.starting_step is not None and index < ref.starting_step:
        return
    run = await ctx.analysis(
        ref,
        ctx.run_name(),
        "Background",
        ctx.status["canary"],
        "currentBackgroundAnalysisRunStatus",
        background=True,
    )
    if failed(run_phase(run)):
        ctx.abort(analysis_failure_message(run))


async def _stop_background(ctx: RolloutContext, canary: Canary) -> None:
    ref = ctx.status["canary"].get("currentBackgroundAnalysisRunStatus")
    if isinstance(ref, dict) and ref.get("name"):
        await ctx.terminate(str(ref["name"]))


async def _point_services(
    ctx: RolloutContext, canary: Canary, canary_hash: str, stable_hash: str
) -> None:
    await ctx.point_service(canary.canary_service, canary_hash)
    await ctx.point_service(canary.stable_service, stable_hash)


async def _finish(ctx: RolloutContext, canary: Canary) -> None:
    await ctx.cleanup_history([ctx.new_rs, ctx.stable_rs])
