"""The API's request and response bodies (the OpenAPI schemas).

Field names are camelCase, as Argo CD's API and the Kubernetes objects they
come from spell them. Everything here is built from the typed status
(:class:`gitmoor.model.status.AppStatus`), never from raw status dicts.

Free text of the status (health, operation, condition and per-object messages)
can quote the API server or a tool, and so a value: it goes through the one
redaction policy (:func:`gitmoor.engine.scrub_message`, issue 13: the app's own
Redactors, never another app's) here, where every view of an app (its JSON, the
list, the SSE stream, the UI) is built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gitmoor.engine import scrub_message, status_of
from gitmoor.model.application import Application
from gitmoor.model.status import AppStatus, HistoryEntry, ResourceEntry
from gitmoor.source import redact_url


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class ObjectKey(Model):
    group: str = ""
    kind: str
    namespace: str = ""
    name: str


class AppSummary(Model):
    name: str
    project: str
    repoURL: str
    path: str
    targetRevision: str
    cluster: str
    namespace: str
    sync: str = Field(description="Synced, OutOfSync or Unknown")
    revision: str = Field(description="the commit the sync status was computed at")
    health: str = Field(description="Healthy, Progressing, Degraded, Suspended, Missing, Unknown")
    healthMessage: str
    operationPhase: str = Field(description="the last or running operation's phase; '' if none")
    operationMessage: str
    automated: bool
    automatedPrune: bool = Field(description="automated sync also prunes")
    automatedSelfHeal: bool = Field(description="automated sync also reverts drift")
    suspended: bool
    operationRequested: bool = Field(
        description="a sync or rollback was asked for and the controller has not taken it yet"
    )
    reconciledAt: str
    resources: int = Field(description="how many objects the app has")
    conditions: list[str]


class Counts(Model):
    sync: dict[str, int]
    health: dict[str, int]


class AppList(Model):
    items: list[AppSummary]
    counts: Counts


class ResourceItem(Model):
    group: str
    kind: str
    namespace: str
    name: str
    status: str
    health: str
    healthMessage: str
    message: str
    requiresPruning: bool


class HistoryItem(Model):
    id: int
    revision: str
    deployedAt: str
    deployStartedAt: str
    initiatedBy: str


class OperationView(Model):
    phase: str
    message: str
    revision: str
    startedAt: str
    finishedAt: str
    initiatedBy: str


class AppDetail(AppSummary):
    appsNamespace: str = Field(description="the namespace the Application object lives in")
    syncOptions: list[str]
    items: list[ResourceItem]
    history: list[HistoryItem]
    operation: OperationView | None


class DiffItem(Model):
    group: str
    kind: str
    namespace: str
    name: str
    status: str
    message: str
    requiresPruning: bool
    diff: str = Field(
        description="a unified diff, live to desired; Secret values and the fields of the "
        "app's and project's `redactions` masked (`<redacted:…>`: the same mask for the "
        "same value, so a changed value shows as changed)"
    )


class DiffResult(Model):
    revision: str
    items: list[DiffItem]


class SyncRequest(Model):
    revision: str = Field("", description="a branch, tag or commit; '' for the target revision")
    prune: bool | None = Field(
        None, description="delete what Git no longer declares; absent: the app's automated.prune"
    )
    dryRun: bool = False
    force: bool | None = Field(
        None,
        description="true: take fields other managers own (force conflicts); false: refuse "
        "them; absent: the app's choice (ForceConflicts sync option)",
    )
    resources: list[ObjectKey] | None = Field(
        None, description="sync only these objects (a selective sync)"
    )


class RollbackRequest(Model):
    id: int = Field(ge=0, description="the history entry to go back to")
    prune: bool = False
    dryRun: bool = False
    pin: bool = Field(
        False,
        description="keep automated sync on and pin the app to that revision "
        "(spec.syncPolicy.pin) instead of switching automation off",
    )


class WhyResult(Model):
    """``gitmoor app why``: why the app is, or is not, synced and healthy now."""

    lines: list[str] = Field(description="the explanation, most important first")


class RefreshRequest(Model):
    type: Literal["normal", "hard"] = "normal"


class Accepted(Model):
    message: str
    app: AppSummary


def summary(app: Application, st: AppStatus | None = None) -> AppSummary:
    st = st if st is not None else status_of(app)
    op = st.operation_state
    spec = app.spec
    auto = spec.sync_policy.automated
    return AppSummary(
        name=app.name,
        project=spec.project or "default",
        # An app applied with kubectl may carry https://user:TOKEN@ in its URL; a
        # reader (role:readonly, the SSE stream) must not get the token.
        repoURL=redact_url(spec.source.repo_url),
        path=spec.source.path,
        targetRevision=spec.source.target_revision,
        cluster=spec.destination.name or "in-cluster",
        namespace=spec.destination.namespace,
        sync=st.sync_status,
        revision=st.sync_revision,
        health=st.health_status or "Unknown",
        healthMessage=scrub_message(app, st.health_message),
        operationPhase=op.phase.value if op is not None else "",
        operationMessage=scrub_message(app, op.message) if op is not None else "",
        automated=auto is not None,
        automatedPrune=bool(auto and auto.prune),
        automatedSelfHeal=bool(auto and auto.self_heal),
        suspended=spec.sync_policy.suspended,
        operationRequested=app.operation is not None,
        reconciledAt=st.reconciled_at,
        resources=st.total,
        conditions=[scrub_message(app, f"{c.type}: {c.message}") for c in st.conditions],
    )


def resource_item(app: Application, e: ResourceEntry) -> ResourceItem:
    """One object of ``app``; its messages scrubbed of the app's values only."""
    return ResourceItem(
        group=e.ref.group,
        kind=e.ref.kind,
        namespace=e.ref.namespace,
        name=e.ref.name,
        status=e.status,
        health=e.health,
        healthMessage=scrub_message(app, e.health_message),
        message=scrub_message(app, e.message),
        requiresPruning=e.requires_pruning,
    )


def history_item(h: HistoryEntry) -> HistoryItem:
    return HistoryItem(
        id=h.id,
        revision=h.revision,
        deployedAt=h.deployed_at,
        deployStartedAt=h.deploy_started_at,
        initiatedBy=h.initiated_by,
    )
