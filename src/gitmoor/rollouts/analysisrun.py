"""Creating AnalysisRuns from AnalysisTemplates, as the Rollout controller asks.

The Rollout controller (``rollouts.controller``) never measures anything: as
in Argo Rollouts, it creates an ``AnalysisRun`` owned by the Rollout and
reads its ``status.phase``; the analysis controller
(``rollouts.analysis_controller``) takes the measurements. This module is
the Rollout side of that contract:

- :func:`create_analysis_run` flattens the named ``AnalysisTemplate`` /
  ``ClusterAnalysisTemplate`` objects into one run (their metrics, args,
  ``dryRun`` and ``measurementRetention``, as upstream's
  ``NewAnalysisRunFromTemplates``), fills the template args from the
  Rollout's args (``value``, ``valueFrom.fieldRef`` read from the Rollout,
  ``valueFrom.podTemplateHashValue``), keeps ``secretKeyRef`` args for the
  analysis controller to read at measurement time, and creates the run
  owned by the Rollout (``controller: true``). A template that is missing or
  an arg left without a value still creates the run, ended ``Error`` with
  the reason, so the Rollout sees one place to read what went wrong.
- :func:`terminate_analysis_run` sets ``spec.terminate`` (a promotion or an
  abort ends a background analysis).
- :func:`run_phase` / :func:`run_message` read a run's outcome.
"""

from __future__ import annotations

import copy
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gitmoor.kube import ConflictError, NotFoundError
from gitmoor.model import JSONDict, ObjectRef
from gitmoor.rollouts.analysis import (
    COMPLETED,
    ERROR,
    FAILED,
    INCONCLUSIVE,
    PENDING,
    PHASES,
    RUNNING,
    SUCCESSFUL,
    AnalysisSpecError,
    ArgumentError,
    timestamp,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.rollouts.analysis")

GROUP = "argoproj.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
#: the label Argo Rollouts puts on a ReplicaSet, read by ``podTemplateHashValue``
POD_TEMPLATE_HASH = "rollouts-pod-template-hash"

__all__ = [
    "ERROR",
    "FAILED",
    "INCONCLUSIVE",
    "PENDING",
    "PHASES",
    "RUNNING",
    "SUCCESSFUL",
    "create_analysis_run",
    "flatten_templates",
    "merge_args",
    "owner_field",
    "run_message",
    "run_phase",
    "terminate_analysis_run",
    "write_status",
]


def run_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(GROUP, VERSION, "AnalysisRun", namespace, name)


def run_phase(run: JSONDict) -> str:
    """The run's phase; a run the analysis controller has not seen yet is Pending."""
    return str((run.get("status") or {}).get("phase") or PENDING)


def run_message(run: JSONDict) -> str:
    return str((run.get("status") or {}).get("message") or "")


# --------------------------------------------------------------------- args


_SEGMENT = re.compile(r"""\[\s*(['"])(.*?)\1\s*\]|\[(\d+)\]|\.?([^.\[\]]+)""")


def owner_field(owner: JSONDict, path: str) -> str:
    """The value at ``fieldRef.fieldPath`` in the Rollout: ``metadata.name``,
    ``metadata.labels['app']`` (the downward API's spelling, as upstream's
    ``fieldpath.ExtractFieldPathAsString``), or any path into the object,
    ``spec.template.metadata.labels.app`` (upstream's ``extractValueFromRollout``).
    It must end at a primitive value."""
    node: Any = owner
    pos = 0
    text = path.strip()
    if not text:
        raise ArgumentError("fieldRef.fieldPath is empty")
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if m is None or m.end() == pos:
            raise ArgumentError(f"invalid path {path} in rollout")
        pos = m.end()
        key = m.group(2) if m.group(1) else (m.group(3) or m.group(4))
        if isinstance(node, list):
            if not key.isdigit():
                raise ArgumentError(f"invalid index '{key}' in {path}")
            i = int(key)
            if i >= len(node):
                raise ArgumentError(f"index {i} out of range in {path}")
            node = node[i]
        elif isinstance(node, dict):
            node = node.get(key)
        else:
            raise ArgumentError(f"invalid path {path} in rollout")
    if node is None:
        raise ArgumentError(f"invalid path {path} in rollout")
    if isinstance(node, (dict, list)):
        raise ArgumentError(f"path {path} in rollout must terminate in a primitive value")
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _incoming_args(args: list[JSONDict], owner: JSONDict) -> list[JSONDict]:
    """The Rollout's analysis args with ``valueFrom`` read from the Rollout
    (``BuildArgumentsForRolloutAnalysisRun``)."""
    out: list[JSONDict] = []
    status = owner.get("status") or {}
    for arg in args:
        name = str(arg.get("name") or "")
        value_from = arg.get("valueFrom") or {}
        if arg.get("value") is not None:
            out.append({"name": name, "value": str(arg["value"])})
        elif value_from.get("fieldRef"):
            path = str((value_from["fieldRef"] or {}).get("fieldPath") or "")
            out.append({"name": name, "value": owner_field(owner, path)})
        elif value_from.get("podTemplateHashValue"):
            which = value_from["podTemplateHashValue"]
            value = status.get("currentPodHash") if which == "Latest" else status.get("stableRS")
            if not value:
                raise ArgumentError(
                    f"args.{name}: the Rollout has no {which} pod template hash yet"
                )
            out.append({"name": name, "value": str(value)})
        elif value_from:
            out.append({"name": name, "valueFrom": copy.deepcopy(value_from)})
        else:
            out.append({"name": name})
    return out


def merge_args(incoming: list[JSONDict], template_args: list[JSONDict]) -> list[JSONDict]:
    """The templates' args filled from the Rollout's (``MergeArgs``): an incoming
    ``value`` (or ``valueFrom``) replaces the template's; an arg left with
    neither is an error; incoming args no template declares are dropped."""
    merged = [copy.deepcopy(a) for a in template_args]
    for arg in incoming:
        for target in merged:
            if target.get("name") != arg.get("name"):
                continue
            if arg.get("value") is not None:
                target["value"] = arg["value"]
                target.pop("valueFrom", None)
            elif arg.get("valueFrom"):
                target["valueFrom"] = arg["valueFrom"]
    for arg in merged:
        if arg.get("value") is None and not arg.get("valueFrom"):
            raise ArgumentError(f"args.{arg.get('name')} was not resolved")
    return merged


# --------------------------------------------------------------------- templates


async def _template(
    kube: KubeClient, namespace: str, ref: JSONDict, depth: int = 0
) -> list[JSONDict]:
    """The template a ``{templateName, clusterScope}`` names, followed by the
    templates it names itself (``spec.templates``), depth first."""
    name = str(ref.get("templateName") or "")
    if not name:
        raise AnalysisSpecError("a template reference has no templateName")
    cluster = bool(ref.get("clusterScope"))
    kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
    obj = await kube.get(ObjectRef(GROUP, VERSION, kind, "" if cluster else namespace, name))
    if obj is None:
        where = "" if cluster else f" in namespace {namespace}"
        raise AnalysisSpecError(f'{kind} "{name}" not found{where}')
    found = [obj]
    if depth > 8:
        raise AnalysisSpecError(f"{kind} {name}: templates nested too deep (a cycle?)")
    for inner in (obj.get("spec") or {}).get("templates") or []:
        found.extend(await _template(kube, namespace, inner, depth + 1))
    return found


def flatten_templates(templates: list[JSONDict]) -> JSONDict:
    """One spec of the templates' metrics, args, dryRun and measurementRetention
    (``FlattenTemplates``): two metrics of one name, or one arg given two
    different values, are errors."""
    metrics: list[JSONDict] = []
    args: list[JSONDict] = []
    dry_run: list[JSONDict] = []
    retention: list[JSONDict] = []
    names: set[str] = set()
    for t in templates:
        spec = t.get("spec") or {}
        for m in spec.get("metrics") or []:
            if m.get("name") in names:
                raise AnalysisSpecError(f"two metrics have the same name '{m.get('name')}'")
            names.add(str(m.get("name")))
            metrics.append(copy.deepcopy(m))
        for a in spec.get("args") or []:
            prev = next((p for p in args if p.get("name") == a.get("name")), None)
            if prev is None:
                args.append(copy.deepcopy(a))
                continue
            if (
                prev.get("value") is not None
                and a.get("value") is not None
                and prev["value"] != a["value"]
            ):
                raise AnalysisSpecError(
                    f"Argument `{a.get('name')}` specified multiple times with different "
                    f"values: '{prev['value']}', '{a['value']}'"
                )
            if prev.get("value") is None:
                prev.clear()
                prev.update(copy.deepcopy(a))
        dry_run.extend(copy.deepcopy(spec.get("dryRun") or []))
        retention.extend(copy.deepcopy(spec.get("measurementRetention") or []))
    out: JSONDict = {"metrics": metrics}
    if args:
        out["args"] = args
    if dry_run:
        out["dryRun"] = dry_run
    if retention:
        out["measurementRetention"] = retention
    return out


# --------------------------------------------------------------------- create


def _controller_uid(obj: JSONDict) -> str:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


async def create_analysis_run(
    kube: KubeClient,
    *,
    namespace: str,
    name: str,
    templates: list[JSONDict],
    args: list[JSONDict],
    owner: JSONDict,
    labels: dict[str, str],
    background: bool = False,
) -> JSONDict:
    """Create the run and return it as created (see the module docstring).

    ``background`` marks a canary's ``spec.strategy.canary.analysis``: its
    metrics' own ``interval``/``count`` decide how long it runs (an interval
    without a count runs until :func:`terminate_analysis_run`), exactly as
    upstream, so it changes nothing in the spec; it is logged for the reader.

    A name already taken by this owner's run with the same spec, still
    running, returns that run (a Rollout reconciled twice from a stale read);
    any other clash takes the name ``NAME.1``, ``NAME.2``, … as upstream's
    ``CreateWithCollisionCounter``."""
    meta = owner.get("metadata") or {}
    error = ""
    spec: JSONDict = {"metrics": []}
    try:
        found: list[JSONDict] = []
        for ref in templates:
            found.extend(await _template(kube, namespace, ref))
        spec = flatten_templates(found)
        merged = merge_args(_incoming_args(args, owner), list(spec.get("args") or []))
        if merged:
            spec["args"] = merged
    except AnalysisSpecError as e:
        error = e.message
    owner_ref = {
        "apiVersion": owner.get("apiVersion") or API_VERSION,
        "kind": owner.get("kind") or "Rollout",
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    obj: JSONDict = {
        "apiVersion": API_VERSION,
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [owner_ref],
        },
        "spec": spec,
    }
    created = await _create_with_collision(kube, obj, str(meta.get("uid") or ""))
    log.info(
        "event=analysisrun_created namespace=%s name=%s owner=%s background=%s error=%s",
        namespace,
        created["metadata"]["name"],
        meta.get("name"),
        background,
        bool(error),
    )
    if error:
        created = await _end_in_error(kube, created, error)
    return created


async def _create_with_collision(kube: KubeClient, obj: JSONDict, owner_uid: str) -> JSONDict:
    base = obj["metadata"]["name"]
    for n in range(0, 100):
        obj["metadata"]["name"] = base if n == 0 else f"{base}.{n}"
        try:
            return await kube.create(obj)
        except ConflictError as e:
            if e.reason != "AlreadyExists":
                raise
        existing = await kube.get(run_ref(obj["metadata"]["namespace"], obj["metadata"]["name"]))
        if (
            existing is not None
            and run_phase(existing) not in COMPLETED
            and existing.get("spec") == obj["spec"]
            and owner_uid
            and _controller_uid(existing) == owner_uid
        ):
            return existing
    raise AnalysisSpecError(f"AnalysisRun {base}: 100 names taken", concerns=base)


async def write_status(kube: KubeClient, run: JSONDict) -> JSONDict:
    """Write the run's ``status`` with optimistic concurrency (its
    ``resourceVersion``: a 409 ``ConflictError`` if it changed since read).

    Argo Rollouts' AnalysisRun CRD has no status subresource (its analysis
    controller patches the object), and neither has gitmoor's copy, so the
    status goes with the object. Under a CRD that does declare one, the server
    drops a status written that way: it is then written to ``/status``."""
    ref = run_ref(run["metadata"]["namespace"], run["metadata"]["name"])
    written = await kube.replace(ref, run)
    if written.get("status") != run.get("status"):
        again = {
            **run,
            "metadata": {
                **run["metadata"],
                **{"resourceVersion": written["metadata"]["resourceVersion"]},
            },
        }
        try:
            written = await kube.replace(ref, again, subresource="status")
        except NotFoundError:
            # no status subresource after all: the schema pruned part of it
            return written
    return written


async def _end_in_error(kube: KubeClient, run: JSONDict, message: str) -> JSONDict:
    """Write ``status.phase: Error`` with the reason (retrying a write that races
    the analysis controller's own, which ends such a run in Error too)."""
    ref = run_ref(run["metadata"]["namespace"], run["metadata"]["name"])
    now = timestamp(datetime.now(UTC))
    for _ in range(5):
        if run_phase(run) in COMPLETED:
            return run
        run["status"] = {
            **(run.get("status") or {}),
            "phase": ERROR,
            "message": message,
            "startedAt": (run.get("status") or {}).get("startedAt") or now,
            "completedAt": now,
        }
        try:
            return await write_status(kube, run)
        except ConflictError:
            fresh = await kube.get(ref)
            if fresh is None:
                return run
            run = fresh
    return run


async def terminate_analysis_run(kube: KubeClient, namespace: str, name: str) -> None:
    """Ask the run to stop (``spec.terminate: true``); a run already gone is fine."""
    try:
        await kube.merge_patch(run_ref(namespace, name), {"spec": {"terminate": True}})
    except NotFoundError:
        return
