"""Reconcile an ApplicationSet: generate, render, then create, update or delete
the Applications it owns, and report what it did on its status.

The shape is Argo CD's ApplicationSet controller:

- Every element the generators produce is rendered through the template into an
  Application and validated (``parse_application``) before anything is written.
  A generator or template error, an invalid Application or two elements naming
  the same Application refuse the whole pass: nothing is created, updated or
  deleted, and the ``ErrorOccurred`` condition says why (Argo CD: "ApplicationSet
  ... contains applications with duplicate name").
- The Applications live in the ApplicationSet's namespace, carry the label
  ``gitmoor.io/application-set=<name>`` (what the controller watches and the CLI
  lists by) and an ownerReference to the ApplicationSet (``controller: true``,
  ``blockOwnerDeletion: true``, as Argo CD sets them). Ownership is the owner
  reference's uid, never the label alone: an Application of the same name that
  this ApplicationSet does not own is never touched, and a condition names it.
- ``policy`` (Argo CD's ``syncPolicy.applicationsSync``): ``create-only`` creates
  missing Applications and nothing else; ``create-update`` (the default) also
  updates the ones it owns but never deletes; ``create-delete`` creates and
  deletes but never updates; ``sync`` creates, updates and deletes the owned
  Applications no element produces any more. A deletion takes the app's objects
  with it, unless ``preserveResourcesOnDeletion`` (Argo CD then leaves the
  resources-finalizer off the Application, so its objects stay).
- A new Application is created with a create (POST): one someone made under
  that name since the read is a 409 AlreadyExists, left alone and named in the
  condition, never adopted. An update is a server-side apply under the field manager
  ``gitmoor-applicationset``: the fields the template sets (spec, labels,
  annotations) are put back as Argo CD's controller puts them back, fields it
  stopped setting are removed, and fields it never sets are kept (status, the
  ``operation`` a user requested, an annotation or a ``syncPolicy.pin`` set by
  hand). Nothing is written when the live Application already holds what the
  template says.
- ``status.resources`` lists the owned Applications with their sync and health,
  ``status.conditions`` uses Argo CD's types (``ErrorOccurred``,
  ``ParametersGenerated``, ``ResourcesUpToDate``) and reasons.

Deleting an ApplicationSet deletes its Applications (Argo CD's ownerReference
cascade, whatever the policy), each with its objects unless
``preserveResourcesOnDeletion``. Garbage collection alone would delete the
Applications but not their objects (a gitmoor Application has no finalizer), so
the controller keeps the finalizer ``gitmoor.io/appset-cleanup`` on every
ApplicationSet it manages and deletes the Applications itself before it lets
the ApplicationSet go; ``gitmoor appset delete`` does the same directly.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitmoor.engine.appset.generators import GeneratorContext, generate
from gitmoor.engine.appset.template import GeneratedParams, render_application
from gitmoor.kube import ApiUnavailableError, ConflictError, NotFoundError
from gitmoor.model import GitmoorError, ObjectRef, UserInputError
from gitmoor.model.application import API_VERSION, GROUP, KIND, VERSION, parse_application
from gitmoor.model.appset import (
    APPSET_GROUP,
    APPSET_KIND,
    APPSET_LABEL,
    APPSET_VERSION,
    DEFAULT_POLICY,
    ApplicationSet,
    parse_appset,
)
from gitmoor.model.status import AppStatus

if TYPE_CHECKING:
    from gitmoor.engine.app import AppDeletion, Engine
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.engine.appset")

JSONDict = dict[str, Any]

#: the field manager of every write to an owned Application
FIELD_MANAGER = "gitmoor-applicationset"
#: held on a managed ApplicationSet until its Applications are deleted
APPSET_FINALIZER = "gitmoor.io/appset-cleanup"
#: generator kinds, to name the generator of an element in messages
_GENERATOR_KINDS = (
    "list",
    "git",
    "clusters",
    "matrix",
    "merge",
    "scmProvider",
    "pullRequest",
    "clusterDecisionResource",
    "plugin",
)

# Argo CD's condition types and reasons (applicationset_types.go), so that tools
# that read an Argo CD ApplicationSet's status read this one.
ERROR_OCCURRED = "ErrorOccurred"
PARAMETERS_GENERATED = "ParametersGenerated"
RESOURCES_UP_TO_DATE = "ResourcesUpToDate"
REASON_UP_TO_DATE = "ApplicationSetUpToDate"
REASON_PARAMETERS_GENERATED = "ParametersGenerated"
REASON_ERROR = "ErrorOccurred"
REASON_GENERATION_ERROR = "ApplicationGenerationFromParamsError"
REASON_RENDER_ERROR = "RenderTemplateParamsError"
REASON_VALIDATION_ERROR = "ApplicationValidationError"
REASON_CREATE_ERROR = "CreateApplicationError"
REASON_UPDATE_ERROR = "UpdateApplicationError"
REASON_DELETE_ERROR = "DeleteApplicationError"
REASON_INVALID_SPEC = "InvalidSpecError"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- pure parts


@dataclass(frozen=True, slots=True)
class Generated:
    """One Application an element of the generators asks for."""

    name: str
    manifest: JSONDict
    #: "generator git, element 2": where it came from, for messages
    element: str


@dataclass(frozen=True, slots=True)
class AppSetPlan:
    """What a pass does to the Applications, by the policy (the pure diff)."""

    create: tuple[Generated, ...] = ()
    update: tuple[tuple[Generated, JSONDict], ...] = ()
    delete: tuple[JSONDict, ...] = ()
    unchanged: tuple[str, ...] = ()
    #: names an element produces whose Application this ApplicationSet does not own
    foreign: tuple[str, ...] = ()
    #: owned Applications the generators no longer produce, kept by the policy
    kept: tuple[str, ...] = ()
    #: owned Applications that differ from the template, left as they are by the policy
    drifted: tuple[str, ...] = ()


class AppSetError(UserInputError):
    """The generators or the template cannot give this pass's Applications; the
    pass changes nothing. ``reason`` is Argo CD's condition reason for it."""

    def __init__(self, message: str, *, reason: str, concerns: str | None = None) -> None:
        super().__init__(message, concerns=concerns)
        self.reason = reason


def allows_update(policy: str) -> bool:
    return policy in ("create-update", "sync")


def allows_delete(policy: str) -> bool:
    return policy in ("create-delete", "sync")


def owner_reference(appset: ApplicationSet) -> JSONDict:
    return {
        "apiVersion": f"{APPSET_GROUP}/{APPSET_VERSION}",
        "kind": APPSET_KIND,
        "name": appset.name,
        "uid": appset.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def appset_owns(appset: ApplicationSet, obj: JSONDict) -> bool:
    """Does ``appset`` own this Application? By the owner reference's uid: the same
    name recreated is another ApplicationSet, and a label anyone can set."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(
        isinstance(r, dict) and r.get("kind") == APPSET_KIND and r.get("uid") == appset.uid
        for r in refs
    )


def generator_label(appset: ApplicationSet) -> str:
    """The generator named in messages: its kind when there is one generator."""
    if len(appset.generators) == 1:
        for kind in _GENERATOR_KINDS:
            if kind in appset.generators[0]:
                return kind
    return "generators"


def owned_manifest(appset: ApplicationSet, rendered: JSONDict) -> JSONDict:
    """The Application as this ApplicationSet writes it: in its namespace, labelled
    and owned. Only name, labels, annotations and finalizers of the template's
    metadata are kept (as Argo CD); a cascade finalizer the template names
    (``resources-finalizer.gitmoor.io`` or Argo CD's) is the controller's to honour."""
    meta = rendered.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    labels[APPSET_LABEL] = appset.name
    out_meta: JSONDict = {
        "name": str(meta.get("name") or ""),
        "namespace": appset.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(appset)],
    }
    annotations = meta.get("annotations") or {}
    if annotations:
        out_meta["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    finalizers = [str(f) for f in meta.get("finalizers") or []]
    if finalizers:
        out_meta["finalizers"] = finalizers
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": out_meta,
        "spec": copy.deepcopy(rendered.get("spec") or {}),
    }


def check_duplicates(generated: list[Generated]) -> None:
    """Two elements naming one Application refuse the pass (Argo CD does the same)."""
    seen: dict[str, str] = {}
    for g in generated:
        if g.name in seen:
            raise AppSetError(
                f"ApplicationSet contains applications with duplicate name: {g.name} "
                f"({seen[g.name]} and {g.element})",
                reason=REASON_VALIDATION_ERROR,
            )
        seen[g.name] = g.element


def _contains(live: Any, want: Any) -> bool:
    """Does ``live`` hold everything ``want`` says (maps by key, the rest equal)?"""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(
            k in live and _contains(live[k], v) for k, v in want.items()
        )
    return bool(live == want)


def _owned_paths(fields: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The map paths (``f:`` keys) of a managedFields ``fieldsV1`` tree; list items
    (``k:``, ``v:``, ``i:``) end a path, since lists are compared whole."""
    out: list[tuple[str, ...]] = []
    if not isinstance(fields, dict):
        return out
    for key, sub in fields.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        children = _owned_paths(sub, path)
        out.extend(children or [path])
    return out


def _has_path(obj: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return False
        obj = obj[part]
    return True


_TEMPLATED_META = (("metadata", "labels"), ("metadata", "annotations"))


def needs_update(desired: JSONDict, live: JSONDict) -> bool:
    """Would applying ``desired`` change ``live``? True when a field the template
    sets differs, or when a field this manager applied before is gone from the
    template (server-side apply would remove it)."""
    dmeta, lmeta = desired.get("metadata") or {}, live.get("metadata") or {}
    for key in ("labels", "annotations"):
        if not _contains(lmeta.get(key) or {}, dmeta.get(key) or {}):
            return True
    for f in dmeta.get("finalizers") or []:
        if f not in (lmeta.get("finalizers") or []):
            return True
    uids = {r.get("uid") for r in lmeta.get("ownerReferences") or [] if isinstance(r, dict)}
    if any(r["uid"] not in uids for r in dmeta.get("ownerReferences") or []):
        return True
    if not _contains(live.get("spec") or {}, desired.get("spec") or {}):
        return True
    for entry in lmeta.get("managedFields") or []:
        if entry.get("manager") != FIELD_MANAGER or entry.get("operation") != "Apply":
            continue
        for path in _owned_paths(entry.get("fieldsV1") or {}):
            templated = path[0] == "spec" or path[:2] in _TEMPLATED_META
            if templated and not _has_path(desired, path):
                return True
    return False


def plan(appset: ApplicationSet, generated: list[Generated], live: list[JSONDict]) -> AppSetPlan:
    """The diff of one pass: what to create, update and delete under the policy."""
    by_name = {str((o.get("metadata") or {}).get("name", "")): o for o in live}
    wanted = {g.name for g in generated}
    create: list[Generated] = []
    update: list[tuple[Generated, JSONDict]] = []
    unchanged: list[str] = []
    foreign: list[str] = []
    drifted: list[str] = []
    for g in generated:
        current = by_name.get(g.name)
        if current is None:
            create.append(g)
        elif not appset_owns(appset, current):
            foreign.append(g.name)
        elif not needs_update(g.manifest, current):
            unchanged.append(g.name)
        elif allows_update(appset.policy):
            update.append((g, current))
        else:
            drifted.append(g.name)
    gone = [
        o
        for name, o in sorted(by_name.items())
        if name not in wanted and appset_owns(appset, o) and not _deleting(o)
    ]
    delete = gone if allows_delete(appset.policy) else []
    kept = [] if delete else [str(o["metadata"]["name"]) for o in gone]
    return AppSetPlan(
        tuple(create),
        tuple(update),
        tuple(delete),
        tuple(unchanged),
        tuple(foreign),
        tuple(kept),
        tuple(drifted),
    )


def _deleting(obj: JSONDict) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def appset_resources(appset: ApplicationSet, apps: list[JSONDict]) -> list[JSONDict]:
    """``status.resources``: each owned Application with its sync and health, read
    from its own status (Argo CD's ApplicationSet ``status.resources``)."""
    out: list[JSONDict] = []
    for obj in sorted(apps, key=lambda o: str((o.get("metadata") or {}).get("name", ""))):
        if not appset_owns(appset, obj):
            continue
        meta = obj.get("metadata") or {}
        st = AppStatus.from_dict(obj.get("status") or {})
        health: JSONDict = {"status": st.health_status or "Unknown"}
        if st.health_message:
            health["message"] = st.health_message
        out.append(
            {
                "group": GROUP,
                "version": VERSION,
                "kind": KIND,
                "name": str(meta.get("name", "")),
                "namespace": str(meta.get("namespace", appset.namespace)),
                "status": st.sync_status,
                "health": health,
            }
        )
    return out


def _condition(ctype: str, status: bool, reason: str, message: str) -> JSONDict:
    return {
        "type": ctype,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def conditions_for(
    error: str = "", reason: str = "", *, parameters_ok: bool = True
) -> list[JSONDict]:
    """The three conditions Argo CD keeps on an ApplicationSet, without times."""
    if not error:
        ok = "All applications have been generated successfully"
        return [
            _condition(ERROR_OCCURRED, False, REASON_UP_TO_DATE, ok),
            _condition(
                PARAMETERS_GENERATED,
                True,
                REASON_PARAMETERS_GENERATED,
                "Successfully generated parameters for all Applications",
            ),
            _condition(RESOURCES_UP_TO_DATE, True, REASON_UP_TO_DATE, ok),
        ]
    return [
        _condition(ERROR_OCCURRED, True, reason or REASON_ERROR, error),
        _condition(
            PARAMETERS_GENERATED,
            parameters_ok,
            REASON_PARAMETERS_GENERATED if parameters_ok else REASON_ERROR,
            "Successfully generated parameters for all Applications" if parameters_ok else error,
        ),
        _condition(RESOURCES_UP_TO_DATE, False, REASON_ERROR, error),
    ]


def with_times(new: list[JSONDict], old: list[Any], now: str) -> list[JSONDict]:
    """Each condition with its ``lastTransitionTime``: kept while its status holds,
    ``now`` when it turns (the Kubernetes API conventions for conditions)."""
    previous = {c.get("type"): c for c in old if isinstance(c, dict)}
    out = []
    for c in new:
        before = previous.get(c["type"])
        same = before is not None and before.get("status") == c["status"]
        when = str(before.get("lastTransitionTime") or now) if same and before else now
        out.append({**c, "lastTransitionTime": when})
    return out


def status_changed(current: Any, new: JSONDict) -> bool:
    """Would writing ``new`` change the status? (no write when nothing changed)"""
    current = current if isinstance(current, dict) else {}
    return any(current.get(k) != v for k, v in new.items())


# ---------------------------------------------------------------- generation


async def generate_apps(appset: ApplicationSet, ctx: GeneratorContext) -> list[Generated]:
    """Every Application the generators and the template ask for, validated.
    AppSetError (naming the generator, the element and the field) when any of
    them cannot be had: the pass then changes nothing."""
    try:
        params = await generate(appset, ctx)
    except GitmoorError as e:
        raise AppSetError(str(e), reason=REASON_GENERATION_ERROR) from e
    label = generator_label(appset)
    out: list[Generated] = []
    for i, p in enumerate(params):
        where = (
            f"{p.label} element {p.element}"
            if isinstance(p, GeneratedParams)
            else f"generator {label}, element {i}"
        )
        try:
            rendered = render_application(appset, p, generator=label, element=i)
        except GitmoorError as e:
            raise AppSetError(str(e), reason=REASON_RENDER_ERROR) from e
        manifest = owned_manifest(appset, rendered)
        name = manifest["metadata"]["name"]
        if not name:
            raise AppSetError(
                f"{where}: the template gives no metadata.name", reason=REASON_VALIDATION_ERROR
            )
        try:
            parse_application(manifest)
        except UserInputError as e:
            raise AppSetError(
                f"{where}: Application {name} is not valid: {e}", reason=REASON_VALIDATION_ERROR
            ) from e
        out.append(Generated(name, manifest, where))
    check_duplicates(out)
    return out


# ---------------------------------------------------------------- the pass


@dataclass
class AppSetOutcome:
    """What a pass did; ``error`` set when it changed nothing because of it."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # name, reason, message
    error: str = ""
    reason: str = ""
    #: the owned Applications as they are after the pass (for status.resources)
    apps: list[JSONDict] = field(default_factory=list)
    status: JSONDict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


async def list_appset_apps(kube: KubeClient, appset: ApplicationSet) -> list[JSONDict]:
    """The Applications labelled for ``appset`` (owned or not: ``owns`` decides)."""
    ar = await kube.resource(GROUP, VERSION, KIND)
    listed = await kube.list(ar, appset.namespace, label_selector=f"{APPSET_LABEL}={appset.name}")
    return list(listed.items)


async def _live_by_name(
    kube: KubeClient, appset: ApplicationSet, names: set[str]
) -> list[JSONDict]:
    """The labelled Applications plus any unlabelled one holding a wanted name (so a
    foreign Application is seen, never overwritten)."""
    live = await list_appset_apps(kube, appset)
    have = {str(o["metadata"]["name"]) for o in live}
    for name in sorted(names - have):
        obj = await kube.get(ObjectRef(GROUP, VERSION, KIND, appset.namespace, name))
        if obj is not None:
            live.append(obj)
    return live


async def create_app(kube: KubeClient, manifest: JSONDict) -> JSONDict:
    """Create an Application with a POST, which fails (409 AlreadyExists,
    ConflictError) when one of that name exists: a server-side apply would merge
    into an Application someone else made meanwhile and add this ApplicationSet's
    label and ownerReference to it (a later ``sync`` deletion would then take it
    and its objects). Argo CD's controller creates with a create too.

    The fields the create set are then recorded as this field manager's *apply*
    (its managedFields entry's operation rewritten from Update, with the
    created resourceVersion as precondition): an update is a server-side apply,
    and only fields owned by the apply are removed when the template stops
    setting them. If that rewrite loses a race, the next update still applies;
    only a field dropped from the template could then linger."""
    created = await kube.create(manifest, field_manager=FIELD_MANAGER)
    meta = created.get("metadata") or {}
    entries = copy.deepcopy(meta.get("managedFields") or [])
    ours = [
        e for e in entries if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Update"
    ]
    if not ours:
        return created
    for e in ours:
        e["operation"] = "Apply"
    ref = ObjectRef(GROUP, VERSION, KIND, str(meta.get("namespace", "")), str(meta.get("name")))
    patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"), "managedFields": entries}}
    try:
        return await kube.merge_patch(ref, patch)
    except (ConflictError, NotFoundError):
        return created


async def reconcile_appset(
    appset: ApplicationSet, ctx: GeneratorContext, engine: Engine
) -> AppSetOutcome:
    """One pass over ``appset``: generate, diff against the live Applications, write
    what the policy allows; the status to write is in ``AppSetOutcome.status``."""
    kube = engine.kube
    outcome = AppSetOutcome()
    try:
        generated = await generate_apps(appset, ctx)
    except AppSetError as e:
        outcome.error, outcome.reason = str(e), e.reason
        outcome.apps = [o for o in await list_appset_apps(kube, appset) if appset_owns(appset, o)]
        return _finish(appset, outcome)
    live = await _live_by_name(kube, appset, {g.name for g in generated})
    p = plan(appset, generated, live)
    outcome.unchanged = list(p.unchanged)
    outcome.kept = list(p.kept)
    outcome.foreign = list(p.foreign)
    after = {str(o["metadata"]["name"]): o for o in live if appset_owns(appset, o)}
    for g in p.create:
        try:
            created = await create_app(kube, g.manifest)
        except ConflictError:
            # AlreadyExists: someone made it between the read and the create.
            # Never adopted; said in the condition (or, if it is in fact ours, a
            # create whose answer was lost, kept as it is).
            found = await kube.get(ObjectRef(GROUP, VERSION, KIND, appset.namespace, g.name))
            if found is not None and appset_owns(appset, found):
                after[g.name] = found
                outcome.unchanged.append(g.name)
            else:
                outcome.foreign.append(g.name)
                log.info("event=appset_app_exists appset=%s app=%s", appset.name, g.name)
            continue
        except GitmoorError as e:
            outcome.failed.append((g.name, REASON_CREATE_ERROR, str(e)))
            continue
        after[g.name] = created
        outcome.created.append(g.name)
        log.info("event=appset_app_created appset=%s app=%s", appset.name, g.name)
    for g, current in p.update:
        body = copy.deepcopy(g.manifest)
        # The state this diff was made against: a change since is a conflict (the
        # next pass sees it), not overwritten.
        body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        try:
            after[g.name] = await kube.apply(body, field_manager=FIELD_MANAGER, force=True)
            outcome.updated.append(g.name)
            log.info("event=appset_app_updated appset=%s app=%s", appset.name, g.name)
        except GitmoorError as e:
            outcome.failed.append((g.name, REASON_UPDATE_ERROR, str(e)))
    for obj in p.delete:
        name = str(obj["metadata"]["name"])
        try:
            await delete_app(
                engine, appset, name, cascade=not appset.preserve_resources_on_deletion
            )
            after.pop(name, None)
            outcome.deleted.append(name)
        except GitmoorError as e:
            outcome.failed.append((name, REASON_DELETE_ERROR, str(e)))
    for name in p.drifted:
        log.info(
            "event=appset_app_not_updated appset=%s app=%s policy=%s",
            appset.name,
            name,
            appset.policy,
        )
    outcome.apps = list(after.values())
    return _finish(appset, outcome)


def _finish(appset: ApplicationSet, outcome: AppSetOutcome) -> AppSetOutcome:
    """The status of a pass: the conditions of what went wrong, or all well."""
    if outcome.error:
        parameters_ok = outcome.reason != REASON_GENERATION_ERROR
        conds = conditions_for(outcome.error, outcome.reason, parameters_ok=parameters_ok)
    elif outcome.failed or outcome.foreign:
        parts = [f"{name}: {message}" for name, _, message in outcome.failed]
        parts += [
            f"Application {name} already exists and is not owned by ApplicationSet "
            f"{appset.name}; it is left as it is"
            for name in outcome.foreign
        ]
        reason = outcome.failed[0][1] if outcome.failed else REASON_CREATE_ERROR
        outcome.reason = reason
        conds = conditions_for("; ".join(parts), reason)
    else:
        conds = conditions_for()
    resources = appset_resources(appset, outcome.apps)
    outcome.status = {
        "conditions": conds,
        "resources": resources,
        "resourcesCount": len(resources),
    }
    return outcome


async def write_appset_status(kube: KubeClient, obj: JSONDict, status: JSONDict) -> JSONDict | None:
    """Write ``status`` (conditions without times are given theirs) to the
    ApplicationSet's status subresource; None, and no request, when nothing changed."""
    current = obj.get("status") or {}
    new = dict(status)
    if "conditions" in new:
        new["conditions"] = with_times(
            new["conditions"], list(current.get("conditions") or []), now_iso()
        )
    if not status_changed(current, new):
        return None
    meta = obj.get("metadata") or {}
    ref = ObjectRef(APPSET_GROUP, APPSET_VERSION, APPSET_KIND, meta["namespace"], meta["name"])
    return await kube.merge_patch(ref, {"status": new}, subresource="status")


def appset_invalid_spec_status(message: str) -> JSONDict:
    """The status of an ApplicationSet whose spec cannot be parsed."""
    return {
        "conditions": conditions_for(message, REASON_INVALID_SPEC, parameters_ok=False),
    }


# ---------------------------------------------------------------- deletion


def appset_for_deletion(obj: JSONDict) -> ApplicationSet:
    """The ApplicationSet as deletion needs it (name, uid, preserveResourcesOnDeletion),
    even when its spec no longer parses: a broken spec must not keep a deleted
    ApplicationSet (and its namespace) from going."""
    try:
        return parse_appset(obj)
    except UserInputError:
        meta = obj.get("metadata") or {}
        policy = (obj.get("spec") or {}).get("syncPolicy") or {}
        return ApplicationSet(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            generators=(),
            template={},
            go_template=False,
            go_template_options=(),
            policy=DEFAULT_POLICY,
            preserve_resources_on_deletion=policy.get("preserveResourcesOnDeletion") is True,
            raw=obj,
        )


class AppSetCleanupError(GitmoorError):
    """Some Applications of an ApplicationSet could not be deleted (their objects
    could not be: ``Engine.delete`` kept them). The ones that could are gone; the
    caller keeps the ApplicationSet's cleanup finalizer and tries again (Argo CD's
    finalizers keep an Application until its resources are gone). ``failed``: each
    Application with why."""

    def __init__(self, appset: ApplicationSet, failed: list[tuple[str, str]]) -> None:
        shown = "; ".join(f"{name}: {why}" for name, why in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        super().__init__(
            f"{len(failed)} Application(s) of ApplicationSet {appset.name} could not be "
            f"deleted ({shown}{more}); tried again with backoff",
            concerns=f"ApplicationSet {appset.namespace}/{appset.name}",
        )
        self.failed = tuple(failed)


async def delete_app(
    engine: Engine, appset: ApplicationSet, name: str, *, cascade: bool
) -> AppDeletion | None:
    """Delete one owned Application (with its objects when ``cascade``), re-read
    first: one that is gone, or that another owner took, is left alone (None).

    Its destination cluster no longer registered does not stop it (the app goes,
    its objects stay; logged); an object that cannot be deleted raises
    DeleteIncompleteError and keeps the app (``Engine.delete``)."""
    kube = engine.kube
    ref = ObjectRef(GROUP, VERSION, KIND, appset.namespace, name)
    obj = await kube.get(ref)
    if obj is None or not appset_owns(appset, obj):
        return None
    log.info("event=appset_app_deleting appset=%s app=%s cascade=%s", appset.name, name, cascade)
    try:
        app = parse_application(obj)
    except UserInputError:
        # An Application with an invalid spec has no objects the engine could find.
        from gitmoor.engine.app import AppDeletion

        gone = await kube.delete(ref, uid=str(obj["metadata"].get("uid") or "") or None)
        return AppDeletion() if gone else None
    try:
        result = await engine.delete(app, cascade=cascade)
    except NotFoundError:
        return None
    if result.note:
        log.warning(
            "event=appset_app_deleted_objects_left appset=%s app=%s cluster=%s objects_left=%d",
            appset.name,
            name,
            result.unreachable_cluster,
            len(result.left),
        )
    return result


async def delete_apps(engine: Engine, appset: ApplicationSet, *, cascade: bool) -> list[str]:
    """Delete every Application ``appset`` owns; the names deleted. Every one is
    tried; if any could not be deleted, AppSetCleanupError names them after."""
    deleted: list[str] = []
    failed: list[tuple[str, str]] = []
    for obj in await list_appset_apps(engine.kube, appset):
        if appset_owns(appset, obj):
            name = str(obj["metadata"]["name"])
            try:
                if await delete_app(engine, appset, name, cascade=cascade) is not None:
                    deleted.append(name)
            except ApiUnavailableError:
                raise  # the API server itself: the caller's short retry
            except GitmoorError as e:
                failed.append((name, str(e)))
    if failed:
        raise AppSetCleanupError(appset, failed)
    return deleted


async def orphan_apps(kube: KubeClient, appset: ApplicationSet) -> list[str]:
    """Release every Application ``appset`` owns (owner reference and label off), so
    that deleting the ApplicationSet leaves them in place (kubectl's orphan cascade)."""
    released = []
    for obj in await list_appset_apps(kube, appset):
        if not appset_owns(appset, obj):
            continue
        meta = obj["metadata"]
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != appset.uid]
        patch = {
            "metadata": {
                "resourceVersion": meta.get("resourceVersion"),
                "ownerReferences": refs or None,
                "labels": {APPSET_LABEL: None},
            }
        }
        ref = ObjectRef(GROUP, VERSION, KIND, appset.namespace, str(meta["name"]))
        with contextlib.suppress(NotFoundError):
            await kube.merge_patch(ref, patch)
            released.append(str(meta["name"]))
    return released


def appset_ref(name: str, namespace: str) -> ObjectRef:
    return ObjectRef(APPSET_GROUP, APPSET_VERSION, APPSET_KIND, namespace, name)


async def set_appset_finalizer(
    kube: KubeClient, obj: JSONDict, *, present: bool
) -> JSONDict | None:
    """Add or remove ``gitmoor.io/appset-cleanup``, with the object's
    resourceVersion as precondition (a conflict means: look again). The object as
    written; None when nothing needed writing or it is gone."""
    meta = obj.get("metadata") or {}
    finalizers = [str(f) for f in meta.get("finalizers") or []]
    if (APPSET_FINALIZER in finalizers) == present:
        return None
    new = (
        [*finalizers, APPSET_FINALIZER]
        if present
        else [f for f in finalizers if f != APPSET_FINALIZER]
    )
    patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"), "finalizers": new}}
    try:
        return await kube.merge_patch(appset_ref(meta["name"], meta["namespace"]), patch)
    except NotFoundError:
        return None


async def _cleanup_apps(engine: Engine, appset: ApplicationSet) -> list[str]:
    """:func:`delete_apps` for an ApplicationSet being deleted; when some cannot be
    deleted, the ``ErrorOccurred`` condition (``DeleteApplicationError``) says
    which and why before AppSetCleanupError goes to the caller."""
    try:
        return await delete_apps(engine, appset, cascade=not appset.preserve_resources_on_deletion)
    except AppSetCleanupError as e:
        log.warning(
            "event=appset_cleanup_incomplete appset=%s failed=%d", appset.name, len(e.failed)
        )
        with contextlib.suppress(GitmoorError):
            fresh = await engine.kube.get(appset_ref(appset.name, appset.namespace))
            if fresh is not None:
                status = {"conditions": conditions_for(str(e), REASON_DELETE_ERROR)}
                await write_appset_status(engine.kube, fresh, status)
        raise


async def finalize_appset(engine: Engine, appset: ApplicationSet) -> list[str]:
    """An ApplicationSet being deleted: delete its Applications (their objects too,
    unless ``preserveResourcesOnDeletion``), then let it go.

    An Application whose destination cluster is no longer registered does not
    hold it (the app is deleted, its objects are left, as Argo CD does). One
    whose objects cannot be deleted does: the finalizer stays, the
    ``ErrorOccurred`` condition (``DeleteApplicationError``) says which and why,
    and AppSetCleanupError is raised for the caller to try again with backoff."""
    deleted = await _cleanup_apps(engine, appset)
    await set_appset_finalizer(engine.kube, appset.raw, present=False)
    log.info("event=appset_finalized appset=%s apps_deleted=%d", appset.name, len(deleted))
    return deleted


@dataclass(frozen=True, slots=True)
class AppSetDeletion:
    """What deleting an ApplicationSet did to its Applications."""

    deleted: tuple[str, ...] = ()
    orphaned: tuple[str, ...] = ()


async def delete_appset(
    engine: Engine, appset: ApplicationSet, *, cascade: bool = True
) -> AppSetDeletion:
    """``gitmoor appset delete``: with ``cascade`` the Applications go too (each with
    its objects unless ``preserveResourcesOnDeletion``), as Argo CD's owner
    references take them; without, they are released first and stay.

    The finalizer is put on before the delete, so that the garbage collector
    (which would delete the Applications but not their objects) cannot act first
    and a running controller stops creating Applications the moment the
    deletion starts."""
    kube = engine.kube
    ref = appset_ref(appset.name, appset.namespace)
    if not cascade:
        orphaned = await orphan_apps(kube, appset)
        await kube.delete(ref, uid=appset.uid or None)
        fresh = await kube.get(ref)
        if fresh is not None:
            await set_appset_finalizer(kube, fresh, present=False)
        return AppSetDeletion(orphaned=tuple(orphaned))
    if APPSET_FINALIZER not in (appset.raw.get("metadata") or {}).get("finalizers", []):
        await set_appset_finalizer(kube, appset.raw, present=True)
    await kube.delete(ref, uid=appset.uid or None)
    # An app that cannot be deleted raises here and keeps the finalizer: the
    # controller tries again with backoff.
    deleted = await _cleanup_apps(engine, appset)
    fresh = await kube.get(ref)
    if fresh is not None:
        await set_appset_finalizer(kube, fresh, present=False)
    return AppSetDeletion(deleted=tuple(deleted))


__all__ = [
    "APPSET_FINALIZER",
    "FIELD_MANAGER",
    "AppSetCleanupError",
    "AppSetDeletion",
    "AppSetError",
    "AppSetOutcome",
    "AppSetPlan",
    "Generated",
    "allows_delete",
    "allows_update",
    "appset_for_deletion",
    "appset_invalid_spec_status",
    "appset_owns",
    "appset_ref",
    "appset_resources",
    "check_duplicates",
    "conditions_for",
    "delete_apps",
    "delete_appset",
    "finalize_appset",
    "generate_apps",
    "list_appset_apps",
    "needs_update",
    "orphan_apps",
    "owned_manifest",
    "owner_reference",
    "plan",
    "reconcile_appset",
    "set_appset_finalizer",
    "with_times",
    "write_appset_status",
]
