"""Object identity and rendered manifests: the keys and values of every step."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gitmoor.model.errors import UserInputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

JSONDict = dict[str, Any]
#: (group, kind, namespace, name): see ``ObjectRef.key``
RefKey = tuple[str, str, str, str]


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
    def key(self) -> RefKey:
        """(group, kind, namespace, name): the object's identity, without its version.

        A resource's identity does not change with the API version it is read or
        written at (``apps/v1`` and ``apps/v1beta2`` Deployments are one object),
        so every set, map and comparison of objects keys on this; Argo CD's
        ``kube.ResourceKey`` and cli-utils' ``ObjMetadata`` (group/kind/ns/name)
        leave the version out the same way.
        """
        return (self.group, self.kind, self.namespace, self.name)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.group_kind} {ns}{self.name}"


class Inventory:
    """An immutable set of objects, one per identity (``ObjectRef.key``).

    Membership, difference and union compare identities, never versions: the
    object applied as ``apps/v1beta2`` and declared again as ``apps/v1`` is the
    same object, so it is neither pruned nor counted twice. ``a.diff(b)`` is
    what ``a`` holds and ``b`` does not, which for "what the app applied
    before" against "what it declares now" is the prune set, as cli-utils'
    ``ObjMetadataSet.Diff`` is for its inventory.

    When two refs share a key, the first one given is kept in a constructor and
    in ``from_entries``; ``union`` keeps ``other``'s (the newer record wins).
    Iteration follows the order the refs were given.
    """

    __slots__ = ("_by_key",)

    _by_key: Mapping[RefKey, ObjectRef]

    def __init__(self, refs: Iterable[ObjectRef] = ()) -> None:
        by_key: dict[RefKey, ObjectRef] = {}
        for ref in refs:
            by_key.setdefault(ref.key, ref)
        object.__setattr__(self, "_by_key", MappingProxyType(by_key))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Inventory is immutable (cannot set {name})")

    @classmethod
    def from_entries(cls, entries: Iterable[Any]) -> Inventory:
        """The refs of status resource entries (``ObjectRef.to_dict`` plus status
        fields). An entry that is not a dict, or lacks a version, kind or name as
        a non-empty string, is skipped: a status another writer or a hand edit
        left must not stop a sync (engine/app.py ``inventory`` skipped them the
        same way)."""
        refs: list[ObjectRef] = []
        for e in entries:
            if not isinstance(e, dict):
                continue
            group, version, kind, namespace, name = (
                e.get(f) or "" for f in ("group", "version", "kind", "namespace", "name")
            )
            if not all(isinstance(v, str) for v in (group, version, kind, namespace, name)):
                continue
            if version and kind and name:
                refs.append(ObjectRef(group, version, kind, namespace, name))
        return cls(refs)

    def to_entries(self) -> list[dict[str, str]]:
        """Each ref as a status entry carries it, in key order (a stable digest)."""
        return [ref.to_dict() for ref in sorted(self._by_key.values(), key=_by_ref_key)]

    def get(self, key: RefKey) -> ObjectRef | None:
        """The ref held for an identity (with the version it was recorded at)."""
        return self._by_key.get(key)

    def keys(self) -> frozenset[RefKey]:
        return frozenset(self._by_key)

    def diff(self, other: Iterable[ObjectRef]) -> Inventory:
        """What this inventory holds and ``other`` does not, by identity."""
        theirs = other._by_key if isinstance(other, Inventory) else {r.key for r in other}
        return Inventory(r for k, r in self._by_key.items() if k not in theirs)

    def union(self, other: Iterable[ObjectRef]) -> Inventory:
        """Both, one ref per identity; where both hold one, ``other``'s is kept."""
        others = other if isinstance(other, Inventory) else Inventory(other)
        return Inventory(
            [*others, *(r for k, r in self._by_key.items() if k not in others._by_key)]
        )

    def intersection(self, other: Iterable[ObjectRef]) -> Inventory:
        """What both hold, by identity, with this inventory's refs."""
        theirs = other._by_key if isinstance(other, Inventory) else {r.key for r in other}
        return Inventory(r for k, r in self._by_key.items() if k in theirs)

    __sub__ = diff
    __or__ = union
    __and__ = intersection

    def __contains__(self, item: object) -> bool:
        if isinstance(item, ObjectRef):
            return item.key in self._by_key
        return item in self._by_key

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inventory):
            return NotImplemented
        return self._by_key.keys() == other._by_key.keys()

    def __hash__(self) -> int:
        return hash(frozenset(self._by_key))

    def __repr__(self) -> str:
        return f"Inventory({len(self)} objects)"


def _by_ref_key(ref: ObjectRef) -> RefKey:
    return ref.key


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
    #: Values that were encrypted in Git (SOPS ``ENC[…]``), as the manifests hold
    #: them (a string as written, and a base64 value also decoded). Memory only:
    #: every output masks a field holding one, whatever its kind.
    secret_values: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
