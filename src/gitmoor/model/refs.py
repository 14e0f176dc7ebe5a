"""Object identity and rendered manifests: the keys and values of every step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitmoor.model.errors import UserInputError

JSONDict = dict[str, Any]


@dataclass(frozen=True, order=True, slots=True)
class ObjectRef:
    """group/version/kind namespace/name of one Kubernetes object; hashable."""

    group: str
    version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: JSONDict, *, where: str | None = None) -> ObjectRef:
        """The ref of a manifest dict; a missing apiVersion/kind/name is a user error."""
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        name = meta.get("name") if isinstance(meta, dict) else None
        if not name and isinstance(meta, dict):
            # A hook may have only generateName (Argo CD names it at the sync:
            # engine/plan.py "Hook names"); the prefix stands in for its identity
            # in the render, and the plan refuses it on anything but a hook.
            name = meta.get("generateName")
        if not isinstance(api_version, str) or not api_version:
            raise UserInputError("object has no apiVersion", concerns=where)
        if not isinstance(kind, str) or not kind:
            raise UserInputError("object has no kind", concerns=where)
        if not isinstance(name, str) or not name:
            raise UserInputError(f"{kind} has no metadata.name", concerns=where)
        group, _, version = api_version.rpartition("/")
        namespace = meta.get("namespace") or ""
        return cls(group, version, kind, str(namespace), name)

    def to_dict(self) -> dict[str, str]:
        """The ref as status entries carry it (Argo CD's ResourceStatus fields)."""
        return {
            "group": self.group,
            "version": self.version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.group_kind} {ns}{self.name}"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a manifest came from: a file relative to the app's path, and a line."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class Manifest:
    """One rendered object with its ref and origin."""

    ref: ObjectRef
    obj: JSONDict = field(hash=False, compare=False)
    source: Source | None = None

    @classmethod
    def of(cls, obj: JSONDict, source: Source | None = None) -> Manifest:
        return cls(ObjectRef.of(obj, where=str(source) if source else None), obj, source)

    @property
    def annotations(self) -> dict[str, str]:
        meta = self.obj.get("metadata") or {}
        ann = meta.get("annotations") or {}
        return {str(k): str(v) for k, v in ann.items()}


@dataclass(frozen=True, slots=True)
class RenderResult:
    """The manifests of one app at one commit, plus the warnings of the render."""

    revision: str
    manifests: tuple[Manifest, ...]
    warnings: tuple[str, ...] = ()
