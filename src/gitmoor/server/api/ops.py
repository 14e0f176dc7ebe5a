"""Operations on an application: sync, rollback, refresh, terminate.

The server asks and the controller runs, as Argo CD's API server sets an
Application's ``operation`` for its controller: a sync or rollback is written
through ``Engine.request_sync`` (which bumps the generation and wakes the
controller), and the answer is 202 Accepted with the app as it is now. Progress
then arrives over the SSE stream or the app's status. A refresh is the
``gitmoor.io/refresh`` annotation (``argocd.argoproj.io/refresh`` there), which
the controller acts on and removes.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request

from gitmoor.engine import status_of
from gitmoor.engine.store import app_ref, request_refresh
from gitmoor.model.application import Application
from gitmoor.model.status import OpPhase, SyncOperation
from gitmoor.server.api.schemas import (
    Accepted,
    RefreshRequest,
    RollbackRequest,
    SyncRequest,
    summary,
)
from gitmoor.server.deps import Caller, State, client_address, visible_app
from gitmoor.server.state import ServerState

log = logging.getLogger("gitmoor.server.ops")

router = APIRouter(tags=["operations"])


def _idle(app: Application) -> None:
    """Refuse a second operation while one is asked for or runs (Argo CD answers
    FailedPrecondition "another operation is already in progress")."""
    op = status_of(app).operation_state
    if app.operation is not None or (op is not None and not op.phase.completed):
        raise HTTPException(409, f"another operation is already in progress on {app.name}")


async def _audited(
    state: ServerState, request: Request, who: str, action: str, app: Application, message: str
) -> None:
    await state.audit.record(
        who=who,
        action=action,
        target=app_ref(app.name, app.namespace),
        result="accepted",
        address=client_address(request),
        message=message,
        uid=app.uid or None,
    )


@router.post(
    "/applications/{name}/sync",
    status_code=202,
    response_model=Accepted,
    summary="Sync the app (with prune, dry-run, selected resources, force)",
    responses={
        400: {
            "description": "refused: a sync window of the app's project forbids a manual "
            "sync now (the detail names it and says when syncs open)"
        },
        409: {"description": "another operation is already in progress"},
    },
)
async def sync(
    name: str, body: SyncRequest, who: Caller, state: State, request: Request
) -> Accepted:
    app = visible_app(state, who, name, "sync")
    _idle(app)
    op = SyncOperation(
        revision=body.revision,
        prune=body.prune,
        dry_run=body.dryRun,
        force_conflicts=body.force,
        resources=tuple((r.group, r.kind, r.name) for r in body.resources)
        if body.resources
        else None,
        initiated_by=who.name,
    )
    app = await state.engine.request_sync(app, op)
    what = f"sync to {body.revision or app.spec.source.target_revision}" + (
        " (dry run)" if body.dryRun else ""
    )
    await _audited(state, request, who.name, "sync", app, what)
    return Accepted(message=f"{what} requested", app=summary(app))


@router.post(
    "/applications/{name}/rollback",
    status_code=202,
    response_model=Accepted,
    summary="Sync the revision of a history entry; switches automated sync off (and "
    "removes a pin), or with pin keeps it on and pins the app there",
    responses={
        400: {
            "description": "refused: no such history entry, or a sync window of the app's "
            "project forbids a manual sync now (the app is left as it is)"
        },
        409: {"description": "another operation is already in progress"},
    },
)
async def rollback(
    name: str, body: RollbackRequest, who: Caller, state: State, request: Request
) -> Accepted:
    app = visible_app(state, who, name, "sync")
    _idle(app)
    unpinned = not body.pin and app.spec.sync_policy.pin is not None
    entry, app = await state.engine.prepare_rollback(app, body.id, pin=body.pin)
    source = entry.source if entry.source and entry.source.get("repoURL") else None
    op = SyncOperation(
        revision=entry.revision,
        prune=body.prune,
        dry_run=body.dryRun,
        initiated_by=who.name,
        rollback_id=body.id,
        source=source,
        rollback_pin=body.pin,
    )
    app = await state.engine.request_sync(app, op)
    what = (
        f"rollback to history {body.id} ({entry.revision[:12]}); "
        + ("pinned there, automated sync stays on" if body.pin else "automated sync is off")
        + ("; the pin is removed" if unpinned else "")
    )
    await _audited(state, request, who.name, "rollback", app, what)
    return Accepted(message=f"{what}", app=summary(app))


@router.post(
    "/applications/{name}/refresh",
    status_code=202,
    response_model=Accepted,
    summary="Compare with Git and the cluster now (hard: render again, no cache)",
)
async def refresh(
    name: str, body: RefreshRequest, who: Caller, state: State, request: Request
) -> Accepted:
    # Argo CD lets whoever may get an app refresh it. Here every state-changing route
    # refuses role:readonly (issue 12), and a hard refresh costs a render, so a refresh
    # is an operation like the others: `applications, sync`.
    app = visible_app(state, who, name, "sync")
    app = await request_refresh(state.kube, app, body.type)
    await _audited(state, request, who.name, "refresh", app, f"{body.type} refresh")
    return Accepted(message=f"{body.type} refresh requested", app=summary(app))


@router.post(
    "/applications/{name}/terminate",
    status_code=202,
    response_model=Accepted,
    summary="Stop the running operation between steps",
    responses={409: {"description": "no operation is running"}},
)
async def terminate(name: str, who: Caller, state: State, request: Request) -> Accepted:
    app = visible_app(state, who, name, "sync")
    op = status_of(app).operation_state
    if op is None or op.phase not in (OpPhase.RUNNING, OpPhase.TERMINATING):
        raise HTTPException(409, f"no operation is running on {app.name}")
    await state.engine.terminate(app)
    await _audited(state, request, who.name, "terminate", app, "terminate operation")
    return Accepted(message="termination requested", app=summary(app))
