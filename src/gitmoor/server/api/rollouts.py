"""A Rollout of an app: its view (``gitmoor rollout get``) and its actions.

Routes hang under the app that holds the Rollout
(``/applications/{name}/rollout?namespace=NS&name=RO``), for the same reasons the
app's other object routes do (:mod:`gitmoor.server.api.app_resources`): RBAC is
Argo CD's per app (``applications, get`` to read; an action changes the app's
workload, so it needs ``applications, sync``, the right a person who may deploy
the app has), the Rollout is read in the app's destination cluster, and only a
Rollout among the app's own resources (as its last refresh listed them) can be
reached: any other name is a 404, so these routes never read or write the
cluster at large. A caller who may not read the app gets 403 whether or not it
holds such a Rollout.

The actions write exactly the Argo Rollouts plugin's patches
(:mod:`gitmoor.rollouts.actions`), and each is audited like an app operation.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import Field

from gitmoor.engine.store import app_ref
from gitmoor.kube import ApiError
from gitmoor.model import GitmoorError, UserInputError
from gitmoor.model.application import Application
from gitmoor.model.status import ResourceEntry
from gitmoor.rollouts.actions import Action, run_action
from gitmoor.rollouts.info import GROUP, RolloutNotFoundError, get_rollout, info_of
from gitmoor.server.api.schemas import Model
from gitmoor.server.deps import Caller, State, client_address, visible_app
from gitmoor.server.redaction import app_redactor, scrubbed
from gitmoor.server.state import ServerState

log = logging.getLogger("gitmoor.server")

router = APIRouter(tags=["rollouts"])


# ---------------------------------------------------------------- bodies


class StepView(Model):
    index: int
    text: str = Field(description="the step as the plugin prints it: 'setWeight: 25', 'pause'")
    state: Literal["done", "current", "pending"]


class PodView(Model):
    name: str
    status: str = Field(description="what `kubectl get pods` prints: Running, Pending, …")
    ready: str = Field(description="ready containers/containers")
    restarts: int
    created: str


class ReplicaSetView(Model):
    name: str
    hash: str = Field(description="its rollouts-pod-template-hash")
    revision: int = Field(description="rollout.argoproj.io/revision")
    status: str = Field(description="Healthy, Progressing, ScaledDown or ReplicaFailure")
    desired: int
    replicas: int
    ready: int
    available: int
    roles: list[str] = Field(description="stable, canary, active, preview")
    images: list[str]
    created: str
    scaleDownDeadline: str
    pods: list[PodView]


class MeasurementView(Model):
    phase: str
    value: str
    startedAt: str
    finishedAt: str
    message: str


class MetricView(Model):
    name: str
    phase: str
    successful: int
    failed: int
    inconclusive: int
    error: int
    message: str
    measurements: list[MeasurementView]


class AnalysisRunView(Model):
    name: str
    phase: str
    message: str
    revision: int
    created: str
    metrics: list[MetricView]


class ServiceView(Model):
    role: Literal["active", "preview", "canary", "stable"]
    name: str
    hash: str = Field(description="the rollouts-pod-template-hash its selector holds")
    replicaSet: str = Field(description="the ReplicaSet of that hash; '' if none")
    found: bool


class ImageView(Model):
    image: str
    tags: list[str]


class RolloutView(Model):
    """What ``gitmoor rollout get -o json`` prints."""

    name: str
    namespace: str
    uid: str
    strategy: str = Field(description="BlueGreen, Canary, or '' for neither")
    status: str = Field(description="Progressing, Paused, Healthy, Degraded (status.phase)")
    message: str
    paused: bool
    aborted: bool
    pauseReasons: list[str]
    step: str = Field(description="a canary's current step/steps; ''")
    steps: list[StepView]
    setWeight: str
    actualWeight: str
    desired: int
    current: int
    updated: int
    ready: int
    available: int
    currentPodHash: str
    stableRs: str
    restartedAt: str
    created: str
    images: list[ImageView]
    replicaSets: list[ReplicaSetView]
    analysisRuns: list[AnalysisRunView]
    services: list[ServiceView]


class RolloutActionRequest(Model):
    action: Literal["promote", "abort", "retry", "undo", "restart"]
    full: bool = Field(False, description="promote: skip the remaining steps, pauses and analysis")
    toRevision: int = Field(0, ge=0, description="undo: the revision; 0 for the previous one")


class RolloutActionResult(Model):
    message: str = Field(description="the plugin's answer: \"rollout 'web' promoted\"")
    rollout: RolloutView


# ---------------------------------------------------------------- helpers

NamespaceQ = Annotated[
    str, Query(min_length=1, max_length=63, description="the Rollout's namespace")
]
RolloutQ = Annotated[
    str, Query(alias="name", min_length=1, max_length=253, description="the Rollout's name")
]


async def _held(state: ServerState, app: Application, namespace: str, rollout: str) -> None:
    """404 unless the app's resources (its last refresh) hold this Rollout."""
    key = (GROUP, "Rollout", namespace, rollout)
    entries = [ResourceEntry.from_dict(r) for r in await state.engine.resources(app)]
    if not any(e is not None and e.ref.key == key for e in entries):
        raise HTTPException(
            404, f"Rollout {namespace}/{rollout} is not an object of application {app.name}"
        )


async def _view(state: ServerState, app: Application, namespace: str, rollout: str) -> RolloutView:
    kube = await state.engine.dest(app)
    try:
        info = await info_of(kube, await get_rollout(kube, namespace, rollout))
    except RolloutNotFoundError as e:
        raise HTTPException(404, str(e)) from None
    # Free text (the controller's message, an analysis measurement's message)
    # can quote a value: scrubbed by the app's Redactors (issue 13).
    text = scrubbed(await app_redactor(state, app), json.dumps(info.as_json()))
    return RolloutView.model_validate(json.loads(text))


def _refused(e: GitmoorError) -> HTTPException:
    """The engine's and the API server's refusals as a 4xx with their sentence: the
    caller's input or the object's state, never a fault of this server."""
    if isinstance(e, RolloutNotFoundError):
        return HTTPException(404, str(e))
    if isinstance(e, UserInputError):
        return HTTPException(400, str(e))
    if isinstance(e, ApiError) and 400 <= e.code < 500:
        return HTTPException(409 if e.code == 409 else 400, str(e))
    raise e


# ---------------------------------------------------------------- routes


@router.get(
    "/applications/{name}/rollout",
    response_model=RolloutView,
    summary="One Rollout of the app as `gitmoor rollout get` shows it",
    description=(
        "The Rollout (argoproj.io) `namespace`/`name` among the app's resources, read in "
        "the app's destination cluster: its strategy and phase, its canary steps with the "
        "current one marked, its ReplicaSets (revision, role stable/canary/active/preview, "
        "replicas) with their pods, its AnalysisRuns with each metric's measurements, and "
        "which ReplicaSet each Service of the strategy selects. Needs `applications, get` "
        "on the app; a Rollout the app does not hold is a 404."
    ),
)
async def get_rollout_view(
    name: str, who: Caller, state: State, namespace: NamespaceQ, rollout: RolloutQ
) -> RolloutView:
    app = visible_app(state, who, name)
    await _held(state, app, namespace, rollout)
    try:
        return await _view(state, app, namespace, rollout)
    except GitmoorError as e:
        raise _refused(e) from None


@router.post(
    "/applications/{name}/rollout",
    response_model=RolloutActionResult,
    summary="Promote, abort, retry, undo or restart one Rollout of the app",
    description=(
        "The verbs of the Argo Rollouts kubectl plugin, writing its patches: `promote` "
        "clears status.pauseConditions and sets spec.paused false (a canary with no pause "
        "condition moves to its next step; `full` sets status.promoteFull), `abort` sets "
        "status.abort, `retry` clears it, `undo` puts the pod template of revision "
        "`toRevision` (default: the previous one) back into spec.template, `restart` sets "
        "spec.restartAt to now. The controller acts on them at its next reconcile. Needs "
        "`applications, sync` on the app that holds the Rollout; audited."
    ),
    responses={409: {"description": "the Rollout changed while it was written; retry"}},
)
async def rollout_action(
    name: str,
    body: RolloutActionRequest,
    who: Caller,
    state: State,
    request: Request,
    namespace: NamespaceQ,
    rollout: RolloutQ,
) -> RolloutActionResult:
    app = visible_app(state, who, name, "sync")
    await _held(state, app, namespace, rollout)
    kube = await state.engine.dest(app)
    try:
        result = await run_action(
            kube,
            namespace,
            rollout,
            Action(body.action),
            full=body.full,
            to_revision=body.toRevision,
        )
        view = await _view(state, app, namespace, rollout)
    except GitmoorError as e:
        raise _refused(e) from None
    await state.audit.record(
        who=who.name,
        action=f"rollout-{body.action}",
        target=app_ref(app.name, app.namespace),
        result="accepted",
        address=client_address(request),
        message=f"Rollout {namespace}/{rollout}: {result.message}",
        uid=app.uid or None,
    )
    log.info(
        "event=rollout_action app=%s namespace=%s rollout=%s action=%s who=%s",
        app.name,
        namespace,
        rollout,
        body.action,
        who.name,
    )
    return RolloutActionResult(message=result.message, rollout=view)
