"""The blueGreen strategy, one reconcile at a time (upstream's rollout/bluegreen.go).

The sequence an update goes through, as Argo Rollouts runs it:

1. A new pod template gets a new ReplicaSet (the preview), scaled to
   ``previewReplicaCount`` (or ``replicas``); ``previewService`` selects it,
   ``activeService`` keeps selecting the stable ReplicaSet.
2. Once the preview is available: ``prePromotionAnalysis`` runs
   (AnalysisRun ``<rollout>-<hash>-<revision>-pre``) and, with
   ``autoPromotionEnabled: false``, the Rollout pauses (pauseCondition
   ``BlueGreenPause``, ``controllerPause``) until a promote clears the pause
   conditions; ``autoPromotionSeconds`` ends the pause by itself.
3. Promotion (pause over and pre-promotion analysis Successful, or
   ``promoteFull``): the preview is scaled to ``replicas`` first if it ran
   fewer (``scaleUpPreviewCheckPoint``), then ``activeService`` switches to it.
   ``postPromotionAnalysis`` then runs; ``stableRS`` becomes the new hash once
   it passes (at once without one).
4. The previous ReplicaSet is scaled down ``scaleDownDelaySeconds`` after the
   switch (the ``scale-down-deadline`` annotation).
5. An analysis that fails aborts: ``status.abort``, both Services back on the
   stable ReplicaSet, the preview scaled down after
   ``abortScaleDownDelaySeconds``; the phase is Degraded with a message naming
   the analysis. A retry (``abort: false``) starts the update over.

The first deploy (no stable ReplicaSet yet) goes straight to active, with no
analysis and no pause, as upstream.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from gitmoor.rollouts import replicasets as rsu
from gitmoor.rollouts.context import (
    PAUSE_BLUE_GREEN,
    PAUSE_INCONCLUSIVE,
    RolloutContext,
    analysis_failure_message,
    failed,
    run_phase,
    run_status,
)
from gitmoor.rollouts.spec import BlueGreen

if TYPE_CHECKING:
    from gitmoor.model import JSONDict


async def reconcile_blue_green(ctx: RolloutContext) -> None:
    bg = ctx.rollout.strategy
    assert isinstance(bg, BlueGreen)
    st = ctx.status
    bgs: dict[str, object] = st.setdefault("blueGreen", {})
    ro = ctx.rollout
    first = not ctx.stable_hash or (ctx.stable_rs is None and not ctx.promoted)

    if first or ctx.promoted:
        await _steady(ctx, bg, first=first)
        return

    stable = ctx.stable_rs
    assert stable is not None
    await ctx.scale(stable, ro.replicas)
    await ctx.cancel_scale_down(stable)

    if ctx.aborted:
        await _aborted(ctx, bg)
        return

    full = bool(st.get("promoteFull"))
    checkpoint = bool(bgs.get("scaleUpPreviewCheckPoint"))
    preview_count = (
        ro.replicas
        if bg.preview_replica_count is None or checkpoint or full
        else bg.preview_replica_count
    )
    new = await ctx.ensure_new_rs(preview_count)
    await ctx.scale(new, preview_count)
    await ctx.cancel_scale_down(new)
    await ctx.point_service(bg.preview_service, ctx.new_hash)
    if bg.preview_service:
        bgs["previewSelector"] = ctx.new_hash
    active_on_new = bgs.get("activeSelector") == ctx.new_hash
    if not active_on_new:
        await ctx.point_service(bg.active_service, ctx.stable_hash)
        bgs["activeSelector"] = ctx.stable_hash

    ready = rsu.rs_available(ctx.new_rs) >= preview_count
    promote = full
    if ready and not full and not active_on_new:
        promote = await _pre_promotion(ctx, bg)
    if ctx.aborted:
        await _aborted(ctx, bg)
        return
    if promote and not active_on_new and not ro.paused:
        if preview_count < ro.replicas or (not checkpoint and bg.preview_replica_count is not None):
            # Scale the preview to full size before it takes traffic (upstream's
            # scaleUpPreviewCheckPoint), then switch on a later reconcile.
            bgs["scaleUpPreviewCheckPoint"] = True
            await ctx.scale(ctx.new_rs, ro.replicas)
        elif rsu.rs_available(ctx.new_rs) >= ro.replicas:
            await ctx.point_service(bg.active_service, ctx.new_hash)
            bgs["activeSelector"] = ctx.new_hash
            active_on_new = True
            ctx.clear_pause()
    if active_on_new:
        await _post_promotion(ctx, bg)
    if ctx.aborted:
        await _aborted(ctx, bg)
        return
    await _scale_down_others(ctx, bg, keep=[ctx.new_rs, ctx.stable_rs])


async def _pre_promotion(ctx: RolloutContext, bg: BlueGreen) -> bool:
    """Run the pre-promotion analysis and the pause side by side; True once both
    allow promotion (upstream: completedPrePromotionAnalysis && !paused)."""
    st, bgs = ctx.status, ctx.status["blueGreen"]
    analysis_ok = True
    if bg.pre_promotion_analysis is not None and not bg.pre_promotion_analysis.empty:
        run = await ctx.analysis(
            bg.pre_promotion_analysis,
            ctx.run_name("pre"),
            "PrePromotion",
            bgs,
            "prePromotionAnalysisRunStatus",
        )
        phase = run_phase(run)
        if failed(phase):
            ctx.abort(analysis_failure_message(run))
            return False
        if phase == "Inconclusive" and not ctx.resumed:
            ctx.add_pause(PAUSE_INCONCLUSIVE)
            return False
        analysis_ok = phase == "Successful" or (phase == "Inconclusive" and ctx.resumed)
    if ctx.resumed:
        return analysis_ok
    needs_pause = not bg.auto_promotion_enabled or bg.auto_promotion_seconds > 0
    if needs_pause:
        started = ctx.pause_started(PAUSE_BLUE_GREEN)
        if started is None and not st.get("controllerPause"):
            ctx.add_pause(PAUSE_BLUE_GREEN)
            started = ctx.now
        if bg.auto_promotion_enabled and started is not None:
            # autoPromotionSeconds: the pause ends by itself at its deadline.
            due = started + timedelta(seconds=bg.auto_promotion_seconds)
            if due <= ctx.now:
                # Left as a promote leaves it (controllerPause without conditions),
                # so the next reconcile does not pause again.
                ctx.status.pop("pauseConditions", None)
                return analysis_ok
            ctx.wake(due)
        return False
    return analysis_ok


async def _post_promotion(ctx: RolloutContext, bg: BlueGreen) -> None:
    bgs = ctx.status["blueGreen"]
    if (
        bg.post_promotion_analysis is not None
        and not bg.post_promotion_analysis.empty
        and not ctx.status.get("promoteFull")
    ):
        run = await ctx.analysis(
            bg.post_promotion_analysis,
            ctx.run_name("post"),
            "PostPromotion",
            bgs,
            "postPromotionAnalysisRunStatus",
        )
        phase = run_phase(run)
        if failed(phase):
            ctx.abort(analysis_failure_message(run))
            return
        if phase != "Successful":
            return
    _mark_stable(ctx)


def _mark_stable(ctx: RolloutContext) -> None:
    st = ctx.status
    st["stableRS"] = ctx.new_hash
    st["promoteFull"] = False
    ctx.clear_pause()
    st["blueGreen"].pop("scaleUpPreviewCheckPoint", None)
    ctx.stable_rs = ctx.new_rs


async def _steady(ctx: RolloutContext, bg: BlueGreen, *, first: bool) -> None:
    """No update under way (or the first deploy): the current ReplicaSet is
    active and preview, at full size; the ones before it go after the delay."""
    ro, bgs = ctx.rollout, ctx.status["blueGreen"]
    if ctx.aborted:
        # An abort of a revision that is now the stable one (an undo): nothing to abort.
        ctx.status["abort"] = False
        ctx.status.pop("abortedAt", None)
    new = await ctx.ensure_new_rs(ro.replicas)
    await ctx.scale(new, ro.replicas)
    await ctx.cancel_scale_down(new)
    if await ctx.point_service(bg.active_service, ctx.new_hash):
        bgs["activeSelector"] = ctx.new_hash
    if bg.preview_service and await ctx.point_service(bg.preview_service, ctx.new_hash):
        bgs["previewSelector"] = ctx.new_hash
    if first and rsu.rs_available(ctx.new_rs) >= ro.replicas:
        _mark_stable(ctx)
    elif not first:
        ctx.clear_pause()
    await _scale_down_others(ctx, bg, keep=[ctx.new_rs])


async def _aborted(ctx: RolloutContext, bg: BlueGreen) -> None:
    """Both Services back on the stable ReplicaSet at once; the preview goes after
    abortScaleDownDelaySeconds (upstream: the active Service never moved, or moves
    back, the moment the abort is seen)."""
    ctx.note_abort()
    bgs = ctx.status["blueGreen"]
    await ctx.point_service(bg.active_service, ctx.stable_hash)
    bgs["activeSelector"] = ctx.stable_hash
    if bg.preview_service:
        await ctx.point_service(bg.preview_service, ctx.stable_hash)
        bgs["previewSelector"] = ctx.stable_hash
    bgs.pop("scaleUpPreviewCheckPoint", None)
    for key in ("prePromotionAnalysisRunStatus", "postPromotionAnalysisRunStatus"):
        ref = bgs.get(key)
        if isinstance(ref, dict) and ref.get("name"):
            await ctx.terminate(str(ref["name"]))
    if ctx.new_rs is not None:
        await ctx.scale_down_later(ctx.new_rs, bg.abort_scale_down_delay_seconds)
    await _scale_down_others(ctx, bg, keep=[ctx.new_rs, ctx.stable_rs])
    for key in ("prePromotionAnalysisRunStatus", "postPromotionAnalysisRunStatus"):
        run_ref = bgs.get(key)
        if isinstance(run_ref, dict):
            run = ctx.analysis_runs.get(str(run_ref.get("name")))
            if run is not None:
                bgs[key] = run_status(run)


async def _scale_down_others(
    ctx: RolloutContext, bg: BlueGreen, keep: list[JSONDict | None]
) -> None:
    for rs in ctx.others(*keep):
        await ctx.scale_down_later(rs, bg.scale_down_delay_seconds)
    await ctx.cleanup_history(keep)
