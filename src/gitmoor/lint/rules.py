"""The built-in policy rules: what a reviewer would otherwise check by hand.

Each rule is registered (``findings.RULES``) with an id, a slug, a severity and
a "how to fix", and checked by one function that takes an object (and the
app's other objects, for rules about relations such as a PodDisruptionBudget)
and yields :class:`Hit`\\ s: the message and the JSON path of the field at
fault, which ``run`` turns into a file, line and column.

The set follows the checks kube-linter and Polaris ship by default
(``unset-cpu-requirements``, ``latest-tag``, ``privileged-container``,
``host-network``, ``run-as-non-root``, ``no-read-only-root-fs``,
``no-readiness-probe``, ``dangling-service``'s kin), trimmed to what the
issue names. Pod templates are found where Kubernetes keeps them: ``spec`` of a
Pod, ``spec.template.spec`` of a Deployment, StatefulSet, DaemonSet,
ReplicaSet or Job, ``spec.jobTemplate.spec.template.spec`` of a CronJob.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitmoor.lint.findings import Rule, Severity, register

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

Path = tuple[str | int, ...]
JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule broken by one object: the message and the path of the field."""

    rule: Rule
    message: str
    path: Path = ()


RESOURCES = register(
    Rule(
        "GM101",
        "container-resources",
        Severity.WARNING,
        "a container has no resource requests or limits",
        "Set resources.requests (cpu, memory: what the scheduler reserves) and "
        "resources.limits (at least memory) on every container.",
    )
)
IMAGE_TAG = register(
    Rule(
        "GM102",
        "image-tag",
        Severity.WARNING,
        "an image has no tag or uses the 'latest' tag",
        "Pin the image to a version tag (image:1.4.2) or a digest (image@sha256:…), so "
        "the same commit always runs the same image.",
    )
)
PLAINTEXT_SECRET = register(
    Rule(
        "GM103",
        "plaintext-secret",
        Severity.ERROR,
        "a Secret is committed in plain text (not SOPS-encrypted)",
        "Encrypt the file with sops (`gitmoor secret edit FILE` or `sops -e -i FILE`), "
        "or feed a secretGenerator from an encrypted file; rotate a value that was pushed.",
    )
)
PRIVILEGED = register(
    Rule(
        "GM104",
        "privileged-container",
        Severity.ERROR,
        "a container runs privileged",
        "Remove securityContext.privileged (or set it to false); grant the single "
        "capability needed with securityContext.capabilities.add instead.",
    )
)
HOST_PATH = register(
    Rule(
        "GM105",
        "host-path",
        Severity.ERROR,
        "a pod mounts a hostPath volume",
        "Use a PersistentVolumeClaim, a ConfigMap/Secret or an emptyDir instead of a "
        "directory of the node.",
    )
)
HOST_NETWORK = register(
    Rule(
        "GM106",
        "host-network",
        Severity.ERROR,
        "a pod uses the node's network namespace (hostNetwork)",
        "Remove spec.hostNetwork; expose the pod through a Service instead.",
    )
)
RUN_AS_NON_ROOT = register(
    Rule(
        "GM107",
        "run-as-non-root",
        Severity.WARNING,
        "a container may run as root (runAsNonRoot is not true)",
        "Set securityContext.runAsNonRoot: true on the pod or the container (and a "
        "runAsUser other than 0 if the image's user is root).",
    )
)
READ_ONLY_ROOT = register(
    Rule(
        "GM108",
        "read-only-root-filesystem",
        Severity.WARNING,
        "a container's root filesystem is writable",
        "Set securityContext.readOnlyRootFilesystem: true on the container; mount an "
        "emptyDir where it must write.",
    )
)
EXPOSED_SERVICE = register(
    Rule(
        "GM109",
        "service-exposed",
        Severity.WARNING,
        "a Service is of type NodePort or LoadBalancer",
        "Use type ClusterIP behind an Ingress or Gateway; if exposure is intended, "
        "ignore the rule for this object with the gitmoor.io/lint-ignore annotation.",
    )
)
READINESS = register(
    Rule(
        "GM110",
        "readiness-probe",
        Severity.WARNING,
        "a Deployment's container has no readiness probe",
        "Add readinessProbe (httpGet, tcpSocket or exec) so a rollout waits for ready "
        "pods and Services send traffic only to them.",
    )
)
PDB = register(
    Rule(
        "GM111",
        "pod-disruption-budget",
        Severity.WARNING,
        "a workload with more than one replica has no PodDisruptionBudget",
        "Add a PodDisruptionBudget whose selector matches the pod template's labels "
        "(minAvailable or maxUnavailable), so node drains keep it serving.",
    )
)
INGRESS_TLS = register(
    Rule(
        "GM112",
        "ingress-tls",
        Severity.WARNING,
        "an Ingress has no TLS",
        "Add spec.tls with the hosts and the Secret holding their certificate.",
    )
)

#: where each workload kind keeps its pod spec
POD_SPEC: dict[str, Path] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: the kinds whose replicas a PodDisruptionBudget protects
_REPLICATED = ("Deployment", "StatefulSet", "ReplicaSet")


def _get(obj: object, path: Path) -> object:
    for part in path:
        if isinstance(part, str) and isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(part, int) and isinstance(obj, list) and 0 <= part < len(obj):
            obj = obj[part]
        else:
            return None
    return obj


def _dict(value: object) -> JSON:
    return value if isinstance(value, dict) else {}


def _containers(obj: JSON) -> Iterator[tuple[Path, JSON, bool]]:
    """(path, container, is_init) of every container of the object's pod spec."""
    at = POD_SPEC.get(str(obj.get("kind")))
    if at is None:
        return
    spec = _get(obj, at)
    if not isinstance(spec, dict):
        return
    for field, init in (("initContainers", True), ("containers", False)):
        items = spec.get(field)
        if isinstance(items, list):
            for i, c in enumerate(items):
                if isinstance(c, dict):
                    yield (*at, field, i), c, init


def _name(container: JSON) -> str:
    return str(container.get("name") or "?")


def check_resources(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    for path, c, _init in _containers(obj):
        res = _dict(c.get("resources"))
        missing = [f"resources.{f}" for f in ("requests", "limits") if not res.get(f)]
        if missing:
            where = (*path, "resources") if "resources" in c else path
            yield Hit(RESOURCES, f"container {_name(c)!r} has no {' or '.join(missing)}", where)


def _tag(image: str) -> str | None:
    """The tag of an image reference, None without one; a digest counts as pinned."""
    if "@" in image:
        return "@digest"
    last = image.rsplit("/", 1)[-1]  # a registry's port (host:5000/x) is not a tag
    return last.rsplit(":", 1)[1] if ":" in last else None


def check_image_tag(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    for path, c, _init in _containers(obj):
        image = c.get("image")
        if not isinstance(image, str) or not image:
            continue
        tag = _tag(image)
        if tag is None:
            yield Hit(
                IMAGE_TAG, f"image {image!r} of container {_name(c)!r} has no tag", (*path, "image")
            )
        elif tag == "latest":
            yield Hit(
                IMAGE_TAG,
                f"image {image!r} of container {_name(c)!r} uses 'latest'",
                (*path, "image"),
            )


def _encrypted(value: object, *, b64: bool) -> bool:
    if not isinstance(value, str):
        return False
    if value.startswith("ENC["):
        return True
    if b64:
        try:
            # kustomize wraps long base64 values over several lines
            packed = "".join(value.split())
            return base64.b64decode(packed, validate=True).startswith(b"ENC[")
        except (binascii.Error, ValueError):
            return False
    return False


def check_plaintext_secret(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    """A Secret is encrypted when it carries sops' metadata block, or when every
    value is an ``ENC[…]`` (a secretGenerator fed from an encrypted env file
    yields base64 of ``ENC[…]``, since lint renders without keys)."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1" or "sops" in obj:
        return
    fields = [(f, b64, _dict(obj.get(f))) for f, b64 in (("data", True), ("stringData", False))]
    # An encrypted dotenv file keeps sops' metadata as ``sops_*`` keys beside the
    # values (sops' dotenv store), and a secretGenerator copies them all in.
    from_dotenv = any("sops_mac" in values for _, _, values in fields)
    plain = [
        (field, key)
        for field, b64, values in fields
        for key, value in values.items()
        if not (from_dotenv and str(key).startswith("sops_")) and not _encrypted(value, b64=b64)
    ]
    if plain:
        field, key = plain[0]
        keys = ", ".join(sorted({k for _, k in plain}))
        yield Hit(PLAINTEXT_SECRET, f"Secret holds plain-text values ({keys})", (field, key))


def check_privileged(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    for path, c, _init in _containers(obj):
        if _dict(c.get("securityContext")).get("privileged") is True:
            yield Hit(
                PRIVILEGED,
                f"container {_name(c)!r} is privileged",
                (*path, "securityContext", "privileged"),
            )


def _pod_spec(obj: JSON) -> tuple[Path, JSON] | None:
    at = POD_SPEC.get(str(obj.get("kind")))
    spec = _get(obj, at) if at is not None else None
    return (at, spec) if at is not None and isinstance(spec, dict) else None


def check_host_path(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    found = _pod_spec(obj)
    if found is None:
        return
    at, spec = found
    volumes = spec.get("volumes")
    for i, v in enumerate(volumes if isinstance(volumes, list) else []):
        if isinstance(v, dict) and v.get("hostPath") is not None:
            path = _dict(v.get("hostPath")).get("path", "?")
            yield Hit(
                HOST_PATH,
                f"volume {v.get('name')!r} mounts the node's {path}",
                (*at, "volumes", i, "hostPath"),
            )


def check_host_network(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    found = _pod_spec(obj)
    if found is not None and found[1].get("hostNetwork") is True:
        yield Hit(
            HOST_NETWORK,
            "pod uses the node's network (hostNetwork: true)",
            (*found[0], "hostNetwork"),
        )


def check_run_as_non_root(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    found = _pod_spec(obj)
    if found is None:
        return
    pod = _dict(found[1].get("securityContext")).get("runAsNonRoot")
    for path, c, _init in _containers(obj):
        # The container's setting overrides the pod's (PodSecurityContext docs).
        own = _dict(c.get("securityContext")).get("runAsNonRoot")
        effective = own if own is not None else pod
        if effective is not True:
            yield Hit(
                RUN_AS_NON_ROOT,
                f"container {_name(c)!r} does not set runAsNonRoot: true",
                (*path, "securityContext", "runAsNonRoot"),
            )


def check_read_only_root(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    for path, c, _init in _containers(obj):
        if _dict(c.get("securityContext")).get("readOnlyRootFilesystem") is not True:
            yield Hit(
                READ_ONLY_ROOT,
                f"container {_name(c)!r} does not set readOnlyRootFilesystem: true",
                (*path, "securityContext", "readOnlyRootFilesystem"),
            )


def check_service_type(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    if obj.get("kind") != "Service" or obj.get("apiVersion") != "v1":
        return
    kind = _dict(obj.get("spec")).get("type")
    if kind in ("NodePort", "LoadBalancer"):
        yield Hit(EXPOSED_SERVICE, f"Service is of type {kind}", ("spec", "type"))


def check_readiness(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    if obj.get("kind") != "Deployment":
        return
    for path, c, init in _containers(obj):
        if not init and not c.get("readinessProbe"):
            yield Hit(READINESS, f"container {_name(c)!r} has no readinessProbe", path)


def _selects(selector: JSON, labels: JSON) -> bool:
    """Whether a LabelSelector matches ``labels`` (metav1.LabelSelectorAsSelector);
    an empty selector selects every pod of the namespace, as for a PDB."""
    for key, value in _dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    exprs = selector.get("matchExpressions")
    for expr in exprs if isinstance(exprs, list) else []:
        if not isinstance(expr, dict):
            return False
        label, op = str(expr.get("key")), expr.get("operator")
        raw = expr.get("values")
        values: list[Any] = raw if isinstance(raw, list) else []
        has = label in labels
        ok = {
            "In": has and labels.get(label) in values,
            "NotIn": not has or labels.get(label) not in values,
            "Exists": has,
            "DoesNotExist": not has,
        }.get(str(op), False)
        if not ok:
            return False
    return True


def _namespace(obj: JSON) -> str:
    return str(_dict(obj.get("metadata")).get("namespace") or "")


def check_pdb(obj: JSON, others: Sequence[JSON]) -> Iterator[Hit]:
    if obj.get("kind") not in _REPLICATED:
        return
    replicas = _dict(obj.get("spec")).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas <= 1:
        return
    labels = _dict(_get(obj, ("spec", "template", "metadata", "labels")))
    for other in others:
        if (
            other.get("kind") == "PodDisruptionBudget"
            and _namespace(other) == _namespace(obj)
            and _selects(_dict(_dict(other.get("spec")).get("selector")), labels)
        ):
            return
    yield Hit(
        PDB,
        f"{replicas} replicas and no PodDisruptionBudget selects its pods",
        ("spec", "replicas"),
    )


def check_ingress_tls(obj: JSON, _: Sequence[JSON]) -> Iterator[Hit]:
    if obj.get("kind") != "Ingress" or not str(obj.get("apiVersion", "")).startswith(
        "networking.k8s.io/"
    ):
        return
    if not _dict(obj.get("spec")).get("tls"):
        yield Hit(INGRESS_TLS, "Ingress has no spec.tls", ("spec",))


#: every policy check, in the order of the rule ids
CHECKS: tuple[Callable[[JSON, Sequence[JSON]], Iterator[Hit]], ...] = (
    check_resources,
    check_image_tag,
    check_plaintext_secret,
    check_privileged,
    check_host_path,
    check_host_network,
    check_run_as_non_root,
    check_read_only_root,
    check_service_type,
    check_readiness,
    check_pdb,
    check_ingress_tls,
)


def check_object(obj: JSON, app_objects: Sequence[JSON]) -> Iterator[Hit]:
    """Every policy hit of one object; ``app_objects`` are the app's objects."""
    for check in CHECKS:
        yield from check(obj, app_objects)
