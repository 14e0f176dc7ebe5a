"""``gitmoor lint --compare-overlays``: what differs between the environments of a base.

A base with several overlays (dev, test, prod) is meant to differ in a few
deliberate places; drift elsewhere ("dev runs 1.2, test 1.1, prod 1.3") is what
a reviewer wants to see at a glance. For every kustomization that two or more
overlays render through, each overlay is rendered as the engine renders it
(``render_app``, SOPS files left encrypted) and these facts of its objects are
compared:

- ``image[CONTAINER]``: the image of each container (init containers too);
- ``replicas``;
- ``resources[CONTAINER].requests.cpu`` and the other requests and limits;
- ``data.KEY`` of a ConfigMap (``data`` and ``binaryData``), its value;
- ``data.KEY`` of a Secret: only whether the key is set, never its value
  (an encrypted value would only show ciphertext, a plain one must not be
  printed in a CI log).

Objects are matched across overlays by kind and name, without the namespace
(overlays set their own), without the overlay's ``namePrefix``/``nameSuffix``,
and without the hash kustomize appends to generated ConfigMaps and Secrets
(its alphabet, ``api/hasher``'s ``encode``, is ``[2456789bcdfghkmt]``), so
``guestbook-config-7fc9h5g8b2`` in dev and ``guestbook-config-gk4b8m2t9c`` in
prod are one ConfigMap. Only rows whose values differ between overlays are
reported; ``-`` marks a fact an overlay does not have.

An overlay is a kustomization under the linted paths that no other one renders
through (a leaf); a base is any kustomization two or more overlays reach.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitmoor.lint.discover import _spec, bases_of, discover, kustomization_in
from gitmoor.lint.rules import POD_SPEC
from gitmoor.model import GitmoorError
from gitmoor.render import RenderOptions, render_app

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from gitmoor.model import Manifest

#: what an overlay does not have
ABSENT = "-"
#: shown for a Secret key that is set: its value never is
SET = "(set)"
_GENERATED_HASH = re.compile(r"-[2456789bcdfghkmt]{10}$")


@dataclass(frozen=True, slots=True)
class Difference:
    """One fact of one object that is not the same in every overlay."""

    object: str
    field: str
    #: overlay path → value (``ABSENT`` when the overlay lacks it)
    values: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "field": self.field, "values": dict(self.values)}


@dataclass(slots=True)
class OverlayGroup:
    """A base and the overlays that render through it, with what differs."""

    base: str
    overlays: list[str]
    differences: list[Difference] = field(default_factory=list)
    #: overlay path → why it did not render
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "overlays": list(self.overlays),
            "differences": [d.to_dict() for d in self.differences],
            "errors": dict(self.errors),
        }


def _get(obj: Any, path: Sequence[str | int]) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _key(kind: str, name: str, prefix: str, suffix: str) -> str:
    if kind in ("ConfigMap", "Secret"):
        name = _GENERATED_HASH.sub("", name)
    if prefix and name.startswith(prefix):
        name = name[len(prefix) :]
    if suffix and name.endswith(suffix):
        name = name[: -len(suffix)]
    return f"{kind} {name}"


def facts(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, value) of the facts compared, for one object."""
    kind = str(obj.get("kind"))
    if kind == "ConfigMap":
        for section in ("data", "binaryData"):
            values = obj.get(section)
            for key, value in sorted(values.items()) if isinstance(values, dict) else ():
                yield f"{section}.{key}", str(value)
        return
    if kind == "Secret":
        for section in ("data", "stringData"):
            values = obj.get(section)
            for key in sorted(values) if isinstance(values, dict) else ():
                yield f"data.{key}", SET
        return
    replicas = _get(obj, ("spec", "replicas"))
    if isinstance(replicas, int) and kind in POD_SPEC:
        yield "replicas", str(replicas)
    at = POD_SPEC.get(kind)
    spec = _get(obj, at) if at is not None else None
    if not isinstance(spec, dict):
        return
    for section in ("initContainers", "containers"):
        items = spec.get(section)
        for c in items if isinstance(items, list) else ():
            if not isinstance(c, dict):
                continue
            name = str(c.get("name") or "?")
            if isinstance(c.get("image"), str):
                yield f"image[{name}]", c["image"]
            resources = c.get("resources")
            for bound in ("requests", "limits"):
                values = resources.get(bound) if isinstance(resources, dict) else None
                for res, amount in sorted(values.items()) if isinstance(values, dict) else ():
                    yield f"resources[{name}].{bound}.{res}", str(amount)


def _facts_of(
    manifests: Sequence[Manifest], prefix: str, suffix: str
) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for m in manifests:
        key = _key(m.ref.kind, m.ref.name, prefix, suffix)
        for name, value in facts(m.obj):
            out[(key, name)] = value
    return out


def overlay_groups(root: Path, targets: Sequence[Path]) -> list[tuple[str, list[str]]]:
    """(base, its overlays) for every base two or more leaf kustomizations reach."""
    kustomized = [a.path for a in discover(root, targets) if a.kind == "kustomize"]
    reaches = {path: bases_of(root, root / path) for path in kustomized}
    inner = set().union(*reaches.values()) if reaches else set()
    leaves = [p for p in kustomized if p not in inner]
    groups: list[tuple[str, list[str]]] = []
    for base in sorted(inner):
        overlays = sorted(p for p in leaves if base in reaches[p])
        if len(overlays) >= 2:
            groups.append((base, overlays))
    # A base reached through an intermediate one (base → components → overlays)
    # would repeat its parent's table: keep the deepest base of each overlay set.
    kept: list[tuple[str, list[str]]] = []
    for base, overlays in groups:
        if not any(
            other != base and set(o) == set(overlays) and base in bases_of(root, root / other)
            for other, o in groups
        ):
            kept.append((base, overlays))
    return kept


def compare_overlays(
    root: Path, targets: Sequence[Path], *, timeout: float = 120.0
) -> list[OverlayGroup]:
    """What differs between the overlays of each base under ``targets``."""
    out: list[OverlayGroup] = []
    rendered: dict[str, dict[tuple[str, str], str]] = {}
    errors: dict[str, str] = {}
    for base, overlays in overlay_groups(root, targets):
        group = OverlayGroup(base, overlays)
        for overlay in overlays:
            if overlay not in rendered and overlay not in errors:
                kfile = kustomization_in(root / overlay)
                spec = _spec(kfile, root) if kfile is not None else {}
                prefix, suffix = (
                    str(spec.get("namePrefix") or ""),
                    str(spec.get("nameSuffix") or ""),
                )
                try:
                    result = render_app(
                        root, overlay, "local", RenderOptions(keep_encrypted=True, timeout=timeout)
                    )
                except GitmoorError as err:
                    errors[overlay] = str(err)
                else:
                    rendered[overlay] = _facts_of(result.manifests, prefix, suffix)
            if overlay in errors:
                group.errors[overlay] = errors[overlay]
        seen = [rendered[o] for o in overlays if o in rendered]
        keys = sorted({k for f in seen for k in f})
        for key in keys:
            values = {o: rendered[o].get(key, ABSENT) for o in overlays if o in rendered}
            if len(set(values.values())) > 1:
                group.differences.append(Difference(key[0], key[1], values))
        out.append(group)
    return out


def column_names(overlays: Sequence[str]) -> list[str]:
    """Short column titles: each overlay's last path segment where they are
    distinct (``dev``, ``test``, ``prod``), else the whole path."""
    last = [o.rsplit("/", 1)[-1] for o in overlays]
    return last if len(set(last)) == len(last) else list(overlays)
