"""Writing what the server manages: applications, projects, repositories, clusters.

The routes are drivers over the same stores the CLI uses (``gitmoor.engine.store``
for Applications, ``gitmoor.settings`` for AppProjects, repository and cluster
Secrets), so an app created here is the object ``gitmoor app create`` writes, and
a cascade delete is ``Engine.delete`` (only objects that carry the app's tracking
id). Reads before a write go to the API server, not the watch cache: a write
must see the object as it is now (its resourceVersion), and an app created a
moment ago may not have reached the cache yet.

Authorization follows Argo CD's API server (``server/application``,
``server/project``, ``server/repository``, ``server/cluster``):

- applications: ``create`` on ``PROJECT/NAME`` of the new app's project;
  ``update`` on both the old and the new ``PROJECT/NAME`` when a spec moves an
  app between projects (``Update`` checks both); ``delete`` on ``PROJECT/NAME``.
  A caller who may not ``get`` the app gets 403 whether or not it exists.
- projects: ``get/create/update/delete`` on the project's name.
- repositories: on the URL, or ``PROJECT/URL`` for credentials scoped to a
  project (Argo CD's project-scoped repositories).
- clusters: on the cluster's API server URL, Argo CD's object for clusters.

Credentials are write-only, as Argo CD's ``RepositoryService`` and
``ClusterService`` strip them from every answer: a repository is listed with
its URL, type, project and whether a user name is stored; a cluster with its
name and server; the ``config`` of a cluster Secret (token, client key, CA) is
never read into a response. Credential fields are ``SecretStr`` so that no
repr or log line of a request model can show them, and the bodies that carry
them refuse an unknown field by name (a 400 naming the key) instead of by
pydantic's 422, which would echo the value.

Every state-changing call is audited (``Audit.record``) once authenticated:
its outcome on success, ``denied`` for a 403 and ``error`` for any other
refusal, with the object it concerned (the Application, AppProject or Secret).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from gitmoor.engine import store
from gitmoor.kube import ApiError, ConflictError
from gitmoor.model import GitmoorError, ObjectRef, UserInputError
from gitmoor.model.application import (
    AppSource,
    Automated,
    Destination,
    HelmSource,
    application_manifest,
    parse_application,
)
from gitmoor.model.project import (
    AppProject,
    DestinationServiceAccount,
    GroupKind,
    ProjectDestination,
)
from gitmoor.server.api.schemas import AppSummary, Model, ObjectKey, summary
from gitmoor.server.deps import Caller, State, allowed, authorize, client_address
from gitmoor.settings import clusters as cluster_store
from gitmoor.settings import (
    create_project,
    delete_project,
    get_project,
    list_projects,
    project_ref,
    update_project,
)
from gitmoor.settings import repos as repo_store
from gitmoor.source import check_repo_url, redact_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import ClusterConfig
    from gitmoor.model.application import Application
    from gitmoor.server.auth.principal import Principal
    from gitmoor.server.state import ServerState

log = logging.getLogger("gitmoor.server.crud")

router = APIRouter()

#: a Kubernetes object name (DNS-1123 subdomain), which Applications and
#: AppProjects must be: checked here so that the answer is a 400 naming the rule
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class Problem(BaseModel):
    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "invalid input (the detail names the field); nothing was written",
        401: "no credentials, or credentials that are not valid",
        403: "the RBAC policy does not allow this",
        404: "no such object",
        409: "it exists already (use upsert), it changed meanwhile, or it is in use",
        502: "the Kubernetes API server refused or failed",
    }
    return {c: {"model": Problem, "description": what[c]} for c in (401, *codes)}


#: an Application's or AppProject's name in a path: an object name, so that no
#: value (``..``) can change the meaning of the API server URL it is put into
Name = Annotated[
    str, Path(description="the object's name", max_length=253, pattern=_OBJECT_NAME.pattern)
]
ClusterName = Annotated[str, Path(description="the registered cluster's name", max_length=253)]


# ------------------------------------------------------------------ auditing


@dataclass
class _Outcome:
    """What a route reports to the audit trail once it knows."""

    target: ObjectRef
    result: str = "ok"
    message: str = ""


@contextlib.asynccontextmanager
async def _audited(
    state: ServerState, request: Request, who: Principal, action: str, target: ObjectRef
) -> AsyncIterator[_Outcome]:
    """Record the call's outcome, success or refusal; map API server refusals
    of the input (400/422: a name or field the CRD schema refuses) to 400 and
    write conflicts to 409, so that they are not reported as a 502."""
    outcome = _Outcome(target)

    async def record(result: str, message: str) -> None:
        await state.audit.record(
            who=who.name,
            action=action,
            target=outcome.target,
            result=result,
            address=client_address(request),
            message=message,
        )

    try:
        yield outcome
    except HTTPException as e:
        await record("denied" if e.status_code == 403 else "error", f"{e.status_code}: {e.detail}")
        raise
    except ConflictError as e:
        await record("error", f"409: {e}")
        raise HTTPException(409, f"{outcome.target} changed meanwhile; try again") from e
    except ApiError as e:
        await record("error", f"{e.code}: {e}")
        if e.code in (400, 422):
            raise HTTPException(400, str(e)) from e
        raise
    except GitmoorError as e:
        await record("error", str(e))
        raise
    await record(outcome.result, outcome.message)


def _check_name(name: str, what: str) -> None:
    if not _OBJECT_NAME.match(name):
        raise UserInputError(
            f"{what} name {name!r} is not a Kubernetes object name: lowercase letters, "
            "digits, '-' and '.', starting and ending with a letter or digit, at most 253",
            concerns=f"{what} {name}",
        )


def _denied(resource: str, action: str, obj: str) -> HTTPException:
    return HTTPException(403, f"permission denied: {resource}, {action}, {obj}")


# ------------------------------------------------------------------ applications


class AutomatedPolicy(Model):
    prune: bool = Field(default=False, description="delete what Git no longer declares")
    selfHeal: bool = Field(default=False, description="revert drift in the cluster")
    allowEmpty: bool = Field(default=False, description="allow syncing a render with no objects")


class SyncPolicyBody(Model):
    automated: AutomatedPolicy | None = Field(
        default=None, description="sync automatically on changes; null: only when asked"
    )
    syncOptions: list[str] = Field(
        default_factory=list, description="Argo CD's sync options, e.g. CreateNamespace=true"
    )
    suspended: bool = Field(default=False, description="automation paused (`gitmoor app suspend`)")


class HelmBody(Model):
    releaseName: str = Field(default="", description="the Helm release name ('' : the app's name)")
    valueFiles: list[str] = Field(default_factory=list, description="value files in the repo")
    values: dict[str, Any] = Field(default_factory=dict, description="values, as an object")


class DestinationBody(Model):
    name: str = Field(
        default="", description="a registered cluster; '' or in-cluster: gitmoor's own"
    )
    namespace: str = Field(description="the namespace to deploy into")


class AppSpecBody(Model):
    """An Application's spec, flat, in the CRD's field names. Fields the body does
    not describe (``ignoreDifferences``, ``revisionHistoryLimit``, retry and
    refresh interval) are kept as they are by an update."""

    project: str = Field(default="default", description="the AppProject whose rules the app keeps")
    repoURL: str = Field(description="Git repository URL (https, ssh, git@host:org/repo, file://)")
    path: str = Field(default=".", description="path of the app inside the repository")
    targetRevision: str = Field(default="HEAD", description="branch, tag, commit or semver range")
    destination: DestinationBody
    syncPolicy: SyncPolicyBody = SyncPolicyBody()
    helm: HelmBody | None = None


class AppCreate(AppSpecBody):
    name: str = Field(description="the Application's name", max_length=253)


class AutomationBody(Model):
    """Switch automated sync on or off, and pause or resume it. A field left out
    is left as it is; ``automated: null`` switches automated sync off."""

    automated: AutomatedPolicy | None = Field(
        default=None, description="the automated policy to set; null: off; absent: unchanged"
    )
    suspended: bool | None = Field(default=None, description="pause (true) or resume (false)")


class AppDeleted(Model):
    message: str
    deleted: list[ObjectKey] = Field(description="the objects deleted with the app (cascade)")
    left: list[ObjectKey] = Field(
        default_factory=list,
        description="the objects left in place because the app's destination cluster is "
        "no longer registered (Argo CD deletes such an app without reaching them)",
    )
    unreachableCluster: str = Field(
        default="", description="that cluster's name; empty when the cluster was reached"
    )


def _app_manifest(name: str, namespace: str, body: AppSpecBody) -> dict[str, Any]:
    """The Application ``gitmoor app create`` would write, validated as the
    controller will read it (``parse_application``) before anything is written."""
    _check_name(name, "application")
    _check_name(body.project, "project")  # it goes into a GET of the project
    check_repo_url(body.repoURL)  # well formed, and no credentials in a spec
    helm = body.helm or HelmBody()
    policy = body.syncPolicy
    auto = policy.automated
    manifest = application_manifest(
        name,
        namespace,
        AppSource(
            repo_url=body.repoURL,
            path=body.path,
            target_revision=body.targetRevision,
            helm=HelmSource(
                release_name=helm.releaseName,
                value_files=tuple(helm.valueFiles),
                values=dict(helm.values),
            ),
        ),
        Destination(namespace=body.destination.namespace, name=body.destination.name),
        project=body.project,
        automated=Automated(prune=auto.prune, self_heal=auto.selfHeal, allow_empty=auto.allowEmpty)
        if auto is not None
        else None,
        sync_options=tuple(policy.syncOptions),
    )
    if policy.suspended:
        manifest["spec"].setdefault("syncPolicy", {})["suspended"] = True
    parse_application(manifest)
    return manifest


async def _require_project(state: ServerState, name: str) -> None:
    """Argo CD refuses an app whose project does not exist ("application references
    project X which does not exist"); the engine would refuse every sync of it."""
    if await get_project(state.kube, name, state.namespace) is None:
        raise UserInputError(
            f"project {name} does not exist; create it first (POST /api/v1/projects)",
            concerns=f"AppProject {name}",
        )


def _project_of(raw: dict[str, Any]) -> str:
    spec = raw.get("spec")
    project = spec.get("project") if isinstance(spec, dict) else None
    return str(project or "default")


async def _app_for_write(
    state: ServerState, who: Principal, name: str, action: str
) -> dict[str, Any]:
    """The Application object as the API server has it now, if the caller may
    ``action`` it; the same 403-or-404 rule as ``deps.visible_app``."""
    raw = await state.kube.get(store.app_ref(name, state.namespace))
    if raw is None:
        if allowed(state, who, "applications", "get", f"*/{name}"):
            raise HTTPException(404, f"application {name} not found")
        raise _denied("applications", action, name)
    obj = f"{_project_of(raw)}/{name}"
    if not allowed(state, who, "applications", "get", obj):
        raise _denied("applications", action, name)
    authorize(state, who, "applications", action, obj)
    return raw


async def _replace_spec(
    state: ServerState, raw: dict[str, Any], manifest: dict[str, Any]
) -> Application:
    """Write what ``manifest`` describes into the live object ``raw`` and replace it
    with its resourceVersion (a 409 when it changed since it was read). Spec
    fields the API's body does not describe (``ignoreDifferences``,
    ``revisionHistoryLimit``, retry, refresh interval) are kept, so an edit
    through the API never drops what ``kubectl`` or Git set. A merge patch or a
    server-side apply would not do: the first cannot drop an ``automated``
    it does not name, and the second drops only fields applied by it before."""
    new = manifest["spec"]
    spec = dict(raw.get("spec") or {})
    for key in ("project", "source", "destination"):
        spec[key] = new[key]
    old_policy = spec.get("syncPolicy")
    policy = {
        k: v
        for k, v in (old_policy if isinstance(old_policy, dict) else {}).items()
        if k not in ("automated", "syncOptions", "suspended")
    } | dict(new.get("syncPolicy") or {})
    if policy:
        spec["syncPolicy"] = policy
    else:
        spec.pop("syncPolicy", None)
    meta = {k: v for k, v in (raw.get("metadata") or {}).items() if k != "managedFields"}
    obj = {**raw, "metadata": meta, "spec": spec}
    parse_application(obj)  # the kept fields with the new ones
    ref = store.app_ref(str(meta.get("name", "")), state.namespace)
    return parse_application(await state.kube.replace(ref, obj))


def _parsed(raw: dict[str, Any]) -> Application:
    try:
        return parse_application(raw)
    except UserInputError as e:
        name = (raw.get("metadata") or {}).get("name", "")
        raise UserInputError(
            f"application {name} has an invalid spec ({e}); correct it with PUT first",
            concerns=f"Application {name}",
        ) from e


@router.post(
    "/applications",
    tags=["applications"],
    status_code=201,
    response_model=AppSummary,
    summary="Create an application (or, with upsert, replace its spec)",
    description=(
        "The body is the app's spec in the CRD's field names, flat (name, project, repoURL, "
        "path, targetRevision, destination, syncPolicy, helm). It is validated as the "
        "controller reads it before anything is written; the project must exist. Needs "
        "`applications, create, PROJECT/NAME`; with `upsert` over an existing app also "
        "`applications, update` on its current and its new project, and the answer is 200."
    ),
    responses={
        200: {"model": AppSummary, "description": "an existing app's spec replaced (upsert)"},
        **_errors(400, 403, 409, 502),
    },
)
async def create_application(
    body: AppCreate,
    who: Caller,
    state: State,
    request: Request,
    response: Response,
    upsert: Annotated[bool, Query(description="replace the spec of an existing app")] = False,
) -> AppSummary:
    ref = store.app_ref(body.name, state.namespace)
    async with _audited(state, request, who, "create", ref) as outcome:
        obj = f"{body.project}/{body.name}"
        authorize(state, who, "applications", "create", obj)
        manifest = _app_manifest(body.name, state.namespace, body)
        await _require_project(state, body.project)
        existing = await state.kube.get(ref)
        if existing is None:
            try:
                app = parse_application(await state.kube.create(manifest))
            except ConflictError as e:
                raise HTTPException(409, f"application {body.name} already exists") from e
            outcome.result = "created"
        else:
            if not upsert:
                raise HTTPException(
                    409, f"application {body.name} already exists (upsert=true replaces its spec)"
                )
            authorize(state, who, "applications", "update", f"{_project_of(existing)}/{body.name}")
            authorize(state, who, "applications", "update", obj)
            app = await _replace_spec(state, existing, manifest)
            outcome.result = "updated"
            response.status_code = 200
        outcome.message = f"{redact_url(body.repoURL)} {body.path}@{body.targetRevision}"
    return summary(app)


@router.put(
    "/applications/{name}",
    tags=["applications"],
    response_model=AppSummary,
    summary="Replace an application's spec",
    description=(
        "Replaces what the body describes (project, source, destination, automated policy, "
        "sync options, suspended); other spec fields are kept. Written with the object's "
        "resourceVersion: 409 when it changed meanwhile. Needs `applications, update` on "
        "the app's current `PROJECT/NAME` and on the new one, as Argo CD checks both."
    ),
    responses=_errors(400, 403, 404, 409, 502),
)
async def update_application(
    name: Name, body: AppSpecBody, who: Caller, state: State, request: Request
) -> AppSummary:
    ref = store.app_ref(name, state.namespace)
    async with _audited(state, request, who, "update", ref) as outcome:
        raw = await _app_for_write(state, who, name, "update")
        authorize(state, who, "applications", "update", f"{body.project}/{name}")
        manifest = _app_manifest(name, state.namespace, body)
        await _require_project(state, body.project)
        app = await _replace_spec(state, raw, manifest)
        outcome.result = "updated"
        moved = _project_of(raw) != body.project
        outcome.message = f"spec replaced{' (project ' + body.project + ')' if moved else ''}"
    return summary(app)


@router.post(
    "/applications/{name}/automation",
    tags=["applications"],
    response_model=AppSummary,
    summary="Switch automated sync on or off; suspend or resume the app's automation",
    description=(
        '`{"automated": {"prune": true, "selfHeal": true}}` switches automated sync on, '
        '`{"automated": null}` off; `{"suspended": true}` pauses automation (status keeps '
        "being refreshed), `false` resumes it. Needs `applications, update, PROJECT/NAME`."
    ),
    responses=_errors(400, 403, 404, 409, 502),
)
async def set_automation(
    name: Name, body: AutomationBody, who: Caller, state: State, request: Request
) -> AppSummary:
    ref = store.app_ref(name, state.namespace)
    async with _audited(state, request, who, "automation", ref) as outcome:
        app = _parsed(await _app_for_write(state, who, name, "update"))
        policy: dict[str, Any] = {}
        said: list[str] = []
        if "automated" in body.model_fields_set:
            auto = body.automated
            policy["automated"] = (
                None
                if auto is None
                else {"prune": auto.prune, "selfHeal": auto.selfHeal, "allowEmpty": auto.allowEmpty}
            )
            said.append("automated sync " + ("off" if auto is None else "on"))
        if body.suspended is not None:
            policy["suspended"] = body.suspended
            said.append("suspended" if body.suspended else "resumed")
        if not policy:
            raise UserInputError("nothing to change: give automated and/or suspended")
        app = await store.patch_spec(state.kube, app, {"syncPolicy": policy})
        outcome.result = "updated"
        outcome.message = ", ".join(said)
    return summary(app)


@router.delete(
    "/applications/{name}",
    tags=["applications"],
    response_model=AppDeleted,
    summary="Delete an application (with cascade, also the objects it deployed)",
    description=(
        "With `cascade=true` (the default, as `gitmoor app delete`) the objects the app "
        "owns (those carrying its tracking id, and not marked Delete=false) are deleted "
        "first; automation is switched off before, so the controller re-creates nothing. "
        "If an object cannot be deleted (an API error), the app is kept and the answer "
        "(502) names the objects: delete again once the cause is fixed. If the app's "
        "destination cluster is no longer registered, the app is deleted and its objects "
        "are left there (`left`, `unreachableCluster`), as Argo CD does. "
        "Needs `applications, delete, PROJECT/NAME`."
    ),
    responses=_errors(400, 403, 404, 502),
)
async def delete_application(
    name: Name,
    who: Caller,
    state: State,
    request: Request,
    cascade: Annotated[
        bool, Query(description="also delete the app's objects (only those it owns)")
    ] = True,
) -> AppDeleted:
    ref = store.app_ref(name, state.namespace)
    async with _audited(state, request, who, "delete", ref) as outcome:
        app = _parsed(await _app_for_write(state, who, name, "delete"))
        result = await state.engine.delete(app, cascade=cascade)
        outcome.result = "deleted"
        outcome.message = (
            f"cascade: {len(result.deleted)} object(s) deleted" if cascade else "objects kept"
        ) + (f"; {result.note}" if result.note else "")
    return AppDeleted(
        message=f"application {name} deleted"
        + ("" if cascade else " (its objects were kept)")
        + (f"; {result.note}" if result.note else ""),
        deleted=[
            ObjectKey(group=r.group, kind=r.kind, namespace=r.namespace, name=r.name)
            for r in result.deleted
        ],
        left=[
            ObjectKey(group=r.group, kind=r.kind, namespace=r.namespace, name=r.name)
            for r in result.left
        ],
        unreachableCluster=result.unreachable_cluster,
    )


# ------------------------------------------------------------------ projects


class GroupKindBody(Model):
    group: str = Field(default="", description="API group ('' for the core group); a glob")
    kind: str = Field(description="a glob")


class ProjectDestinationBody(Model):
    namespace: str = Field(description="namespace glob; '!' in front denies")
    name: str = Field(
        default="", description="registered cluster name glob (in-cluster: gitmoor's own)"
    )
    server: str = Field(default="", description="API server URL glob")


class DestinationServiceAccountBody(Model):
    defaultServiceAccount: str = Field(description="NAME or NAMESPACE:NAME")
    namespace: str = "*"
    server: str = ""
    name: str = ""


class ProjectSpecBody(Model):
    """An AppProject's spec in the CRD's (Argo CD's) field names."""

    description: str = ""
    sourceRepos: list[str] = Field(
        default_factory=list, description="permitted repository URL globs ('!' denies)"
    )
    destinations: list[ProjectDestinationBody] = Field(default_factory=list)
    clusterResourceWhitelist: list[GroupKindBody] = Field(
        default_factory=list, description="permitted cluster-scoped kinds (none by default)"
    )
    clusterResourceBlacklist: list[GroupKindBody] = Field(default_factory=list)
    namespaceResourceWhitelist: list[GroupKindBody] | None = Field(
        default=None, description="null: every namespaced kind; []: none"
    )
    namespaceResourceBlacklist: list[GroupKindBody] = Field(default_factory=list)
    destinationServiceAccounts: list[DestinationServiceAccountBody] = Field(
        default_factory=list, description="the ServiceAccount syncs to a destination act as"
    )


class ProjectBody(ProjectSpecBody):
    name: str = Field(description="the project's name (spec.project of its apps)", max_length=253)


class Message(Model):
    message: str


def _kinds(items: list[GroupKindBody]) -> tuple[GroupKind, ...]:
    return tuple(GroupKind(g.group, g.kind) for g in items)


def _project(name: str, namespace: str, body: ProjectSpecBody) -> AppProject:
    _check_name(name, "project")
    return AppProject(
        name=name,
        namespace=namespace,
        description=body.description,
        source_repos=tuple(body.sourceRepos),
        destinations=tuple(
            ProjectDestination(namespace=d.namespace, name=d.name, server=d.server)
            for d in body.destinations
        ),
        cluster_resource_whitelist=_kinds(body.clusterResourceWhitelist),
        cluster_resource_blacklist=_kinds(body.clusterResourceBlacklist),
        namespace_resource_whitelist=None
        if body.namespaceResourceWhitelist is None
        else _kinds(body.namespaceResourceWhitelist),
        namespace_resource_blacklist=_kinds(body.namespaceResourceBlacklist),
        destination_service_accounts=tuple(
            DestinationServiceAccount(
                s.defaultServiceAccount, namespace=s.namespace, server=s.server, name=s.name
            )
            for s in body.destinationServiceAccounts
        ),
    )


def _project_view(p: AppProject) -> ProjectBody:
    def kinds(items: tuple[GroupKind, ...]) -> list[GroupKindBody]:
        return [GroupKindBody(group=g.group, kind=g.kind) for g in items]

    return ProjectBody(
        name=p.name,
        description=p.description,
        sourceRepos=list(p.source_repos),
        destinations=[
            ProjectDestinationBody(namespace=d.namespace, name=d.name, server=d.server)
            for d in p.destinations
        ],
        clusterResourceWhitelist=kinds(p.cluster_resource_whitelist),
        clusterResourceBlacklist=kinds(p.cluster_resource_blacklist),
        namespaceResourceWhitelist=None
        if p.namespace_resource_whitelist is None
        else kinds(p.namespace_resource_whitelist),
        namespaceResourceBlacklist=kinds(p.namespace_resource_blacklist),
        destinationServiceAccounts=[
            DestinationServiceAccountBody(
                defaultServiceAccount=s.default_service_account,
                namespace=s.namespace,
                server=s.server,
                name=s.name,
            )
            for s in p.destination_service_accounts
        ],
    )


@router.get(
    "/projects",
    tags=["projects"],
    response_model=list[ProjectBody],
    summary="List the projects the caller may get",
    responses=_errors(502),
)
async def list_project_views(who: Caller, state: State) -> list[ProjectBody]:
    return [
        _project_view(p)
        for p in await list_projects(state.kube, state.namespace)
        if allowed(state, who, "projects", "get", p.name)
    ]


@router.get(
    "/projects/{name}",
    tags=["projects"],
    response_model=ProjectBody,
    summary="One project",
    responses=_errors(403, 404, 502),
)
async def get_project_view(name: Name, who: Caller, state: State) -> ProjectBody:
    authorize(state, who, "projects", "get", name)
    project = await get_project(state.kube, name, state.namespace)
    if project is None:
        raise HTTPException(404, f"project {name} not found")
    return _project_view(project)


@router.post(
    "/projects",
    tags=["projects"],
    status_code=201,
    response_model=ProjectBody,
    summary="Create a project (or, with upsert, replace it)",
    description="Needs `projects, create, NAME` (and `projects, update, NAME` to replace one, "
    "which answers 200).",
    responses={
        200: {"model": ProjectBody, "description": "an existing project replaced (upsert)"},
        **_errors(400, 403, 409, 502),
    },
)
async def create_project_view(
    body: ProjectBody,
    who: Caller,
    state: State,
    request: Request,
    response: Response,
    upsert: Annotated[bool, Query(description="replace an existing project")] = False,
) -> ProjectBody:
    async with _audited(
        state, request, who, "create", project_ref(body.name, state.namespace)
    ) as outcome:
        authorize(state, who, "projects", "create", body.name)
        project = _project(body.name, state.namespace, body)
        exists = await get_project(state.kube, body.name, state.namespace) is not None
        if exists and not upsert:
            raise HTTPException(
                409, f"project {body.name} already exists (upsert=true replaces it)"
            )
        if exists:
            authorize(state, who, "projects", "update", body.name)
            # Replaced whole with its resourceVersion, as PUT: a server-side apply
            # would keep list entries it did not write itself.
            saved = await update_project(state.kube, body.name, state.namespace, lambda _: project)
            response.status_code = 200
        else:
            saved = await create_project(state.kube, project)
        outcome.result = "updated" if exists else "created"
    return _project_view(saved)


@router.put(
    "/projects/{name}",
    tags=["projects"],
    response_model=ProjectBody,
    summary="Replace a project's spec",
    description="Written with the object's resourceVersion, retried on a concurrent change. "
    "Needs `projects, update, NAME`.",
    responses=_errors(400, 403, 404, 409, 502),
)
async def update_project_view(
    name: Name, body: ProjectSpecBody, who: Caller, state: State, request: Request
) -> ProjectBody:
    async with _audited(state, request, who, "update", project_ref(name, state.namespace)) as o:
        authorize(state, who, "projects", "update", name)
        project = _project(name, state.namespace, body)
        if await get_project(state.kube, name, state.namespace) is None:
            raise HTTPException(404, f"project {name} not found")
        saved = await update_project(state.kube, name, state.namespace, lambda _: project)
        o.result = "updated"
    return _project_view(saved)


@router.delete(
    "/projects/{name}",
    tags=["projects"],
    response_model=Message,
    summary="Delete a project no application uses",
    description="Refused with 409 while applications name it, as `gitmoor proj delete` and "
    'Argo CD ("project is referenced by N applications") refuse. '
    "Needs `projects, delete, NAME`.",
    responses=_errors(400, 403, 404, 409, 502),
)
async def delete_project_view(name: Name, who: Caller, state: State, request: Request) -> Message:
    async with _audited(state, request, who, "delete", project_ref(name, state.namespace)) as o:
        authorize(state, who, "projects", "delete", name)
        if await get_project(state.kube, name, state.namespace) is None:
            raise HTTPException(404, f"project {name} not found")
        # The API server's list, not the watch cache: an app created a moment ago counts.
        users = [
            a.name
            for a in await store.list_apps(state.kube, state.namespace)
            if a.spec.project == name
        ]
        if users:
            raise HTTPException(
                409,
                f"project {name} is used by {len(users)} application(s): {', '.join(users)}; "
                "move or delete them first",
            )
        if not await delete_project(state.kube, name, state.namespace):
            raise HTTPException(404, f"project {name} not found")
        o.result = "deleted"
    return Message(message=f"project {name} deleted")


# ------------------------------------------------------------------ repositories


class _WriteOnly(BaseModel):
    """A body carrying credentials: unknown keys are refused by the route, by name
    (``extra=forbid`` would answer 422 with the value echoed)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def refuse_unknown(self, where: str) -> None:
        extra = sorted(self.model_extra or {})
        if extra:
            raise UserInputError(f"{where}: unknown field(s) {', '.join(extra)}", concerns=where)


class RepoCreate(_WriteOnly):
    url: str = Field(description="repository URL, or a prefix shared by many repositories")
    username: str | None = Field(default=None, description="https user name")
    password: SecretStr | None = Field(
        default=None, description="https password or token (write-only)"
    )
    sshPrivateKey: SecretStr | None = Field(
        default=None, description="ssh private key (write-only)"
    )
    knownHosts: str | None = Field(
        default=None, description="OpenSSH known_hosts lines for the server"
    )
    insecureIgnoreHostKey: bool = Field(default=False, description="skip ssh host key checks")
    project: str = Field(
        default="",
        description="only this project's apps use these credentials ('' : every project)",
    )


class RepoView(Model):
    url: str = Field(description="the URL (prefix), without any userinfo")
    type: str = Field(default="git", description="always git")
    project: str = Field(description="the project the credentials are scoped to; '' : every one")
    auth: str = Field(description="https, ssh or none: which kind of credential is stored")
    hasUsername: bool = Field(description="whether a user name is stored")
    secret: str = Field(description="the Secret holding the credentials (in the apps namespace)")


def _repo_object(url: str, project: str) -> str:
    return f"{project}/{url}" if project else url


def _repo_view(e: repo_store.RepoEntry) -> RepoView:
    return RepoView(
        url=e.url, project=e.project, auth=e.auth, hasUsername=e.has_username, secret=e.name
    )


def _secret_ref(state: ServerState, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "Secret", state.namespace, name)


@router.get(
    "/repositories",
    tags=["repositories"],
    response_model=list[RepoView],
    summary="List repositories with stored credentials (never the credentials)",
    responses=_errors(502),
)
async def list_repositories(who: Caller, state: State) -> list[RepoView]:
    return [
        _repo_view(e)
        for e in await repo_store.list_repos(state.kube, state.namespace)
        if allowed(state, who, "repositories", "get", _repo_object(e.url, e.project))
    ]


@router.post(
    "/repositories",
    tags=["repositories"],
    status_code=201,
    response_model=RepoView,
    summary="Store credentials for a repository URL (prefix); write-only",
    description=(
        "Written to a labelled Secret in the apps namespace, the shape of Argo CD's "
        "repository Secrets; no response ever contains them. https: `username` + "
        "`password` (a token goes in `password`); ssh: `sshPrivateKey` (+ `knownHosts`). "
        "Needs `repositories, create, URL` (`PROJECT/URL` when scoped to a project)."
    ),
    responses=_errors(400, 403, 409, 502),
)
async def create_repository(
    body: RepoCreate,
    who: Caller,
    state: State,
    request: Request,
    upsert: Annotated[bool, Query(description="replace stored credentials")] = False,
) -> RepoView:
    secret = repo_store.secret_name(body.url, body.project)
    shown = redact_url(body.url)
    async with _audited(state, request, who, "create", _secret_ref(state, secret)) as outcome:
        authorize(state, who, "repositories", "create", _repo_object(shown, body.project))
        body.refuse_unknown("repository")
        check_repo_url(body.url)  # credentials go in their fields, never in the URL
        if body.password is not None and body.sshPrivateKey is not None:
            raise UserInputError("give https credentials or an ssh key, not both")
        if body.project:
            _check_name(body.project, "project")
        existing = [
            e for e in await repo_store.list_repos(state.kube, state.namespace) if e.name == secret
        ]
        if existing and not upsert:
            raise HTTPException(
                409, f"credentials for {shown} are stored already (upsert=true replaces them)"
            )
        if existing:
            authorize(state, who, "repositories", "update", _repo_object(shown, body.project))
        await repo_store.add_repo(
            state.kube,
            body.url,
            username=body.username,
            password=body.password.get_secret_value() if body.password else None,
            ssh_private_key=body.sshPrivateKey.get_secret_value() if body.sshPrivateKey else None,
            known_hosts=body.knownHosts,
            insecure_ignore_host_key=body.insecureIgnoreHostKey,
            namespace=state.namespace,
            project=body.project,
        )
        outcome.result = "updated" if existing else "created"
        outcome.message = f"repository {shown}" + (
            f" (project {body.project})" if body.project else ""
        )
    auth = "ssh" if body.sshPrivateKey else "https" if body.password else "none"
    return RepoView(
        url=shown, project=body.project, auth=auth, hasUsername=bool(body.username), secret=secret
    )


@router.delete(
    "/repositories",
    tags=["repositories"],
    response_model=Message,
    summary="Remove a repository's credentials",
    description="The URL is a query parameter (a URL does not fit a path segment). "
    "Needs `repositories, delete, URL` (`PROJECT/URL` when scoped).",
    responses=_errors(400, 403, 404, 502),
)
async def delete_repository(
    who: Caller,
    state: State,
    request: Request,
    url: Annotated[
        str, Query(description="the repository URL (prefix) as stored", max_length=2048)
    ],
    project: Annotated[str, Query(description="the project the credentials are scoped to")] = "",
) -> Message:
    secret = repo_store.secret_name(url, project)
    shown = redact_url(url)
    async with _audited(state, request, who, "delete", _secret_ref(state, secret)) as outcome:
        authorize(state, who, "repositories", "delete", _repo_object(shown, project))
        if not await repo_store.remove_repo(state.kube, url, state.namespace, project):
            raise HTTPException(
                404,
                f"no credentials stored for {shown}"
                + (f" in project {project}" if project else ""),
            )
        outcome.result = "deleted"
        outcome.message = f"repository {shown}"
    return Message(message=f"repository {shown} removed")


# ------------------------------------------------------------------ clusters


class TLSClientConfigBody(_WriteOnly):
    caData: str | None = Field(default=None, description="base64 of the CA's PEM")
    certData: str | None = Field(default=None, description="base64 of the client certificate's PEM")
    keyData: SecretStr | None = Field(
        default=None, description="base64 of the client key's PEM (write-only)"
    )
    insecure: bool = Field(default=False, description="skip TLS verification of the server")


class ClusterConfigBody(_WriteOnly):
    """Argo CD's ``ClusterConfig``: what ``gitmoor cluster add`` copies from a
    kubeconfig context. Other Argo CD fields (exec and AWS auth, basic auth,
    proxies) are refused by name: gitmoor would connect without them."""

    bearerToken: SecretStr | None = Field(default=None, description="a bearer token (write-only)")
    tlsClientConfig: TLSClientConfigBody = TLSClientConfigBody()


class ClusterCreate(_WriteOnly):
    name: str = Field(description="what spec.destination.name refers to", max_length=253)
    server: str = Field(description="the API server's URL")
    config: ClusterConfigBody = ClusterConfigBody()


class ClusterView(Model):
    name: str
    server: str
    secret: str = Field(description="the Secret registering it (in the apps namespace)")


def _config_document(c: ClusterConfigBody) -> dict[str, Any]:
    """The ``config`` JSON of the cluster Secret, unknown keys included so that
    ``config_from_secret`` refuses them by name."""
    tls: dict[str, Any] = dict(c.tlsClientConfig.model_extra or {})
    t = c.tlsClientConfig
    tls["insecure"] = t.insecure
    for key, value in (("caData", t.caData), ("certData", t.certData)):
        if value:
            tls[key] = value
    if t.keyData is not None:
        tls["keyData"] = t.keyData.get_secret_value()
    doc: dict[str, Any] = dict(c.model_extra or {})
    doc["tlsClientConfig"] = tls
    if c.bearerToken is not None:
        doc["bearerToken"] = c.bearerToken.get_secret_value()
    return doc


def _cluster_config(state: ServerState, body: ClusterCreate) -> ClusterConfig:
    """The body as ``kube.ClusterConfig``, through the parser the controller uses
    on the Secret, so the API accepts exactly what will work; errors name the
    field, never its value."""
    cluster_store.check_cluster_name(body.name)
    secret = {
        "metadata": {"namespace": state.namespace, "name": cluster_store.secret_name(body.name)},
        "stringData": {
            "name": body.name,
            "server": body.server,
            "config": json.dumps(_config_document(body.config)),
        },
    }
    config = cluster_store.config_from_secret(secret)
    # Known Argo CD fields gitmoor cannot honour were refused above by name, with
    # the reason; anything else unknown is refused here, by name too.
    body.refuse_unknown("cluster")
    body.config.refuse_unknown("cluster config")
    body.config.tlsClientConfig.refuse_unknown("cluster config.tlsClientConfig")
    return config


async def _cluster_entry(state: ServerState, name: str) -> cluster_store.ClusterEntry | None:
    found = [
        c for c in await cluster_store.list_clusters(state.kube, state.namespace) if c.name == name
    ]
    return found[0] if found else None


@router.get(
    "/clusters",
    tags=["clusters"],
    response_model=list[ClusterView],
    summary="List registered clusters: name and server, never credentials",
    description="The cluster gitmoor runs against is always available as `in-cluster` "
    "(or an empty destination name) and is not listed, as `gitmoor cluster list`.",
    responses=_errors(502),
)
async def list_cluster_views(who: Caller, state: State) -> list[ClusterView]:
    return [
        ClusterView(name=c.name, server=c.server, secret=c.secret)
        for c in await cluster_store.list_clusters(state.kube, state.namespace)
        if allowed(state, who, "clusters", "get", c.server)
    ]


@router.post(
    "/clusters",
    tags=["clusters"],
    status_code=201,
    response_model=ClusterView,
    summary="Register a destination cluster (credentials write-only)",
    description=(
        "The body is Argo CD's cluster: name, server and config (bearerToken or a client "
        "certificate in tlsClientConfig). Written to a labelled Secret in the apps namespace, "
        "as `gitmoor cluster add`. With `verify=true` the server first reaches the cluster "
        "with these credentials. Needs `clusters, create, SERVER`."
    ),
    responses=_errors(400, 403, 409, 502),
)
async def create_cluster(
    body: ClusterCreate,
    who: Caller,
    state: State,
    request: Request,
    upsert: Annotated[bool, Query(description="replace an existing registration")] = False,
    verify: Annotated[bool, Query(description="reach the cluster before registering it")] = False,
) -> ClusterView:
    target = _secret_ref(state, cluster_store.secret_name(body.name))
    async with _audited(state, request, who, "create", target) as outcome:
        authorize(state, who, "clusters", "create", body.server)
        config = _cluster_config(state, body)
        existing = await _cluster_entry(state, body.name)
        if existing is not None:
            outcome.target = _secret_ref(state, existing.secret)
            if not upsert:
                raise HTTPException(
                    409, f"cluster {body.name} is registered already (upsert=true replaces it)"
                )
            authorize(state, who, "clusters", "update", existing.server)
            authorize(state, who, "clusters", "update", body.server)
        if verify:
            try:
                await cluster_store.verify_cluster(config)
            except GitmoorError as e:
                raise UserInputError(
                    f"cannot reach {config.server} with these credentials: {e}",
                    concerns=f"cluster {body.name}",
                ) from e
        secret = await cluster_store.add_cluster(
            state.kube, body.name, config, namespace=state.namespace
        )
        outcome.target = _secret_ref(state, secret)
        outcome.result = "updated" if existing else "created"
        outcome.message = f"cluster {body.name} ({config.server})"
    return ClusterView(name=body.name, server=config.server, secret=secret)


@router.delete(
    "/clusters/{name}",
    tags=["clusters"],
    response_model=Message,
    summary="Remove a cluster's registration (its Secret)",
    description="Nothing in the cluster is deleted; apps that name it stop syncing with an "
    "error naming it. Needs `clusters, delete, SERVER`.",
    responses=_errors(400, 403, 404, 502),
)
async def delete_cluster(name: ClusterName, who: Caller, state: State, request: Request) -> Message:
    target = _secret_ref(state, cluster_store.secret_name(name))
    async with _audited(state, request, who, "delete", target) as outcome:
        entry = None if cluster_store.is_in_cluster(name) else await _cluster_entry(state, name)
        authorize(state, who, "clusters", "delete", entry.server if entry else name)
        if cluster_store.is_in_cluster(name):
            raise UserInputError(
                f"{cluster_store.IN_CLUSTER!r} is the cluster gitmoor runs against; "
                "it cannot be removed"
            )
        if entry is None:
            raise HTTPException(404, f"cluster {name} is not registered")
        outcome.target = _secret_ref(state, entry.secret)
        if not await cluster_store.remove_cluster(state.kube, name, state.namespace):
            raise HTTPException(404, f"cluster {name} is not registered")
        outcome.result = "deleted"
        outcome.message = f"cluster {name} ({entry.server})"
    return Message(message=f"cluster {name} removed")
