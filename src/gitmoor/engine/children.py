"""App of apps: an Application whose render holds Applications, ApplicationSets
and AppProjects (Argo CD's "app of apps" pattern, the usual way to bootstrap a
cluster's apps from one repository path).

What this module holds, and why each rule exists:

- **Where children go, and under which project** (:func:`check_children`, run
  with the project's other checks on the prepared render, before anything is
  applied). A child is created in the parent's own namespace, the apps namespace
  its controller watches, on the home cluster (an Application elsewhere would be
  seen by no controller). The parent's project must permit the kinds (the
  resource whitelist, checked by ``projects.check_resources`` like any kind). A
  child Application must name the parent's project, or a project the same render
  declares: otherwise any app allowed to create Applications could escape its
  project by naming a wider one (Argo CD leaves this to its RBAC; here it is a
  sentence naming the child).
- **New projects** (:func:`check_children`). A child AppProject can widen
  every permission (any repository, destination and kind) for the Applications
  the same render then puts in it, so a parent may declare one only when its own
  project lists ``{group: gitmoor.io, kind: AppProject}`` explicitly in
  ``namespaceResourceWhitelist`` (AppProjects are namespaced); an absent
  whitelist (every namespaced kind) or a ``*`` entry does not grant it. Stricter
  than Argo CD, which leaves it to the whitelist like any kind. Re-declaring the
  parent's own project unchanged widens nothing and needs no grant (the
  ``default`` project ``gitmoor bootstrap``'s app carries).
- **No takeover of another Application** (:func:`check_child_apps`, a live GET
  of each child, also before anything is applied): an Application that exists
  and carries no tracking id, or another app's, is not rewritten by a parent
  that renders the same name; the sync would otherwise adopt it (as it adopts
  an untracked ConfigMap) and replace its spec, source and project included.
- **Finalizer** (:data:`FINALIZERS`, :func:`cascade_finalizer`). As Argo CD's
  ``resources-finalizer.argocd.argoproj.io``: an Application carrying
  ``resources-finalizer.gitmoor.io`` (or Argo CD's name) and being deleted has
  its own objects deleted by the controller before the finalizer is removed, so
  a parent that prunes a child takes the child's objects too. Without it, a
  deleted child leaves its objects in place (Argo CD's non-cascading default).
- **Who the parent is** (:func:`parent_of`): from the tracking id the parent
  stamped on the child, so the controller can queue the parent when a child's
  health moves.
- **The tree** (:func:`app_tree`): ``gitmoor app get PARENT --tree``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gitmoor.engine import store
from gitmoor.engine.operation import status_of
from gitmoor.engine.prepare import owned_by, owner_app, tracking_id_of
from gitmoor.kube import ConflictError, NotFoundError
from gitmoor.model import UserInputError
from gitmoor.model.application import GROUP as APP_GROUP
from gitmoor.model.application import KIND as APP_KIND
from gitmoor.model.application import (
    TRACKING_ANNOTATION,
    Application,
    ApplicationSpec,
    AppSource,
    Destination,
    SyncPolicy,
)
from gitmoor.model.appset import APPSET_KIND, APPSET_LABEL
from gitmoor.model.project import IN_CLUSTER, AppProject, ProjectViolation, parse_appproject
from gitmoor.model.project import KIND as PROJECT_KIND
from gitmoor.model.status import ref_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from gitmoor.kube import KubeClient
    from gitmoor.model import JSONDict, Manifest

#: gitmoor's cascade finalizer, then Argo CD's, honoured alike so that an app of
#: apps moved over from Argo CD keeps its deletion behaviour
RESOURCES_FINALIZER = "resources-finalizer.gitmoor.io"
ARGOCD_FINALIZER = "resources-finalizer.argocd.argoproj.io"
FINALIZERS = (RESOURCES_FINALIZER, ARGOCD_FINALIZER)
#: the kinds that make an app a parent (group gitmoor.io)
CHILD_KINDS = frozenset({APP_KIND, APPSET_KIND, PROJECT_KIND})
#: how deep ``app get --tree`` follows children by default
TREE_DEPTH = 5


def is_child_kind(group: str, kind: str) -> bool:
    return group == APP_GROUP and kind in CHILD_KINDS


def check_children(project: AppProject, app: Application, manifests: Sequence[Manifest]) -> None:
    """Refuse a render whose Applications, ApplicationSets or AppProjects would
    land outside the apps namespace or escape the parent's project, naming the
    first such child and where it came from. Called after ``prepare`` (which
    gave every object its namespace) and before anything is applied."""
    children = [m for m in manifests if is_child_kind(m.ref.group, m.ref.kind)]
    if not children:
        return
    first = children[0]
    at = f" (from {first.source})" if first.source else ""
    if app.spec.destination.name not in ("", IN_CLUSTER):
        raise ProjectViolation(
            f"project {project.name}: {first.ref}{at} would be created on cluster "
            f"{app.spec.destination.name!r}; an app of apps creates its children on the "
            "home cluster, where gitmoor's controller watches them",
            concerns=f"project {project.name}",
        )
    declared = {m.ref.name for m in children if m.ref.kind == PROJECT_KIND}
    for m in children:
        at = f" (from {m.source})" if m.source else ""
        if m.ref.namespace != app.namespace:
            raise ProjectViolation(
                f'project {project.name}: {m.ref}{at} names namespace "{m.ref.namespace}"; '
                f"{m.ref.kind} objects of an app of apps are created in the apps namespace "
                f'"{app.namespace}" (set the parent\'s destination namespace to it)',
                concerns=f"project {project.name}",
            )
        if (
            m.ref.kind == PROJECT_KIND
            and not may_declare_projects(project)
            and not _own_project_unchanged(project, m)
        ):
            raise ProjectViolation(
                f"project {project.name}: AppProject {m.ref.name}{at} may not be declared "
                f"by {app.name}: a child project can grant every repository, destination "
                "and kind; to allow it, list {group: gitmoor.io, kind: AppProject} in "
                f"project {project.name}'s spec.namespaceResourceWhitelist (neither an "
                'absent whitelist nor a "*" entry grants it)',
                concerns=f"project {project.name}",
            )
        named = next(
            (
                n
                for n in _child_projects(m.obj, m.ref.kind)
                if n != project.name and n not in declared
            ),
            None,
        )
        if named is None:
            continue
        raise ProjectViolation(
            f"project {project.name}: {m.ref.kind} {m.ref.name}{at} names project "
            f'"{named}"; a child of {app.name} may name only its parent\'s project '
            f'"{project.name}" or a project the same render declares',
            concerns=f"project {project.name}",
        )


def may_declare_projects(project: AppProject) -> bool:
    """Does ``project`` let its apps create AppProjects? Only by naming the kind
    outright in ``namespaceResourceWhitelist``: a child project can widen every
    permission the parent's project withholds, so the grant must be deliberate,
    not implied by an absent whitelist or a ``*`` (stricter than Argo CD)."""
    listed = project.namespace_resource_whitelist or ()
    return any(g.group == APP_GROUP and g.kind == PROJECT_KIND for g in listed)


def _own_project_unchanged(project: AppProject, m: Manifest) -> bool:
    """Is ``m`` the parent's own project, declared as it stands? That widens
    nothing (a self-managed install carrying its ``default`` project)."""
    if m.ref.name != project.name:
        return False
    try:
        declared = parse_appproject(m.obj)
    except UserInputError:
        return False
    return declared.spec() == project.spec()


async def check_child_apps(
    kube: KubeClient, app: Application, manifests: Sequence[Manifest]
) -> None:
    """Refuse a render holding an Application that already exists in the apps
    namespace and is not this parent's (no tracking id, or another app's),
    naming it and its file: applying would take it over, rewriting its source,
    destination and project. One GET per child, before anything is applied.

    The parent itself (a self-managing app declaring its own Application) is not
    a takeover. Argo CD adopts such an Application silently; here the user hands
    it over deliberately, by deleting it or by stamping the parent's tracking id."""
    for m in manifests:
        if m.ref.group != APP_GROUP or m.ref.kind != APP_KIND:
            continue
        if m.ref.name == app.name and m.ref.namespace == app.namespace:
            continue
        live = await kube.get(m.ref)
        if live is None or owned_by(app, live):
            continue
        owner = owner_app(live)
        held = (
            f"its tracking id names app {owner.replace('_', '/', 1)}"
            if owner
            else "it carries no tracking id"
        )
        at = f" (from {m.source})" if m.source else ""
        tracking = app.tracking_id(APP_GROUP, APP_KIND, m.ref.namespace, m.ref.name)
        raise UserInputError(
            f"Application {m.ref.name}{at} already exists and is not managed by {app.name} "
            f"({held}); delete it, or rename the child, or hand it to {app.name} by "
            f"annotating it {TRACKING_ANNOTATION}={tracking}",
            concerns=f"Application {m.ref.name}",
        )


def _child_projects(obj: JSONDict, kind: str) -> list[str]:
    """The projects a child Application (or an ApplicationSet's template, and
    each top-level generator's template override, which wins over it when set)
    names; none for an AppProject. A templated project (``{{project}}``) is
    returned as written, and so refused: which projects its generators would
    produce is not known before they run, and any of them could be wider than
    the parent's."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    if kind == APP_KIND:
        return [_project_name(spec)]
    if kind != APPSET_KIND:
        return []
    template = spec.get("template")
    tspec = template.get("spec") if isinstance(template, dict) else None
    names = [_project_name(tspec if isinstance(tspec, dict) else {})]
    # render_application merges generators[i].<kind>.template over spec.template
    # (Argo CD: a non-empty field of the override wins), so an override's
    # project is the one its Applications get.
    generators = spec.get("generators")
    for gen in generators if isinstance(generators, list) else []:
        for body in gen.values() if isinstance(gen, dict) else []:
            override = body.get("template") if isinstance(body, dict) else None
            ospec = override.get("spec") if isinstance(override, dict) else None
            named = ospec.get("project") if isinstance(ospec, dict) else None
            if named not in (None, "", [], {}, False):
                names.append(named if isinstance(named, str) else repr(named))
    return names


def _project_name(spec: JSONDict) -> str:
    named = spec.get("project")
    # The CRD defaults an absent project to "default", which is a project too.
    return named if isinstance(named, str) and named else "default"


# ---------------------------------------------------------------- finalizer


def finalizers_of(obj: JSONDict) -> list[str]:
    meta = obj.get("metadata")
    found = meta.get("finalizers") if isinstance(meta, dict) else None
    return [f for f in found if isinstance(f, str)] if isinstance(found, list) else []


def being_deleted(obj: JSONDict) -> bool:
    meta = obj.get("metadata")
    return isinstance(meta, dict) and bool(meta.get("deletionTimestamp"))


def cascade_finalizer(obj: JSONDict) -> bool:
    """Does the Application ask for its objects to go with it?"""
    return any(f in FINALIZERS for f in finalizers_of(obj))


def deletion_view(obj: JSONDict) -> Application:
    """What the cascade finalizer needs of an Application whose spec no longer
    parses: its name, namespace, status (the inventory), destination cluster and
    sync options (``Delete=false``), read leniently from the object as it is, so
    that it is not stuck in deletion for ever (Argo CD's finalizer likewise needs
    only the app's resources and destination). UserInputError, with the reason,
    when the destination or the sync options cannot be read: deleting on a guess
    could delete on the wrong cluster, or what ``Delete=false`` keeps."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    spec = obj.get("spec")
    dst = spec.get("destination") if isinstance(spec, dict) else None
    cluster = dst.get("name") if isinstance(dst, dict) else None
    if not isinstance(dst, dict) or not isinstance(cluster, str | None):
        raise UserInputError(
            "spec.destination cannot be read, so the cluster its objects are on is unknown",
            concerns="spec.destination",
        )
    policy = spec.get("syncPolicy") if isinstance(spec, dict) else None
    options = (policy.get("syncOptions") if isinstance(policy, dict) else None) or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise UserInputError(
            "spec.syncPolicy.syncOptions cannot be read, so whether Delete=false keeps "
            "its objects is unknown",
            concerns="spec.syncPolicy.syncOptions",
        )
    return Application(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        spec=ApplicationSpec(
            source=AppSource(repo_url=""),
            destination=Destination(namespace=str(dst.get("namespace") or ""), name=cluster or ""),
            sync_policy=SyncPolicy(sync_options=tuple(options)),
        ),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        raw=obj,
    )


async def remove_cascade_finalizers(kube: KubeClient, app: Application) -> bool:
    """Drop gitmoor's and Argo CD's cascade finalizers from the Application, keeping
    any other's; True when it was written (or already without them).

    The patch carries the resourceVersion read, so a finalizer someone else added
    meanwhile is never dropped with ours (409: read again and retry)."""
    live = await kube.get(store.app_ref(app.name, app.namespace))
    if live is None:
        return True
    current = finalizers_of(live)
    kept = [f for f in current if f not in FINALIZERS]
    if kept == current:
        return True
    rv = (live.get("metadata") or {}).get("resourceVersion")
    try:
        await kube.merge_patch(
            store.app_ref(app.name, app.namespace),
            {"metadata": {"finalizers": kept or None, "resourceVersion": rv}},
        )
    except ConflictError:
        return False
    except NotFoundError:
        return True
    return True


def parent_of(obj: JSONDict, namespace: str) -> str:
    """The app in ``namespace`` that created this Application (its tracking id:
    ``<namespace>_<parent>:gitmoor.io/Application:...``), or ""."""
    tracking = tracking_id_of(obj)
    owner, _, rest = tracking.partition(":")
    if not rest.startswith(f"{APP_GROUP}/{APP_KIND}:"):
        return ""
    ns, _, name = owner.partition("_")
    return name if ns == namespace else ""


# ---------------------------------------------------------------- tree


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One node of ``app get --tree``: an Application or an ApplicationSet."""

    kind: str
    name: str
    sync: str
    health: str
    #: its own objects (an Application's status total); None for an ApplicationSet
    objects: int | None
    children: tuple[TreeNode, ...] = ()
    #: why its children are not shown: "cycle", "depth limit", "not found"
    note: str = ""

    def to_dict(self) -> JSONDict:
        out: JSONDict = {"kind": self.kind, "name": self.name, "sync": self.sync}
        out["health"] = self.health
        if self.objects is not None:
            out["objects"] = self.objects
        if self.note:
            out["note"] = self.note
        out["children"] = [c.to_dict() for c in self.children]
        return out


async def app_tree(
    kube: KubeClient,
    name: str,
    namespace: str,
    *,
    resources: Callable[[Application], Awaitable[list[JSONDict]]],
    depth: int = TREE_DEPTH,
) -> TreeNode:
    """The app ``name`` with the Applications and ApplicationSets it declares, and
    theirs, ``depth`` levels down. An app met again on its own branch (a child
    that declares its parent) is shown once more with note "cycle", not followed.

    ``resources`` reads an app's objects wherever they are kept (the engine's
    ``resources``: status or inventory)."""
    root = await store.get_app(kube, name, namespace)
    apps = {a.name: a for a in await store.list_apps(kube, namespace)}
    apps[root.name] = root
    by_appset: dict[str, list[str]] = {}
    for a in apps.values():
        owner = a.labels.get(APPSET_LABEL)
        if owner:
            by_appset.setdefault(owner, []).append(a.name)

    async def app_node(app_name: str, path: frozenset[str], left: int) -> TreeNode:
        a = apps.get(app_name)
        if a is None:
            return TreeNode(APP_KIND, app_name, "Unknown", "Missing", None, note="not found")
        st = status_of(a)
        base = TreeNode(APP_KIND, a.name, st.sync_status, st.health_status or "Unknown", st.total)
        if app_name in path:
            return _with(base, note="cycle")
        kids = [
            ref
            for ref in (ref_of(e) for e in await resources(a))
            if ref is not None
            and ref.group == APP_GROUP
            and ref.kind in (APP_KIND, APPSET_KIND)
            and ref.namespace == namespace
        ]
        if kids and left <= 0:
            return _with(base, note="depth limit")
        inner = path | {app_name}
        nodes = []
        for ref in sorted(kids, key=lambda r: (r.kind, r.name)):
            if ref.kind == APP_KIND:
                nodes.append(await app_node(ref.name, inner, left - 1))
            else:
                nodes.append(await appset_node(a, ref.name, inner, left - 1))
        return _with(base, children=tuple(nodes))

    async def appset_node(
        parent: Application, appset: str, path: frozenset[str], left: int
    ) -> TreeNode:
        entry = next(
            (
                e
                for e in status_of(parent).resources
                if e.ref.kind == APPSET_KIND and e.ref.name == appset
            ),
            None,
        )
        node = TreeNode(
            APPSET_KIND,
            appset,
            entry.status if entry else "Unknown",
            (entry.health or "Unknown") if entry else "Unknown",
            None,
        )
        generated = sorted(by_appset.get(appset, []))
        if generated and left <= 0:
            return _with(node, note="depth limit")
        return _with(node, children=tuple([await app_node(n, path, left - 1) for n in generated]))

    return await app_node(root.name, frozenset(), depth)


def _with(node: TreeNode, **changes: Any) -> TreeNode:
    return replace(node, **changes)


__all__ = [
    "ARGOCD_FINALIZER",
    "CHILD_KINDS",
    "FINALIZERS",
    "RESOURCES_FINALIZER",
    "TREE_DEPTH",
    "TreeNode",
    "app_tree",
    "being_deleted",
    "cascade_finalizer",
    "check_child_apps",
    "check_children",
    "deletion_view",
    "is_child_kind",
    "may_declare_projects",
    "parent_of",
    "remove_cascade_finalizers",
]
