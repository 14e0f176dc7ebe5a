"""The application page: status, the resource tree, the node panel, history and
the operation dialogs, for one app (Argo CD's application details page).

Everything is rendered here from the same functions the REST API's routes are
(``api.apps``, ``api.app_resources``): the page shows what the API answers and
nothing else, and each partial is checked by RBAC exactly as its API route is
(``deps.visible_app``). The page is one full render; htmx then reloads its
parts (``/applications/{name}/part/...``) when the SSE stream says the app
changed, and fills the node panel from ``/applications/{name}/panel/{tab}``.
The operations (sync, rollback, refresh, terminate) are JSON calls of the API
made by ``static/app-page.js``.

A partial that fails answers with the error's status and a short message;
the page's script swaps it in anyway, so a 403 or the API server's refusal to
serve a log is read where the content would have been.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from gitmoor.engine import scrub_message
from gitmoor.engine.store import app_ref
from gitmoor.model import GitmoorError, JSONDict
from gitmoor.server.api import app_resources, apps
from gitmoor.server.auth.sessions import Session  # at run time: FastAPI resolves PageSession
from gitmoor.server.deps import server_state, visible_app
from gitmoor.server.redaction import scrub_request
from gitmoor.server.ui.pages import PageSession, render

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gitmoor.server.api.app_resources import AppTree, TreeNode
    from gitmoor.server.api.schemas import AppDetail

log = logging.getLogger("gitmoor.server.ui")

router = APIRouter(include_in_schema=False)

Tab = Literal["live", "desired", "diff", "events", "logs"]

#: the kinds the panel offers logs for (Argo CD: Pods, and workloads through their pods)
LOG_KINDS = frozenset({"Pod"})


@dataclass
class Node:
    """One box of the tree: the app, one of its objects or a live child."""

    group: str
    kind: str
    namespace: str
    name: str
    health: str = ""
    health_message: str = ""
    #: sync status; "" for live children, which Git does not declare
    sync: str = ""
    #: a line under the name: a pod's phase and readiness, "to prune", children left out
    note: str = ""
    children: list[Node] = field(default_factory=list)

    @property
    def id(self) -> str:
        # Stable across reloads of the tree, so the page keeps a node collapsed.
        key = "/".join((self.group, self.kind, self.namespace, self.name))
        return "n" + hashlib.sha256(key.encode()).hexdigest()[:12]

    @property
    def count(self) -> int:
        return sum(1 + c.count for c in self.children)


def _fail(
    request: Request, session: Session, e: HTTPException | GitmoorError, template: str
) -> HTMLResponse:
    if isinstance(e, HTTPException):
        status, detail = e.status_code, str(e.detail)
    else:
        status, detail = 502, str(e)
    # The API's error handlers scrub; a page calls the routes' functions directly,
    # so it scrubs here (the same policy: issue 13, the request's apps only).
    detail = scrub_request(detail)
    return render(request, template, session, status_code=status, status=status, detail=detail)


async def _detail(request: Request, session: Session, name: str) -> AppDetail:
    return await apps.get_application(name, session.principal, server_state(request))


async def _why(request: Request, session: Session, name: str) -> list[str]:
    """The lines of ``gitmoor app why`` (the API's ``GET …/why``), shown under the
    status; none when they cannot be worked out now (the page still shows the rest)."""
    try:
        answer = await apps.get_why(name, session.principal, server_state(request))
    except (HTTPException, GitmoorError) as e:
        log.info("event=why_unavailable app=%s error=%s", name, e)
        return []
    return answer.lines


def _obj(detail: AppDetail) -> str:
    """The RBAC object of the app (``deps.app_object``), from the API's view of it."""
    return f"{detail.project}/{detail.name}"


# ---------------------------------------------------------------------- the tree


def _note(n: TreeNode) -> str:
    parts: list[str] = []
    if n.pod is not None:
        ready = sum(c.ready for c in n.pod.containers)
        parts.append(f"{n.pod.phase} · {ready}/{len(n.pod.containers)} ready")
    if n.requiresPruning:
        parts.append("to prune")
    if n.childrenOmitted:
        parts.append(f"{n.childrenOmitted} more children not shown")
    return " · ".join(parts)


def nest(root: Node, nodes: Iterable[TreeNode]) -> Node:
    """Hang the tree route's nodes (depth first, each with its owners' uids) under
    ``root``: an app object (no owner in the tree) under the root, a child under
    its first owner already placed. An object with two owners is drawn once, as
    Argo CD's tree draws it; one whose owner is not listed goes under the root
    rather than nowhere."""
    by_uid: dict[str, Node] = {}
    for n in nodes:
        node = Node(
            n.group,
            n.kind,
            n.namespace,
            n.name,
            health=n.health.status,
            health_message=n.health.message,
            sync=n.status,
            note=_note(n),
        )
        parent = next((by_uid[u] for u in n.parentUids if u in by_uid), None)
        (parent.children if parent is not None else root.children).append(node)
        if n.uid:
            by_uid[n.uid] = node
    return root


async def tree_of(request: Request, session: Session, detail: AppDetail) -> tuple[Node, AppTree]:
    """The app as the root of its tree, from the API's tree route (:func:`nest`)."""
    state = server_state(request)
    ref = app_ref(detail.name, state.namespace)
    root = Node(
        ref.group,
        ref.kind,
        ref.namespace,
        ref.name,
        health=detail.health,
        health_message=detail.healthMessage,
        sync=detail.sync,
    )
    tree = await app_resources.get_tree(detail.name, session.principal, state)
    nest(root, tree.nodes)
    return root, tree


# ---------------------------------------------------------------------- page and parts


@router.get("/applications/{name}", response_class=HTMLResponse)
async def app_page(name: str, request: Request, session: PageSession) -> HTMLResponse:
    try:
        detail = await _detail(request, session, name)
        root, tree = await tree_of(request, session, detail)
    except (HTTPException, GitmoorError) as e:
        return _fail(request, session, e, "app/error.html")
    return render(
        request,
        "app.html",
        session,
        active="applications",
        app=detail,
        why=await _why(request, session, name),
        root=root,
        tree=tree,
        summary=detail.model_dump(exclude={"items", "history", "operation"}),
        rbac_object=_obj(detail),
    )


@router.get("/applications/{name}/part/status", response_class=HTMLResponse)
async def status_part(name: str, request: Request, session: PageSession) -> HTMLResponse:
    try:
        detail = await _detail(request, session, name)
    except (HTTPException, GitmoorError) as e:
        return _fail(request, session, e, "app/message.html")
    return render(
        request, "app/status.html", session, app=detail, why=await _why(request, session, name)
    )


@router.get("/applications/{name}/part/tree", response_class=HTMLResponse)
async def tree_part(name: str, request: Request, session: PageSession) -> HTMLResponse:
    try:
        detail = await _detail(request, session, name)
        root, tree = await tree_of(request, session, detail)
    except (HTTPException, GitmoorError) as e:
        return _fail(request, session, e, "app/message.html")
    return render(request, "app/tree.html", session, app=detail, root=root, tree=tree)


@router.get("/applications/{name}/part/history", response_class=HTMLResponse)
async def history_part(name: str, request: Request, session: PageSession) -> HTMLResponse:
    try:
        detail = await _detail(request, session, name)
    except (HTTPException, GitmoorError) as e:
        return _fail(request, session, e, "app/message.html")
    return render(request, "app/history.html", session, app=detail, rbac_object=_obj(detail))


@router.get("/applications/{name}/part/resources", response_class=HTMLResponse)
async def resources_part(name: str, request: Request, session: PageSession) -> HTMLResponse:
    """The sync dialog's checkbox list of the app's objects."""
    try:
        detail = await _detail(request, session, name)
    except (HTTPException, GitmoorError) as e:
        return _fail(request, session, e, "app/message.html")
    return render(request, "app/sync_resources.html", session, app=detail)


# ---------------------------------------------------------------------- the node panel


def _yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, width=120) if obj is not None else ""


def _without_managed_fields(obj: JSONDict | None) -> JSONDict | None:
    """The live manifest as a person reads it: without ``managedFields``, which
    Argo CD's manifest view hides by default too (its "Hide Managed Fields")."""
    if obj is None or not isinstance(obj.get("metadata"), dict):
        return obj
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": meta}


@router.get("/applications/{name}/panel/{tab}", response_class=HTMLResponse)
async def panel(
    name: str,
    tab: Tab,
    request: Request,
    session: PageSession,
    kind: Annotated[str, Query(min_length=1, max_length=253)],
    object_name: Annotated[str, Query(alias="name", min_length=1, max_length=253)],
    group: Annotated[str, Query(max_length=253)] = "",
    namespace: Annotated[str, Query(max_length=63)] = "",
    container: Annotated[str, Query(max_length=63)] = "",
    tail: Annotated[int, Query(ge=1, le=app_resources.LOG_TAIL_MAX)] = 200,
) -> HTMLResponse:
    """One tab of the panel of one node (the app itself is the node of kind
    Application). Each tab calls the API route of the same data, so it checks
    RBAC as the route does (``logs, get`` besides ``applications, get`` for logs)."""
    state = server_state(request)
    who = session.principal
    key = (group, kind, namespace, object_name)
    ctx: dict[str, Any] = {
        "tab": tab,
        "kind": kind,
        "group": group,
        "namespace": namespace,
        "name": object_name,
        "app_name": name,
    }
    try:
        app = visible_app(state, who, name)
        ref = app_ref(name, state.namespace)
        whole_app = (group, kind, object_name) == (ref.group, ref.kind, ref.name)
        if tab in ("live", "desired") and whole_app:
            raw = dict(app.raw)
            if tab == "desired":  # what was declared: the spec, without what gitmoor reports
                raw.pop("status", None)
            # The status quotes messages of the API server and tools (conditions,
            # operation, per-object): scrubbed as the API's views of it are.
            ctx.update(text=scrub_message(app, _yaml(raw)), empty="")
        elif tab in ("live", "desired"):
            m = await app_resources.get_resource(
                name, who, state, kind, object_name, group, "", namespace
            )
            if tab == "live":
                ctx.update(text=_yaml(_without_managed_fields(m.live)))
                ctx["empty"] = "This object is not in the cluster."
            else:
                ctx.update(
                    text=m.desiredYaml,
                    revision=m.revision,
                    empty=m.desiredError
                    or "Git does not declare this object: the cluster made it for its owner.",
                )
        elif tab == "diff":
            diff = await apps.get_diff(name, who, state, None)
            ctx.update(
                revision=diff.revision,
                diffs=[
                    d
                    for d in diff.items
                    if whole_app or (d.group, d.kind, d.namespace, d.name) == key
                ],
            )
        elif tab == "events":
            events = (await app_resources.get_events(name, who, state)).items
            if not whole_app:
                events = [
                    e
                    for e in events
                    if (e.involvedObject.kind, e.involvedObject.namespace, e.involvedObject.name)
                    == (kind, namespace, object_name)
                ]
            ctx["events"] = events
        else:
            if kind not in LOG_KINDS:
                raise HTTPException(400, "logs are shown for Pods")
            ctx.update(await _logs(name, request, session, namespace, object_name, container, tail))
    except (HTTPException, GitmoorError) as e:
        return _fail(request, session, e, "app/message.html")
    template = "manifest" if tab in ("live", "desired") else tab
    return render(request, f"app/panel_{template}.html", session, **ctx)


async def _logs(
    name: str,
    request: Request,
    session: Session,
    namespace: str,
    pod: str,
    container: str,
    tail: int,
) -> dict[str, Any]:
    state = server_state(request)
    who = session.principal
    m = await app_resources.get_resource(name, who, state, "Pod", pod, "", "", namespace)
    spec = (m.live or {}).get("spec") or {}
    containers = [
        str(c.get("name"))
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        if isinstance(c, dict)
    ]
    container = container or (containers[0] if containers else "")
    ctx: dict[str, Any] = {"containers": containers, "container": container, "tail": tail}
    try:
        response = await app_resources.get_logs(
            name,
            who,
            state,
            namespace,
            pod,
            container,
            tail,
            app_resources.LOG_BYTES_MAX,
            None,
            False,
        )
    except HTTPException as e:
        # The form stays, so another container or a retry is one click away.
        ctx.update(logs="", error=scrub_request(str(e.detail)), status=e.status_code)
        return ctx
    body = response.body if isinstance(response.body, bytes) else bytes(response.body)
    ctx.update(logs=body.decode("utf-8", errors="replace"), error="")
    return ctx
