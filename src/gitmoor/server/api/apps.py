"""Reading applications: list, get, history, diff.

The list and the app come from the server's Application watch (no API request);
an app's objects come through ``Engine.resources`` (the status or its inventory
ConfigMap) and a diff through ``Engine.diff`` (a render and server-side dry-runs,
as ``gitmoor app diff``). Listing filters by RBAC and never answers 403: a caller
sees the apps they may get, as Argo CD's list does.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Query

from gitmoor.engine import scrub_message, status_of
from gitmoor.model.application import Application
from gitmoor.model.health import SyncStatus
from gitmoor.model.status import ResourceEntry
from gitmoor.server.api.schemas import (
    AppDetail,
    AppList,
    AppSummary,
    Counts,
    DiffItem,
    DiffResult,
    HistoryItem,
    OperationView,
    WhyResult,
    history_item,
    resource_item,
    summary,
)
from gitmoor.server.deps import Caller, State, allowed, app_object, visible_app
from gitmoor.server.redaction import learn_live

router = APIRouter(tags=["applications"])


def _matches(s: AppSummary, app: Application, q: str) -> bool:
    q = q.lower()
    return any(
        q in field.lower()
        for field in (s.name, s.project, s.repoURL, s.path, s.namespace, s.cluster)
    ) or any(q in k.lower() or q in v.lower() for k, v in app.labels.items())


@router.get(
    "/applications",
    response_model=AppList,
    summary="List the applications the caller may see",
    description=(
        "Filters combine with AND; each may be given more than once (OR within one "
        "filter). `search` matches name, project, repository, path, cluster, namespace "
        "and labels, case-insensitively. `counts` counts the filtered list."
    ),
)
async def list_applications(
    who: Caller,
    state: State,
    project: Annotated[list[str] | None, Query()] = None,
    sync: Annotated[list[str] | None, Query()] = None,
    health: Annotated[list[str] | None, Query()] = None,
    cluster: Annotated[list[str] | None, Query()] = None,
    namespace: Annotated[list[str] | None, Query()] = None,
    repo: Annotated[list[str] | None, Query()] = None,
    search: Annotated[str, Query(max_length=200)] = "",
) -> AppList:
    items: list[AppSummary] = []
    for app in state.apps.all():
        if not allowed(state, who, "applications", "get", app_object(app)):
            continue
        s = state.apps.summary(app)
        if project and s.project not in project:
            continue
        if sync and s.sync not in sync:
            continue
        if health and s.health not in health:
            continue
        if cluster and s.cluster not in cluster:
            continue
        if namespace and s.namespace not in namespace:
            continue
        if repo and s.repoURL not in repo:
            continue
        if search and not _matches(s, app, search):
            continue
        items.append(s)
    counts = Counts(
        sync=dict(Counter(s.sync for s in items)), health=dict(Counter(s.health for s in items))
    )
    return AppList(items=items, counts=counts)


@router.get(
    "/applications/{name}",
    response_model=AppDetail,
    summary="One application: status, objects, history, the operation",
    description="Messages (conditions, health, the operation, each object's) are "
    "scrubbed: a value of the app's Secrets, or of a field its `redactions` name, "
    "quoted in one shows as its mask (`<redacted:…>`), the same the app's manifests show.",
)
async def get_application(name: str, who: Caller, state: State) -> AppDetail:
    app = visible_app(state, who, name)
    st = status_of(app)
    entries = [
        e
        for e in (ResourceEntry.from_dict(r) for r in await state.engine.resources(app))
        if e is not None
    ]
    op = st.operation_state
    if (
        st.conditions
        or st.health_message
        or (op is not None and op.message)
        or any(e.message or e.health_message for e in entries)
    ):
        # Text to show: learn what the app's values are before it is scrubbed.
        await learn_live(state, app, entries)
    return AppDetail(
        **summary(app, st).model_dump(),
        appsNamespace=app.namespace,
        syncOptions=list(app.spec.sync_policy.sync_options),
        items=[resource_item(app, e) for e in entries],
        history=[history_item(h) for h in reversed(st.history)],
        operation=OperationView(
            phase=op.phase.value,
            message=op.message,
            revision=op.operation.revision,
            startedAt=op.started_at,
            finishedAt=op.finished_at,
            initiatedBy=op.operation.initiated_by,
        )
        if op is not None
        else None,
    )


@router.get(
    "/applications/{name}/history",
    response_model=list[HistoryItem],
    summary="The app's sync history, newest first (ids for rollback)",
)
async def get_history(name: str, who: Caller, state: State) -> list[HistoryItem]:
    app = visible_app(state, who, name)
    return [history_item(h) for h in reversed(status_of(app).history)]


@router.get(
    "/applications/{name}/why",
    response_model=WhyResult,
    summary="Why the app is, or is not, synced and healthy now (`gitmoor app why`)",
    description="One explanation from the app's status, its dependencies (spec.dependsOn), "
    "its project's sync windows and its pin: suspended, pinned (and how far the branch "
    "moved past it), a window, dependencies, a failed commit not retried, a project "
    "refusal, a comparison error, a sync running with its step, drift with self-heal off, "
    "or the objects not healthy with their messages. The same text as the CLI and the UI.",
)
async def get_why(name: str, who: Caller, state: State) -> WhyResult:
    app = visible_app(state, who, name)
    lines = await state.engine.why(app)
    # A health message can quote a value: scrubbed as every other message served.
    return WhyResult(lines=[scrub_message(app, line) for line in lines])


@router.get(
    "/applications/{name}/diff",
    response_model=DiffResult,
    summary="What a sync would change, as unified diffs (Secret values masked)",
    description="Renders the app at `revision` (default: its target) and compares it "
    "with the cluster by server-side dry-run; writes nothing. Synced objects are left out. "
    "Secret values and the fields of the app's and its project's `spec.redactions` are "
    "masked as `<redacted:` + 8 hex + `>`, the same value with the same mask, so a "
    "changed value shows as a changed mask; messages are scrubbed of such values.",
)
async def get_diff(
    name: str,
    who: Caller,
    state: State,
    revision: Annotated[str | None, Query(max_length=255)] = None,
) -> DiffResult:
    app = visible_app(state, who, name)
    cmp = await state.engine.diff(app, revision=revision or None)
    items = [
        DiffItem(
            group=r.ref.group,
            kind=r.ref.kind,
            namespace=r.ref.namespace,
            name=r.ref.name,
            status=r.sync.value,
            # The engine scrubs with the app's Redactor; the server does again with
            # every Redactor of this app (and no other app's: issue 13).
            message=scrub_message(app, r.message),
            requiresPruning=r.requires_pruning,
            diff=r.diff.diff if r.diff is not None else "",
        )
        for r in cmp.resources
        if r.sync is not SyncStatus.SYNCED
    ]
    return DiffResult(revision=cmp.revision, items=items)
