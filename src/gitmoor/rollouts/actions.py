"""The verbs of the Argo Rollouts kubectl plugin: promote, abort, retry, undo, restart.

Each writes exactly what the plugin writes (``pkg/kubectl-argo-rollouts/cmd``),
so a Rollout behaves the same whether a person used ``kubectl argo rollouts`` or
``gitmoor rollout``, and whether gitmoor's controller or Argo Rollouts' own runs
it. The status fields go through the status subresource, as the plugin sends
them; where the Rollout CRD has no status subresource (Argo Rollouts before
v0.10) the status patch answers 404 and the plugin falls back to one patch of
the whole object, which is done here too.

None of these waits for the controller: they record the intent; the controller
acts on it at its next reconcile.
"""

from __future__ import annotations

import copy
import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gitmoor.kube import ConflictError, NotFoundError
from gitmoor.model import JSONDict, ObjectRef, UserInputError
from gitmoor.rollouts.info import (
    POD_TEMPLATE_HASH,
    canary_steps,
    current_step_index,
    get_rollout,
    revision_of,
    rollout_ref,
    selector_string,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.rollouts")

#: attempts of undo's read-modify-replace when the Rollout changes in between
UNDO_ATTEMPTS = 3


class Action(enum.StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    RETRY = "retry"
    UNDO = "undo"
    RESTART = "restart"


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did, in the plugin's words (``rollout 'web' promoted``)."""

    name: str
    namespace: str
    action: Action
    message: str


def _status(ro: JSONDict) -> JSONDict:
    status = ro.get("status")
    return status if isinstance(status, dict) else {}


def _spec(ro: JSONDict) -> JSONDict:
    spec = ro.get("spec")
    return spec if isinstance(spec, dict) else {}


async def _patch(
    kube: KubeClient, ref: ObjectRef, *, spec: JSONDict | None, status: JSONDict | None
) -> None:
    """The plugin's patch order: status through the subresource first, then spec;
    without a status subresource (404 on it) one patch carries both."""
    if status is not None:
        try:
            await kube.merge_patch(ref, {"status": status}, subresource="status")
        except NotFoundError:
            if await kube.get(ref) is None:
                raise
            whole: JSONDict = {"status": status}
            if spec is not None:
                whole["spec"] = spec
            await kube.merge_patch(ref, whole)
            return
    if spec is not None:
        await kube.merge_patch(ref, {"spec": spec})


def promote_patches(ro: JSONDict, *, full: bool = False) -> tuple[JSONDict | None, JSONDict | None]:
    """(spec patch, status patch) of ``kubectl argo rollouts promote [--full]``
    (``getPatches``), None where nothing is written.

    ``--full``: ``status.promoteFull`` (only while an update is under way: the
    current pod hash is not the stable one) and ``spec.paused: false``. Plain:
    ``spec.paused: false`` if paused; then either clear ``status.pauseConditions``
    (the controller moves past the pause it acted on), or, for a canary with steps
    and no pause condition (an analysis or experiment step in progress), clear
    them and advance ``status.currentStepIndex`` by one. A canary whose step
    analysis came out Inconclusive, paused by the controller, gets all three:
    conditions cleared, ``controllerPause`` false and the index advanced, or it
    would stay stuck at a following pause step.
    """
    spec, status = _spec(ro), _status(ro)
    paused = bool(spec.get("paused"))
    spec_patch: JSONDict | None = {"paused": False} if paused else None
    if full:
        if status.get("currentPodHash") != status.get("stableRS"):
            return spec_patch, {"promoteFull": True}
        return spec_patch, None
    conditions = status.get("pauseConditions") or []
    index = current_step_index(ro)
    advanced = None
    if index is not None:
        advanced = index + 1 if index < len(canary_steps(ro)) else index
    canary_status = status.get("canary")
    step_run = (
        canary_status.get("currentStepAnalysisRunStatus")
        if isinstance(canary_status, dict)
        else None
    )
    inconclusive = index is not None and (
        isinstance(step_run, dict) and step_run.get("status") == "Inconclusive"
    )
    if inconclusive and conditions and status.get("controllerPause"):
        if advanced is not None:
            return spec_patch, {
                "pauseConditions": None,
                "controllerPause": False,
                "currentStepIndex": advanced,
            }
        return spec_patch, None
    if conditions:
        return spec_patch, {"pauseConditions": None}
    if advanced is not None:
        return spec_patch, {"pauseConditions": None, "currentStepIndex": advanced}
    return spec_patch, None


async def promote(
    kube: KubeClient, namespace: str, name: str, *, full: bool = False
) -> ActionResult:
    ro = await get_rollout(kube, namespace, name)
    spec_patch, status_patch = promote_patches(ro, full=full)
    await _patch(kube, rollout_ref(namespace, name), spec=spec_patch, status=status_patch)
    log.info(
        "event=rollout_promote namespace=%s rollout=%s full=%s status_patch=%s spec_patch=%s",
        namespace,
        name,
        full,
        sorted(status_patch or {}),
        sorted(spec_patch or {}),
    )
    word = "fully promoted" if full else "promoted"
    return ActionResult(name, namespace, Action.PROMOTE, f"rollout '{name}' {word}")


async def abort(kube: KubeClient, namespace: str, name: str) -> ActionResult:
    """``status.abort: true``: the controller returns traffic to the stable
    ReplicaSet and scales the new one down; ``spec.template`` stays the new one."""
    await get_rollout(kube, namespace, name)
    await _patch(kube, rollout_ref(namespace, name), spec=None, status={"abort": True})
    log.info("event=rollout_abort namespace=%s rollout=%s", namespace, name)
    return ActionResult(name, namespace, Action.ABORT, f"rollout '{name}' aborted")


async def retry(kube: KubeClient, namespace: str, name: str) -> ActionResult:
    """``status.abort: false``: an aborted Rollout tries the new version again."""
    await get_rollout(kube, namespace, name)
    await _patch(kube, rollout_ref(namespace, name), spec=None, status={"abort": False})
    log.info("event=rollout_retry namespace=%s rollout=%s", namespace, name)
    return ActionResult(name, namespace, Action.RETRY, f"rollout '{name}' retried")


async def restart(
    kube: KubeClient, namespace: str, name: str, *, at: datetime | None = None
) -> ActionResult:
    """``spec.restartAt`` (RFC 3339, now by default): the controller restarts the
    pods created before that time, a few at a time."""
    await get_rollout(kube, namespace, name)
    when = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await kube.merge_patch(rollout_ref(namespace, name), {"spec": {"restartAt": when}})
    log.info("event=rollout_restart namespace=%s rollout=%s at=%s", namespace, name, when)
    return ActionResult(name, namespace, Action.RESTART, f"rollout '{name}' restarts at {when}")


def _owned(obj: JSONDict, uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, dict) and r.get("uid") == uid and r.get("controller") for r in refs)


def _without_hash(template: Any) -> JSONDict:
    t = copy.deepcopy(template) if isinstance(template, dict) else {}
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return t


def _derivative(want: Any, have: Any) -> bool:
    """``apiequality.Semantic.DeepDerivative``: every field set in ``want`` equals
    ``have``'s (fields ``want`` leaves unset, defaults the server filled, count as equal)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            v in (None, "", [], {}) or _derivative(v, have.get(k)) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(_derivative(a, b) for a, b in zip(want, have, strict=True))
        )
    return bool(want == have)


def pick_revision(replica_sets: list[JSONDict], to_revision: int) -> JSONDict:
    """The ReplicaSet to go back to (``rolloutRevision``): revision ``to_revision``,
    or with 0 the newest but one."""
    if to_revision > 0:
        for rs in replica_sets:
            if revision_of(rs) == to_revision:
                return rs
        raise UserInputError(f"unable to find specified revision {to_revision} in history")
    ordered = sorted(replica_sets, key=revision_of, reverse=True)
    if len(ordered) < 2:
        raise UserInputError("no previous revision found to go back to")
    return ordered[1]


async def undo(
    kube: KubeClient, namespace: str, name: str, *, to_revision: int = 0
) -> ActionResult:
    """Put the pod template of an earlier ReplicaSet back into ``spec.template``
    (``kubectl argo rollouts undo [--to-revision N]``), without its
    ``rollouts-pod-template-hash`` label; skipped when the template already is
    that one. The plugin sends a JSON patch that replaces ``/spec/template``
    whole; the same is a replace of the object read here, with its
    resourceVersion, retried if the Rollout changed in between. A Rollout with
    ``workloadRef`` has its template in the referenced Deployment, which is
    written instead, as the plugin does."""
    ref = rollout_ref(namespace, name)
    for attempt in range(UNDO_ATTEMPTS):
        ro = await get_rollout(kube, namespace, name)
        uid = str((ro.get("metadata") or {}).get("uid") or "")
        ar = await kube.resource("apps", "v1", "ReplicaSet")
        listed = await kube.list(ar, namespace, label_selector=selector_string(ro) or None)
        owned = [rs for rs in listed.items if _owned(rs, uid)]
        rs = pick_revision(owned, to_revision)
        template = _without_hash((rs.get("spec") or {}).get("template"))
        revision = revision_of(rs)
        workload = _spec(ro).get("workloadRef")
        target_ref, target = ref, ro
        if isinstance(workload, dict) and workload.get("name"):
            if workload.get("kind") != "Deployment":
                raise UserInputError(
                    f"workload of type {workload.get('kind')} is not supported",
                    concerns=f"rollout {namespace}/{name}",
                )
            target_ref = ObjectRef("apps", "v1", "Deployment", namespace, str(workload["name"]))
            found = await kube.get(target_ref)
            if found is None:
                raise UserInputError(
                    f"the workloadRef Deployment {workload['name']} does not exist",
                    concerns=f"rollout {namespace}/{name}",
                )
            target = found
        current = _without_hash(_spec(target).get("template"))
        if _derivative(current, template):
            return ActionResult(
                name,
                namespace,
                Action.UNDO,
                f"skipped rollback (current template already matches revision {revision})",
            )
        body = copy.deepcopy(target)
        body.setdefault("spec", {})["template"] = template
        body.pop("status", None)
        try:
            await kube.replace(target_ref, body)
        except ConflictError:
            if attempt + 1 == UNDO_ATTEMPTS:
                raise
            continue
        log.info(
            "event=rollout_undo namespace=%s rollout=%s revision=%d target=%s",
            namespace,
            name,
            revision,
            target_ref,
        )
        return ActionResult(
            name, namespace, Action.UNDO, f"rollout '{name}' undo (to revision {revision})"
        )
    raise AssertionError("unreachable")  # pragma: no cover


async def run_action(
    kube: KubeClient,
    namespace: str,
    name: str,
    action: Action,
    *,
    full: bool = False,
    to_revision: int = 0,
) -> ActionResult:
    """One verb by name: what the CLI and the API both call."""
    if full and action != Action.PROMOTE:
        raise UserInputError("--full goes with promote only")
    if to_revision and action != Action.UNDO:
        raise UserInputError("--to-revision goes with undo only")
    if action == Action.PROMOTE:
        return await promote(kube, namespace, name, full=full)
    if action == Action.ABORT:
        return await abort(kube, namespace, name)
    if action == Action.RETRY:
        return await retry(kube, namespace, name)
    if action == Action.UNDO:
        return await undo(kube, namespace, name, to_revision=to_revision)
    return await restart(kube, namespace, name)


__all__ = [
    "Action",
    "ActionResult",
    "abort",
    "pick_revision",
    "promote",
    "promote_patches",
    "restart",
    "retry",
    "run_action",
    "undo",
]
