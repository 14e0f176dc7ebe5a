"""The ReplicaSets of a Rollout: naming, the pod-template hash, creation,
scaling, history cleanup, and the basic canary's replica arithmetic.

As Argo Rollouts does (utils/replicaset, rollout/replicaset.go):
- each pod template gets a hash; its ReplicaSet is ``<rollout>-<hash>``,
  labelled (and selecting, and stamping its pods) with
  ``rollouts-pod-template-hash=<hash>``, controlled by the Rollout
  (ownerReference ``controller: true``) and annotated with
  ``rollout.argoproj.io/revision``;
- a ReplicaSet is found by its hash label before one is created, so a
  restarted controller adopts the one it made before instead of making a
  second;
- a ReplicaSet that must go away later carries the ``scale-down-deadline``
  annotation (RFC 3339), so the deadline survives a restart;
- ``revisionHistoryLimit`` old ReplicaSets at zero replicas are kept.

The hash is an FNV-1a 32-bit of the template's canonical JSON, encoded with
Kubernetes' ``rand.SafeEncodeString`` alphabet, the same construction as
upstream's ComputeHash (upstream hashes Go's struct dump, so the value differs;
what matters is that it is stable across restarts and versions of gitmoor).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gitmoor.kube import ConflictError, NotFoundError
from gitmoor.model import JSONDict, ObjectRef
from gitmoor.rollouts.spec import Canary, Rollout, int_or_percent

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

HASH_LABEL = "rollouts-pod-template-hash"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
DESIRED_REPLICAS_ANNOTATION = "rollout.argoproj.io/desired-replicas"
SCALE_DOWN_DEADLINE_ANNOTATION = "scale-down-deadline"
#: what ``restartAt`` stamps on pods (upstream's restart annotation on the template)
RESTARTED_AT_ANNOTATION = "rollout.argoproj.io/restartedAt"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: the field manager of every write this controller makes (GitOps-safe: see controller.py)
FIELD_MANAGER = "gitmoor-rollouts"


#: what the API server fills into a pod template it stores in a ReplicaSet
_POD_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {},
    "schedulerName": "default-scheduler",
}
_CONTAINER_DEFAULTS: dict[str, Any] = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
_PROBE_DEFAULTS: dict[str, Any] = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}


def _pull_policy_default(image: str) -> str:
    tag = image.rsplit("/", 1)[-1]
    if "@" in tag:
        return "IfNotPresent"
    return "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"


def _strip(obj: dict[str, Any], defaults: dict[str, Any]) -> None:
    for k, v in defaults.items():
        if k in obj and obj[k] == v:
            del obj[k]


def without_defaults(template: JSONDict) -> JSONDict:
    """``template`` without the values the API server defaults in a stored pod
    template (and without the hash label). A template copied back from a
    ReplicaSet (``kubectl argo rollouts undo`` does that) then hashes as the one
    it came from, so the ReplicaSet is found again, where upstream falls back to
    comparing the templates after defaulting (FindNewReplicaSet,
    PodTemplateEqualIgnoreHash). Writing a default value explicitly changes no pod,
    and changes no hash either."""
    t = copy.deepcopy(template)
    meta = t.get("metadata")
    if isinstance(meta, dict):
        if meta.get("creationTimestamp") is None:
            meta.pop("creationTimestamp", None)
        labels = meta.get("labels")
        if isinstance(labels, dict):
            labels.pop(HASH_LABEL, None)
    spec = t.get("spec")
    if not isinstance(spec, dict):
        return t
    _strip(spec, _POD_DEFAULTS)
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            _strip(c, _CONTAINER_DEFAULTS)
            if c.get("imagePullPolicy") == _pull_policy_default(str(c.get("image", ""))):
                del c["imagePullPolicy"]
            for port in c.get("ports") or []:
                if isinstance(port, dict) and port.get("protocol") == "TCP":
                    del port["protocol"]
            for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = c.get(probe_key)
                if isinstance(probe, dict):
                    _strip(probe, _PROBE_DEFAULTS)
                    http = probe.get("httpGet")
                    if isinstance(http, dict) and http.get("scheme") == "HTTP":
                        del http["scheme"]
    for vol in spec.get("volumes") or []:
        if not isinstance(vol, dict):
            continue
        for src in ("configMap", "secret", "projected", "downwardAPI"):
            body = vol.get(src)
            if isinstance(body, dict) and body.get("defaultMode") == 420:
                del body["defaultMode"]
    return t


def pod_template_hash(template: JSONDict, collision_count: int = 0) -> str:
    """The stable hash of a pod template (see the module docstring), taken over
    the template without server defaults (:func:`without_defaults`)."""
    canonical = json.dumps(
        without_defaults(template), sort_keys=True, separators=(",", ":")
    ).encode()
    h = 0x811C9DC5
    for b in canonical:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    if collision_count:
        for b in str(collision_count).encode():
            h ^= b
            h = (h * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(h))


def rs_replicas(rs: JSONDict | None) -> int:
    if rs is None:
        return 0
    return int((rs.get("spec") or {}).get("replicas") or 0)


def rs_available(rs: JSONDict | None) -> int:
    if rs is None:
        return 0
    return int((rs.get("status") or {}).get("availableReplicas") or 0)


def rs_ready(rs: JSONDict | None) -> int:
    if rs is None:
        return 0
    return int((rs.get("status") or {}).get("readyReplicas") or 0)


def rs_status_replicas(rs: JSONDict | None) -> int:
    if rs is None:
        return 0
    return int((rs.get("status") or {}).get("replicas") or 0)


def rs_hash(rs: JSONDict) -> str:
    return str(((rs.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL, ""))


def rs_name(rs: JSONDict) -> str:
    return str((rs.get("metadata") or {}).get("name", ""))


def rs_revision(rs: JSONDict) -> int:
    raw = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION, "0")
    try:
        return int(raw)
    except ValueError:
        return 0


def rs_deadline(rs: JSONDict) -> datetime | None:
    raw = ((rs.get("metadata") or {}).get("annotations") or {}).get(SCALE_DOWN_DEADLINE_ANNOTATION)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def owned_by(obj: JSONDict, rollout: Rollout) -> bool:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Rollout" and ref.get("uid") == rollout.uid:
            return True
    return False


def desired_template(rollout: Rollout) -> JSONDict:
    """The pod template the current revision runs: the Rollout's, with the
    ``restartAt`` stamp left out of the hash (a restart is not a new revision
    upstream: its pods are recreated in place by the restart logic)."""
    return copy.deepcopy(rollout.template)


def new_replicaset(rollout: Rollout, hash_: str, replicas: int, revision: int) -> JSONDict:
    template = desired_template(rollout)
    tmeta = template.setdefault("metadata", {})
    labels = dict(tmeta.get("labels") or {})
    labels[HASH_LABEL] = hash_
    tmeta["labels"] = labels
    selector = copy.deepcopy(rollout.selector)
    match = dict(selector.get("matchLabels") or {})
    match[HASH_LABEL] = hash_
    selector["matchLabels"] = match
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{rollout.name}-{hash_}",
            "namespace": rollout.namespace,
            "labels": labels,
            "annotations": {
                REVISION_ANNOTATION: str(revision),
                DESIRED_REPLICAS_ANNOTATION: str(rollout.replicas),
            },
            "ownerReferences": [rollout.owner_reference()],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": rollout.min_ready_seconds,
            "selector": selector,
            "template": template,
        },
    }


def rs_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("apps", "v1", "ReplicaSet", namespace, name)


async def create_replicaset(
    kube: KubeClient, rollout: Rollout, hash_: str, replicas: int, revision: int
) -> JSONDict:
    """Create the ReplicaSet of ``hash_``; if one of that name exists already
    (created by an earlier run whose cache had not caught up), return it."""
    obj = new_replicaset(rollout, hash_, replicas, revision)
    try:
        return await kube.create(obj, field_manager=FIELD_MANAGER)
    except ConflictError:
        live = await kube.get(rs_ref(rollout.namespace, obj["metadata"]["name"]))
        if live is None or not owned_by(live, rollout):
            raise
        return live


async def scale(kube: KubeClient, rs: JSONDict, replicas: int) -> JSONDict:
    meta = rs.get("metadata") or {}
    try:
        return await kube.merge_patch(
            rs_ref(str(meta.get("namespace", "")), str(meta.get("name", ""))),
            {"spec": {"replicas": replicas}},
        )
    except NotFoundError:
        return rs


async def annotate(kube: KubeClient, rs: JSONDict, annotations: dict[str, str | None]) -> JSONDict:
    meta = rs.get("metadata") or {}
    try:
        return await kube.merge_patch(
            rs_ref(str(meta.get("namespace", "")), str(meta.get("name", ""))),
            {"metadata": {"annotations": annotations}},
        )
    except NotFoundError:
        return rs


def history_to_delete(old: list[JSONDict], limit: int) -> list[JSONDict]:
    """Old ReplicaSets beyond ``revisionHistoryLimit``: only those already at zero,
    oldest revision first (upstream's cleanupRollouts)."""
    idle = sorted(
        (rs for rs in old if rs_replicas(rs) == 0 and rs_status_replicas(rs) == 0),
        key=rs_revision,
    )
    excess = len(idle) - max(limit, 0)
    return idle[:excess] if excess > 0 else []


# ---------------------------------------------------------------- canary arithmetic


@dataclass(frozen=True, slots=True)
class RSCount:
    """What the canary arithmetic needs of a ReplicaSet: spec and available replicas."""

    replicas: int
    available: int

    @staticmethod
    def of(rs: JSONDict | None) -> RSCount | None:
        return None if rs is None else RSCount(rs_replicas(rs), rs_available(rs))


def fenceposts(canary: Canary, replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as counts (resolveFenceposts): surge rounds up,
    unavailable down, and both at zero means unavailable 1."""
    surge = int_or_percent(canary.max_surge, replicas, round_up=True)
    unavailable = int_or_percent(canary.max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def weighted_counts(replicas: int, weight: int, max_surge: int) -> tuple[int, int]:
    """(canary, stable) closest to ``weight`` percent (upstream's
    approximateWeightedCanaryStableReplicaCounts): the candidates are the floor
    and the ceiling of the weighted count, over ``replicas`` and, when a surge is
    allowed, ``replicas + 1``; a weight of 1-99 never rounds to zero canaries
    (or to zero stable) with two or more pods; a tie takes the larger canary."""
    if replicas == 0:
        return 0, 0
    exact = replicas * weight / 100
    ceil_c, floor_c = math.ceil(exact), math.floor(exact)

    def tied(total: int) -> bool:
        return (total * weight / 100) % 1 == 0.5

    zero_ok = weight in (0, 100) or (replicas == 1 and max_surge == 0)
    options: list[tuple[int, int]] = []
    if ceil_c < replicas or zero_ok:
        options.append((ceil_c, replicas))
    if not tied(replicas) and (floor_c != 0 or zero_ok):
        options.append((floor_c, replicas))
    if max_surge > 0:
        options.append((ceil_c, replicas + 1))
        if not tied(replicas + 1) and (floor_c != 0 or zero_ok):
            options.append((floor_c, replicas + 1))
    if not options:
        return 0, replicas

    def delta(opt: tuple[int, int]) -> float:
        return abs(opt[0] * 100 / opt[1] - weight)

    best = options[0]
    for opt in options[1:]:
        if delta(opt) < delta(best):
            best = opt
    return best[0], best[1] - best[0]


def _for_scale_down(rs: RSCount | None, ignore_availability: bool) -> int:
    if rs is None:
        return 0
    if rs.replicas < rs.available or ignore_availability:
        return rs.replicas
    return rs.available


def basic_canary_counts(
    *,
    replicas: int,
    weight: int,
    max_surge: int,
    max_unavailable: int,
    new: RSCount | None,
    stable: RSCount | None,
    older_replicas: int = 0,
) -> tuple[int, int]:
    """(new, stable) replica counts for this reconcile of a basic canary, a step at
    a time within maxSurge and maxUnavailable (upstream's
    CalculateReplicaCountsForBasicCanary): scale up the stable first, then the
    canary, within ``replicas + maxSurge``; scale down older ReplicaSets before
    anything else, then the side whose weight goes down, never below
    ``replicas - maxUnavailable`` available pods. ``stable`` is None when there is
    no stable ReplicaSet distinct from ``new``: the new one then takes all."""
    want_new, want_stable = weighted_counts(replicas, weight, max_surge)
    new_count = new.replicas if new is not None else 0
    stable_count = 0
    if stable is not None:
        stable_count = stable.replicas
    else:
        want_new, want_stable = replicas, 0
    ceiling = replicas + max_surge
    total = (new.replicas if new else 0) + (stable.replicas if stable else 0) + older_replicas
    room = ceiling - total
    if stable is not None and stable.replicas < want_stable and room > 0:
        if stable.replicas + room < want_stable:
            stable_count, room = stable.replicas + room, 0
        else:
            room -= want_stable - stable.replicas
            stable_count = want_stable
    if new is not None and new.replicas < want_new and room > 0:
        new_count = min(new.replicas + room, want_new)
    if older_replicas > 0:
        return new_count, stable_count
    min_available = replicas - max_unavailable
    increasing = new is None or want_new >= new.replicas
    can_drop = _for_scale_down(new, not increasing) + _for_scale_down(stable, increasing)
    if can_drop <= min_available:
        return new_count, stable_count
    drop = can_drop - min_available
    if not increasing:
        if new is not None and new.replicas > want_new:
            new_count = max(want_new, new.replicas - drop)
        new_count, stable_count = _within_limits(
            new, stable, new_count, stable_count, ceiling, min_available
        )
    elif stable is not None:
        if stable.replicas > want_stable:
            stable_count = max(want_stable, stable.replicas - drop)
        stable_count, new_count = _within_limits(
            stable, new, stable_count, new_count, ceiling, min_available
        )
    return new_count, stable_count


def _within_limits(
    drain: RSCount | None,
    adjust: RSCount | None,
    drain_count: int,
    adjust_count: int,
    ceiling: int,
    min_available: int,
) -> tuple[int, int]:
    """Upstream's adjustReplicaWithinLimits: keep the pair under the surge ceiling
    without taking availability below the floor."""
    over = max(0, adjust_count + drain_count - ceiling)
    available = min(drain.available, drain_count) if drain is not None else 0
    if adjust is not None:
        adjust_count -= over
        available += min(adjust.available, adjust_count)
        extra = max(0, adjust.available - adjust_count)
        short = max(0, min_available - available)
        adjust_count += min(extra, short)
        over = max(0, adjust_count + drain_count - ceiling)
        drain_count -= over
    return drain_count, adjust_count


def now_utc() -> datetime:
    return datetime.now(UTC)
