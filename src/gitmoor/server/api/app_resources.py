"""An application's live objects: the resource tree, one object's manifests,
Kubernetes Events and pod logs.

The tree is Argo CD's: the app's objects (``Engine.resources``, with the sync
status the last refresh wrote) and, under them, the live objects the cluster made
for them, found by ``metadata.ownerReferences`` uid as Argo CD's cluster cache
links them (gitops-engine ``pkg/cache`` ``IsParentOf``): ReplicaSets of a
Deployment, Pods of a ReplicaSet, StatefulSet, DaemonSet or Job, Jobs of a
CronJob, and the EndpointSlices of a Service (label ``kubernetes.io/service-name``,
the EndpointSlice controller's own link). Each child kind is listed once per
namespace per request, whatever the number of parents; the app's own objects are
listed once per kind and namespace by their instance label.

Every route reads only objects of the app: its resources and their children in
the tree, in the destination cluster. A request for any other object is a 404,
so these routes can never be used to read the cluster at large. Objects are masked by the app's Redactor (the one
redaction policy of issue 13, :mod:`gitmoor.server.redaction`): every Secret
value, and every field the app's or its project's ``spec.redactions`` names,
becomes ``<redacted:` + 8 hex + `>`` (the same value, the same mask: a changed
value shows as changed), where Argo CD masks Secrets only, with ``+``
characters. A masked object's ``last-applied-configuration`` annotation and
``managedFields`` are removed. Free text (health and tree messages, Events, a
pod's log, errors) is scrubbed of every value the app's objects hold, live or
rendered, once the route has seen them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import Field

from gitmoor.engine import health_of, redactor_for
from gitmoor.engine.store import app_ref
from gitmoor.kube import ApiError, ApiUnavailableError, UnknownKindError
from gitmoor.model import GitmoorError, JSONDict, ObjectRef
from gitmoor.model.application import INSTANCE_LABEL
from gitmoor.model.health import HealthStatus
from gitmoor.model.status import ResourceEntry
from gitmoor.secrets.redact import is_secret
from gitmoor.server.api.schemas import Model
from gitmoor.server.deps import (
    Caller,
    State,
    allowed,
    app_object,
    authorize,
    client_address,
    visible_app,
)
from gitmoor.server.redaction import app_redactor, scrubbed, secret_read_action

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application
    from gitmoor.secrets.redact import Redactor
    from gitmoor.server.state import ServerState

log = logging.getLogger("gitmoor.server")

router = APIRouter(tags=["applications"])

#: children shown under one object; the rest are counted (``childrenOmitted``)
CHILDREN_CAP = 200
#: nodes in one tree response, app objects included
TREE_NODES_CAP = 2000
#: Events in one response, newest first
EVENTS_CAP = 200
#: bounds of a log request: lines from the end, bytes, how long a follow lasts
LOG_TAIL_MAX = 5000
LOG_BYTES_MAX = 1 << 20
FOLLOW_MAX_SECONDS = 300

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

#: (group, version, kind) of a child kind
GVK = tuple[str, str, str]
REPLICASET: GVK = ("apps", "v1", "ReplicaSet")
POD: GVK = ("", "v1", "Pod")
JOB: GVK = ("batch", "v1", "Job")
ENDPOINTSLICE: GVK = ("discovery.k8s.io", "v1", "EndpointSlice")
EVENT: GVK = ("", "v1", "Event")

#: (group, kind) of a parent → the kinds of its children, as Argo CD's tree shows them
CHILD_KINDS: dict[tuple[str, str], tuple[GVK, ...]] = {
    ("apps", "Deployment"): (REPLICASET,),
    ("apps", "ReplicaSet"): (POD,),
    ("apps", "StatefulSet"): (POD,),
    ("apps", "DaemonSet"): (POD,),
    ("batch", "Job"): (POD,),
    ("batch", "CronJob"): (JOB,),
    ("", "Service"): (ENDPOINTSLICE,),
}
#: Deployment → ReplicaSet → Pod and CronJob → Job → Pod are the deepest chains
MAX_DEPTH = 2


# ---------------------------------------------------------------- response bodies


class NodeHealth(Model):
    status: str = Field(description="Healthy, Progressing, Degraded, Suspended, Missing, Unknown")
    message: str = ""


class ContainerView(Model):
    name: str
    image: str
    ready: bool
    restarts: int
    state: str = Field(description="running, waiting or terminated, with the reason if any")


class PodView(Model):
    phase: str = Field(description="the pod's phase, or the reason kubectl shows instead")
    containers: list[ContainerView]
    initContainers: list[ContainerView]


class TreeNode(Model):
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    uid: str = Field(description="'' for an app object absent from the cluster")
    parentUids: list[str] = Field(description="owners in this tree; [] for the app's objects")
    health: NodeHealth
    status: str = Field(
        description="sync status (Synced, OutOfSync, Unknown) of an app object; '' for a child"
    )
    requiresPruning: bool = False
    createdAt: str = ""
    pod: PodView | None = None
    childrenOmitted: int = Field(0, description="children beyond the cap, not listed")


class AppTree(Model):
    name: str
    nodes: list[TreeNode] = Field(
        description="the app's objects first, each followed by its children (depth first)"
    )
    truncated: bool = Field(description="some children were left out (see messages)")
    messages: list[str] = Field(description="what could not be read, what was left out")


class ResourceManifests(Model):
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    live: JSONDict | None = Field(description="the object in the cluster; null if absent")
    desired: JSONDict | None = Field(
        description="the object as rendered from git; null for a child or one not in git"
    )
    liveYaml: str = Field(description="`live` as YAML text; '' if absent")
    desiredYaml: str = Field(description="`desired` as YAML text; '' if absent")
    revision: str = Field(description="the commit `desired` was rendered at")
    desiredError: str = Field(description="why `desired` could not be rendered; '' if it was")


class RenderedManifests(Model):
    revision: str = Field(description="the commit rendered")
    manifests: list[JSONDict] = Field(description="every object the app renders, in order")
    yaml: str = Field(description="`manifests` as one multi-document YAML text")
    secretsShown: bool = Field(
        description="true: values are shown as rendered (showSecrets); false: masked"
    )


class InvolvedObject(Model):
    apiVersion: str
    kind: str
    namespace: str
    name: str
    uid: str


class EventView(Model):
    type: str = Field(description="Normal or Warning")
    reason: str
    message: str
    count: int
    firstTimestamp: str
    lastTimestamp: str
    source: str = Field(description="the component that reported it")
    involvedObject: InvolvedObject


class EventList(Model):
    items: list[EventView]
    truncated: bool = Field(description="older Events beyond the cap were left out")


# ---------------------------------------------------------------- the tree


@dataclass
class _Node:
    ref: ObjectRef
    live: JSONDict | None
    entry: ResourceEntry | None = None  # an app object (top level)
    parents: list[str] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return str(_meta(self.live).get("uid") or "")


@dataclass
class _Tree:
    top: list[_Node]
    kube: KubeClient
    messages: list[str]
    #: the app's, having learned every live object of the tree
    redactor: Redactor

    def walk(self) -> Iterable[_Node]:
        """Every node once, depth first (an object with two owners is met once)."""
        seen: set[int] = set()
        stack = list(reversed(self.top))
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            yield node
            stack.extend(reversed(node.children))

    def find(self, key: tuple[str, str, str, str]) -> _Node | None:
        return next((n for n in self.walk() if n.ref.key == key), None)


def _meta(obj: JSONDict | None) -> JSONDict:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, dict) else {}


def _ref(obj: JSONDict, gvk: GVK) -> ObjectRef:
    meta = _meta(obj)
    return ObjectRef(*gvk, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


async def _entries(state: ServerState, app: Application) -> list[ResourceEntry]:
    return [
        e
        for e in (ResourceEntry.from_dict(r) for r in await state.engine.resources(app))
        if e is not None
    ]


class _Lister:
    """One LIST per (kind, namespace, selector) per request, shared by every parent."""

    def __init__(self, kube: KubeClient, messages: list[str]) -> None:
        self.kube = kube
        self.messages = messages
        self._lists: dict[tuple[GVK, str, str], asyncio.Task[list[JSONDict]]] = {}

    async def _list(self, gvk: GVK, namespace: str, selector: str) -> list[JSONDict]:
        try:
            ar = await self.kube.resource(*gvk)
            return (await self.kube.list(ar, namespace, label_selector=selector or None)).items
        except UnknownKindError:
            return []  # a cluster without the kind (no EndpointSlice API) has no such children
        except (ApiError, ApiUnavailableError) as e:
            where = f" in {namespace}" if namespace else ""
            self.messages.append(f"cannot list {gvk[2]}{where}: {e}")
            return []

    async def list(self, gvk: GVK, namespace: str, selector: str = "") -> list[JSONDict]:
        key = (gvk, namespace, selector)
        if key not in self._lists:
            self._lists[key] = asyncio.ensure_future(self._list(gvk, namespace, selector))
        return await self._lists[key]


async def _app_objects(
    kube: KubeClient, lister: _Lister, app: Application, entries: list[ResourceEntry]
) -> list[_Node]:
    """The app's objects with their live state: one LIST per kind and namespace by
    the instance label every applied object carries, then a GET for an object the
    label missed (relabelled by hand) unless the last refresh found it Missing."""
    groups: dict[tuple[GVK, str], list[ResourceEntry]] = defaultdict(list)
    for e in entries:
        groups[((e.ref.group, e.ref.version, e.ref.kind), e.ref.namespace)].append(e)
    selector = f"{INSTANCE_LABEL}={app.name}"
    listed = await asyncio.gather(*(lister.list(gvk, ns, selector) for gvk, ns in groups))
    found: dict[tuple[str, str, str, str], JSONDict] = {}
    for (gvk, _ns), items in zip(groups, listed, strict=True):
        for obj in items:
            found[_ref(obj, gvk).key] = obj

    async def get(e: ResourceEntry) -> JSONDict | None:
        if e.ref.key in found or e.health == HealthStatus.MISSING.value:
            return found.get(e.ref.key)
        try:
            return await kube.get(e.ref)
        except UnknownKindError:
            return None
        except (ApiError, ApiUnavailableError) as err:
            lister.messages.append(f"cannot read {e.ref}: {err}")
            return None

    lives = await asyncio.gather(*(get(e) for e in entries))
    return [_Node(e.ref, live, entry=e) for e, live in zip(entries, lives, strict=True)]


def _owner_index(items: list[JSONDict]) -> dict[str, list[JSONDict]]:
    index: dict[str, list[JSONDict]] = defaultdict(list)
    for obj in items:
        for owner in _meta(obj).get("ownerReferences") or []:
            if isinstance(owner, dict) and owner.get("uid"):
                index[str(owner["uid"])].append(obj)
    return index


async def _tree(state: ServerState, app: Application) -> _Tree:
    """The app's objects and their live children, uncapped (routes cap what they show)."""
    entries = await _entries(state, app)
    kube = await state.engine.dest(app)
    messages: list[str] = []
    lister = _Lister(kube, messages)
    top = await _app_objects(kube, lister, app, entries)
    by_uid: dict[str, _Node] = {n.uid: n for n in top if n.uid}
    frontier = [n for n in top if n.live is not None]
    for _ in range(MAX_DEPTH + 1):
        wanted: dict[tuple[GVK, str], list[_Node]] = defaultdict(list)
        for parent in frontier:
            for gvk in CHILD_KINDS.get((parent.ref.group, parent.ref.kind), ()):
                wanted[(gvk, parent.ref.namespace)].append(parent)
        if not wanted:
            break
        listed = await asyncio.gather(*(lister.list(gvk, ns) for gvk, ns in wanted))
        frontier = []
        for ((gvk, _ns), parents), items in zip(wanted.items(), listed, strict=True):
            owned = _owner_index(items)
            by_service: dict[str, list[JSONDict]] = defaultdict(list)
            if gvk == ENDPOINTSLICE:
                for obj in items:
                    svc = (_meta(obj).get("labels") or {}).get(SERVICE_NAME_LABEL)
                    if svc:
                        by_service[str(svc)].append(obj)
            for parent in parents:
                kids = {str(_meta(o).get("uid")): o for o in owned.get(parent.uid, [])}
                if parent.ref.kind == "Service":
                    kids |= {str(_meta(o).get("uid")): o for o in by_service[parent.ref.name]}
                for uid, obj in sorted(kids.items(), key=lambda kv: str(_meta(kv[1]).get("name"))):
                    node = by_uid.get(uid)
                    if node is None:
                        node = by_uid[uid] = _Node(_ref(obj, gvk), obj)
                        frontier.append(node)
                    if parent.uid not in node.parents:
                        node.parents.append(parent.uid)
                        parent.children.append(node)
    tree = _Tree(top, kube, messages, await app_redactor(state, app))
    for node in tree.walk():
        # Every value the app's objects hold now is then known to scrub: an Event
        # or a log line that quotes one is caught even before any diff masked it.
        tree.redactor.learn(node.live)
    return tree


def _container_state(status: JSONDict) -> str:
    state = status.get("state") or {}
    for name in ("running", "waiting", "terminated"):
        if name in state:
            reason = (state.get(name) or {}).get("reason")
            return f"{name}: {reason}" if reason else name
    return "unknown"


def _containers(specs: Any, statuses: Any) -> list[ContainerView]:
    by_name = {s.get("name"): s for s in statuses or [] if isinstance(s, dict)}
    out = []
    for c in specs or []:
        if not isinstance(c, dict):
            continue
        s = by_name.get(c.get("name"), {})
        out.append(
            ContainerView(
                name=str(c.get("name") or ""),
                image=str(c.get("image") or ""),
                ready=s.get("ready") is True,
                restarts=int(s.get("restartCount") or 0),
                state=_container_state(s) if s else "waiting",
            )
        )
    return out


def pod_view(pod: JSONDict) -> PodView:
    """What Argo CD's pod node shows: the phase, or the reason that explains it
    (``CrashLoopBackOff`` rather than ``Running``, as ``kubectl get pods`` prints)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    containers = _containers(spec.get("containers"), status.get("containerStatuses"))
    phase = str(status.get("reason") or status.get("phase") or "Unknown")
    for c in containers:
        if c.state.startswith(("waiting: ", "terminated: ")) and phase == "Running":
            phase = c.state.split(": ", 1)[1]
    if _meta(pod).get("deletionTimestamp"):
        phase = "Terminating"
    return PodView(
        phase=phase,
        containers=containers,
        initContainers=_containers(spec.get("initContainers"), status.get("initContainerStatuses")),
    )


def _view(node: _Node, parents: list[str], omitted: int, redactor: Redactor) -> TreeNode:
    if node.live is not None:
        h = health_of(node.live)
        health = NodeHealth(status=h.status.value, message=scrubbed(redactor, h.message))
    elif node.entry is not None:
        health = NodeHealth(
            status=node.entry.health or HealthStatus.MISSING.value,
            message=scrubbed(redactor, node.entry.health_message),
        )
    else:  # pragma: no cover - children are always live
        health = NodeHealth(status=HealthStatus.UNKNOWN.value)
    e = node.entry
    return TreeNode(
        group=node.ref.group,
        version=node.ref.version,
        kind=node.ref.kind,
        namespace=node.ref.namespace,
        name=node.ref.name,
        uid=node.uid,
        parentUids=parents,
        health=health,
        status=e.status if e is not None else "",
        requiresPruning=e.requires_pruning if e is not None else False,
        createdAt=str(_meta(node.live).get("creationTimestamp") or ""),
        pod=pod_view(node.live) if node.ref.kind == "Pod" and node.live is not None else None,
        childrenOmitted=omitted,
    )


@router.get(
    "/applications/{name}/tree",
    response_model=AppTree,
    summary="The app's objects and their live children, with health",
    description=(
        "Argo CD's resource tree: the app's objects (with the sync status of the last "
        "refresh) and the objects the cluster made for them, linked by ownerReferences: "
        "ReplicaSets of Deployments, Pods of ReplicaSets, StatefulSets, DaemonSets and "
        f"Jobs, Jobs of CronJobs, EndpointSlices of Services. At most {CHILDREN_CAP} "
        f"children per object and {TREE_NODES_CAP} nodes are listed; `truncated` says "
        "when some were left out."
    ),
)
async def get_tree(name: str, who: Caller, state: State) -> AppTree:
    app = visible_app(state, who, name)
    started = time.monotonic()
    tree = await _tree(state, app)
    nodes: list[TreeNode] = []
    emitted: set[int] = set()
    truncated = False
    messages = list(tree.messages)

    def emit(node: _Node, parents: list[str]) -> None:
        nonlocal truncated
        if id(node) in emitted:
            return
        if len(nodes) >= TREE_NODES_CAP:
            truncated = True
            return
        emitted.add(id(node))
        shown = node.children[:CHILDREN_CAP]
        omitted = len(node.children) - len(shown)
        if omitted:
            truncated = True
            messages.append(
                f"{node.ref.kind} {node.ref.name}: {len(node.children)} children, "
                f"{len(shown)} listed"
            )
        nodes.append(_view(node, parents, omitted, tree.redactor))
        for child in shown:
            emit(child, [p for p in child.parents if p])

    for node in tree.top:
        emit(node, [])
    if truncated and len(nodes) >= TREE_NODES_CAP:
        messages.append(f"the tree has more than {TREE_NODES_CAP} nodes; the first are listed")
    log.info(
        "event=tree app=%s/%s nodes=%d truncated=%s seconds=%.3f",
        app.namespace,
        app.name,
        len(nodes),
        truncated,
        time.monotonic() - started,
    )
    return AppTree(
        name=app.name,
        nodes=nodes,
        truncated=truncated,
        messages=[scrubbed(tree.redactor, m) for m in messages],
    )


# ---------------------------------------------------------------- one object's manifests


def masked(redactor: Redactor, obj: JSONDict | None) -> JSONDict | None:
    """``obj`` as the app's Redactor masks it, with no field that could carry a value.

    Secret values and the fields of the app's and project's ``redactions`` become
    their masks; ``last-applied-configuration`` (client-side apply's copy of the
    whole object) is dropped by the Redactor, and ``managedFields`` here: it names
    the keys only, but Argo CD's manifest view leaves it out for Secrets as well.
    A Secret's ``stringData`` is folded into ``data`` as the API server folds it
    on write, so the rendered and the live Secret read alike: a value's mask is
    the digest of its bytes either way, so an unchanged value shows the same mask
    on both sides. An object no rule covers comes back as it is."""
    if obj is None or not redactor.covers(obj):
        return obj
    out = redactor.mask(obj)
    assert out is not None
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    string_data = out.pop("stringData", None) if is_secret(out) else None
    if isinstance(string_data, dict):
        data = out.get("data")
        out["data"] = {**(data if isinstance(data, dict) else {}), **string_data}
    return out


def _yaml(obj: JSONDict | None) -> str:
    return yaml.safe_dump(obj, sort_keys=False) if obj is not None else ""


def _not_in_app(app: Application, what: str) -> HTTPException:
    return HTTPException(
        404, f"{what} is not an object of application {app.name} (its resources or their children)"
    )


@router.get(
    "/applications/{name}/resource",
    response_model=ResourceManifests,
    summary="The live and desired manifest of one object of the app (Secrets masked)",
    description=(
        "Only the app's objects and their children in the tree (e.g. its Pods) can be "
        "read: any other object is a 404. Both sides come as JSON (`live`, `desired`) "
        "and as YAML text (`liveYaml`, `desiredYaml`). Secret values, and the fields "
        "the app's and its project's `spec.redactions` name, are masked as "
        "`<redacted:` + 8 hex + `>`: the same value has the same mask, so a value that "
        "differs between live and desired shows two masks. A masked object's "
        "last-applied-configuration annotation and managedFields are removed, and a "
        "Secret's stringData is shown folded into data. `desired` is rendered from git "
        "at the app's target revision; a child has none."
    ),
)
async def get_resource(
    name: str,
    who: Caller,
    state: State,
    kind: Annotated[str, Query(min_length=1, max_length=253)],
    resource_name: Annotated[
        str, Query(alias="name", min_length=1, max_length=253, description="the object's name")
    ],
    group: Annotated[str, Query(max_length=253)] = "",
    version: Annotated[str, Query(max_length=63, description="'' for the app's own")] = "",
    namespace: Annotated[str, Query(max_length=63)] = "",
) -> ResourceManifests:
    app = visible_app(state, who, name)
    key = (group, kind, namespace, resource_name)
    what = f"{kind}.{group}" if group else kind
    what += f" {namespace}/{resource_name}" if namespace else f" {resource_name}"
    entry = next((e for e in await _entries(state, app) if e.ref.key == key), None)
    desired: JSONDict | None = None
    revision = desired_error = ""
    if entry is not None:
        redactor = await app_redactor(state, app)
        kube: KubeClient = await state.engine.dest(app)
        ref = entry.ref
        if version and version != ref.version:
            ref = ObjectRef(ref.group, version, ref.kind, ref.namespace, ref.name)
        try:
            live = await kube.get(ref)
        except UnknownKindError:
            live = None
        try:
            d = await state.engine.desired(app)
            # Values decrypted from SOPS: masked on both sides, whatever the kind.
            redactor.learn_secret_values(d.secret_values)
            revision = d.revision
            desired = next((m.obj for m in d.manifests if m.ref.key == key), None)
        except GitmoorError as e:
            # The live side is still worth showing when git or the render fails.
            desired_error = str(e)
    else:
        tree = await _tree(state, app)
        node = tree.find(key)
        if node is None or node.entry is not None:
            raise _not_in_app(app, what)
        ref, live, redactor = node.ref, node.live, tree.redactor
    live, desired = masked(redactor, live), masked(redactor, desired)
    # After both sides were masked (and so learned): a render error can quote a value.
    desired_error = scrubbed(redactor, desired_error)
    return ResourceManifests(
        group=ref.group,
        version=ref.version,
        kind=ref.kind,
        namespace=ref.namespace,
        name=ref.name,
        live=live,
        desired=desired,
        liveYaml=_yaml(live),
        desiredYaml=_yaml(desired),
        revision=revision,
        desiredError=desired_error,
    )


# ---------------------------------------------------------------- rendered manifests


@router.get(
    "/applications/{name}/manifests",
    response_model=RenderedManifests,
    summary="Every object the app renders from git (masked unless showSecrets)",
    description=(
        "What `gitmoor render` prints for the app: rendered at `revision` (default: "
        "its target) and prepared as a sync would apply it (tracking labels, namespace), "
        "SOPS-encrypted files decrypted. Secret values, every field holding a value that "
        "was encrypted in git (whatever its kind: a ConfigMap from an encrypted env file), "
        "and the fields the app's and "
        "its project's `spec.redactions` name, are masked as `<redacted:` + 8 hex + `>` "
        "(Argo CD's manifests route masks Secrets too). `showSecrets=true` shows them as "
        "rendered; it needs, besides `applications, get`, the right to read each such "
        "object: `applications, get/GROUP/KIND/NAMESPACE/NAME, PROJECT/APP` (Argo CD 3's "
        "fine-grained form, core group empty: `get//Secret/*/*`), which `role:readonly` "
        "does not have. A request that shows values is audited (`show-secrets`)."
    ),
    responses={403: {"description": "showSecrets for an object the caller may not read"}},
)
async def get_manifests(
    name: str,
    who: Caller,
    state: State,
    request: Request,
    revision: Annotated[str | None, Query(max_length=255)] = None,
    showSecrets: Annotated[
        bool, Query(description="show Secret values and redacted fields as rendered")
    ] = False,
) -> RenderedManifests:
    app = visible_app(state, who, name)
    desired = await state.engine.desired(app, revision or None)
    redactor = redactor_for(app, desired.project)
    # Values decrypted from SOPS are hidden in whatever kind holds them (a ConfigMap
    # from an encrypted env file), and showing them needs the same right as a
    # Secret's (``covers`` is true for such an object).
    redactor.learn_secret_values(desired.secret_values)
    objs = [m.obj for m in desired.manifests]
    if showSecrets:
        # Checked before the values are touched: every object the policy hides.
        obj = app_object(app)
        hidden = [m.ref for m in desired.manifests if redactor.covers(m.obj)]
        refused = [
            r for r in hidden if not allowed(state, who, "applications", secret_read_action(r), obj)
        ]
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise HTTPException(
                403,
                f"permission denied: applications, {secret_read_action(refused[0])}, "
                f"{obj}{more}: showSecrets needs the right to read each Secret and "
                "redacted object",
            )
        for o in objs:
            redactor.learn(o)  # so a later error or log line quoting one is scrubbed
        await state.audit.record(
            who=who.name,
            action="show-secrets",
            target=app_ref(app.name, app.namespace),
            result="ok",
            address=client_address(request),
            message=f"rendered manifests at {desired.revision[:12]} with the values of "
            f"{len(hidden)} object(s)",
            uid=app.uid or None,
        )
        out = objs
    else:
        out = [masked(redactor, o) or o for o in objs]
    return RenderedManifests(
        revision=desired.revision,
        manifests=out,
        yaml=yaml.safe_dump_all(out, sort_keys=False),
        secretsShown=showSecrets,
    )


# ---------------------------------------------------------------- events


def _event_time(ev: JSONDict) -> str:
    series = ev.get("series") or {}
    return str(
        ev.get("lastTimestamp")
        or series.get("lastObservedTime")
        or ev.get("eventTime")
        or _meta(ev).get("creationTimestamp")
        or ""
    )


def _sort_key(ev: JSONDict) -> datetime:
    """Parsed, not compared as text: ``eventTime`` has microseconds and
    ``lastTimestamp`` none, so their strings do not sort alike within a second."""
    try:
        when = datetime.fromisoformat(_event_time(ev))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _event_view(ev: JSONDict, redactor: Redactor) -> EventView:
    inv = ev.get("involvedObject") or {}
    source = ev.get("source") or {}
    return EventView(
        type=str(ev.get("type") or ""),
        reason=str(ev.get("reason") or ""),
        message=scrubbed(redactor, str(ev.get("message") or "")),
        count=int(ev.get("count") or (ev.get("series") or {}).get("count") or 1),
        firstTimestamp=str(ev.get("firstTimestamp") or ev.get("eventTime") or ""),
        lastTimestamp=_event_time(ev),
        source=str(ev.get("reportingComponent") or source.get("component") or ""),
        involvedObject=InvolvedObject(
            apiVersion=str(inv.get("apiVersion") or ""),
            kind=str(inv.get("kind") or ""),
            namespace=str(inv.get("namespace") or ""),
            name=str(inv.get("name") or ""),
            uid=str(inv.get("uid") or ""),
        ),
    )


async def _events_in(
    kube: KubeClient, namespace: str, messages: list[str], field_selector: str | None = None
) -> list[JSONDict]:
    try:
        ar = await kube.resource(*EVENT)
        return (await kube.list(ar, namespace, field_selector=field_selector)).items
    except (ApiError, ApiUnavailableError) as e:
        messages.append(f"cannot list Events in {namespace}: {e}")
        return []


@router.get(
    "/applications/{name}/events",
    response_model=EventList,
    summary="Kubernetes Events of the app and of its objects, newest first",
    description=(
        "Events whose involved object is the Application (syncs, refreshes, the API's "
        "audit trail) or one of the objects of its tree (its resources and their "
        f"children: Pods, ReplicaSets, ...). At most {EVENTS_CAP}. Messages are "
        "scrubbed: a Secret value, or a value of a field the app's `redactions` name, "
        "quoted in one shows as its mask (`<redacted:…>`)."
    ),
)
async def get_events(name: str, who: Caller, state: State) -> EventList:
    app = visible_app(state, who, name)
    tree = await _tree(state, app)
    uids: set[str] = set()
    keys: set[tuple[str, str, str]] = set()
    namespaces: set[str] = set()
    for node in tree.walk():
        if node.uid:
            uids.add(node.uid)
        keys.add((node.ref.kind, node.ref.namespace, node.ref.name))
        # Events about cluster-scoped objects are recorded in `default`, as the
        # kubelet and the controllers record a Node's.
        namespaces.add(node.ref.namespace or "default")
    messages: list[str] = []
    selector = f"involvedObject.kind=Application,involvedObject.name={app.name}"
    own, *per_ns = await asyncio.gather(
        _events_in(state.kube, app.namespace, messages, selector),
        *(_events_in(tree.kube, ns, messages) for ns in sorted(namespaces)),
    )
    found: dict[str, JSONDict] = {}
    for ev in own:
        inv_uid = (ev.get("involvedObject") or {}).get("uid")
        if not inv_uid or not app.uid or inv_uid == app.uid:
            found[str(_meta(ev).get("uid"))] = ev
    for ev in (e for evs in per_ns for e in evs):
        inv = ev.get("involvedObject") or {}
        inv_uid = str(inv.get("uid") or "")
        if inv_uid in uids or (
            not inv_uid and (inv.get("kind"), inv.get("namespace") or "", inv.get("name")) in keys
        ):
            found[str(_meta(ev).get("uid"))] = ev
    events = sorted(found.values(), key=_sort_key, reverse=True)
    for m in messages:
        log.warning("event=events_partial app=%s/%s detail=%s", app.namespace, app.name, m)
    return EventList(
        items=[_event_view(ev, tree.redactor) for ev in events[:EVENTS_CAP]],
        truncated=len(events) > EVENTS_CAP,
    )


# ---------------------------------------------------------------- pod logs


def _log_error(e: GitmoorError) -> HTTPException:
    """The API server's answer, said plainly: a kubelet it cannot reach is a 502,
    a container it does not know a 400, as ``kubectl logs`` reports them."""
    if isinstance(e, ApiError) and 400 <= e.code < 500:
        return HTTPException(e.code if e.code in (400, 404) else 502, f"API server: {e}")
    return HTTPException(502, f"the API server could not serve the log: {e}")


@router.get(
    "/applications/{name}/logs",
    summary="The log of one container of a pod of the app",
    description=(
        "Needs `logs, get` on the app besides `applications, get`. The pod must be in "
        "the app's resource tree. The text comes as `text/plain`, one log line per line, "
        f"at most `tailLines` (max {LOG_TAIL_MAX}) lines and `limitBytes` (max "
        f"{LOG_BYTES_MAX} bytes). With `follow=true` new lines stream as they are "
        f"written, for at most {FOLLOW_MAX_SECONDS} s or until the client goes away. "
        "The log comes from the node through the API server (`pods/log`); an error "
        "there is a 502 with the API server's message. Lines are scrubbed: a value of "
        "one of the app's Secrets (or of a field its `redactions` name) that the "
        "program prints shows as its mask (`<redacted:…>`)."
    ),
    response_class=PlainTextResponse,
    response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_logs(
    name: str,
    who: Caller,
    state: State,
    namespace: Annotated[str, Query(min_length=1, max_length=63)],
    pod: Annotated[str, Query(min_length=1, max_length=253)],
    container: Annotated[
        str, Query(max_length=63, description="default: the pod's first container")
    ] = "",
    tailLines: Annotated[int, Query(ge=1, le=LOG_TAIL_MAX)] = 100,
    limitBytes: Annotated[int, Query(ge=1, le=LOG_BYTES_MAX)] = LOG_BYTES_MAX,
    sinceSeconds: Annotated[int | None, Query(ge=1)] = None,
    follow: bool = False,
) -> PlainTextResponse | StreamingResponse:
    app = visible_app(state, who, name)
    authorize(state, who, "logs", "get", app_object(app))
    tree = await _tree(state, app)
    node = tree.find(("", "Pod", namespace, pod))
    if node is None or node.live is None:
        raise _not_in_app(app, f"Pod {namespace}/{pod}")
    spec = node.live.get("spec") or {}
    names = [
        str(c.get("name"))
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        if isinstance(c, dict)
    ]
    container = container or (names[0] if names else "")
    if container not in names:
        raise HTTPException(
            404, f"pod {namespace}/{pod} has no container {container!r} (it has {names})"
        )
    kube = tree.kube
    bounds: dict[str, Any] = {
        "container": container,
        "tail_lines": tailLines,
        "limit_bytes": limitBytes,
        "since_seconds": sinceSeconds,
    }
    log.info(
        "event=logs app=%s/%s pod=%s/%s container=%s follow=%s user=%s",
        app.namespace,
        app.name,
        namespace,
        pod,
        container,
        follow,
        who.name,
    )
    redactor = tree.redactor
    if not follow:
        try:
            text = await kube.logs(namespace, pod, **bounds)
        except GitmoorError as e:
            raise _log_error(e) from e
        return PlainTextResponse(scrubbed(redactor, text))

    stack = contextlib.AsyncExitStack()
    try:
        # Opened before the 200 goes out, so a refusal is answered as an error.
        lines = await stack.enter_async_context(kube.follow_logs(namespace, pod, **bounds))
    except GitmoorError as e:
        await stack.aclose()
        raise _log_error(e) from e

    async def stream() -> AsyncIterator[str]:
        # A deadline per line rather than a timeout around the loop: a timeout
        # spanning `yield` would fire in whatever the response task awaits then.
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            while (left := started + FOLLOW_MAX_SECONDS - loop.time()) > 0:
                try:
                    line = await asyncio.wait_for(anext(lines), left)
                except (StopAsyncIteration, TimeoutError):
                    break
                yield scrubbed(redactor, line) + "\n"
        except GitmoorError as e:
            log.warning("event=logs_stream_broke pod=%s/%s error=%s", namespace, pod, e)
        finally:
            # Also reached when the client goes away: Starlette cancels the stream.
            await stack.aclose()
            log.info(
                "event=logs_follow_end pod=%s/%s seconds=%.1f",
                namespace,
                pod,
                loop.time() - started,
            )

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")
