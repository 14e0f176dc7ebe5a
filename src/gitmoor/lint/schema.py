"""The offline OpenAPI check: every object against its kind's schema.

What ``kubectl apply --validate=strict`` asks the API server, answered without
one: the schemas of a Kubernetes version ship with gitmoor
(``schemas/v1.37.json.gz``, written by ``make schemas`` from testenv's real
kube-apiserver, see ``schemagen``), and a repository's CustomResourceDefinitions
give the schemas of its custom resources, as kubeconform's
``-schema-location`` does for CRDs converted by hand.

The checks, each one that the API server makes when it decodes an object:

- an unknown field (GM201) where the schema lists ``properties`` and allows
  no others (no ``additionalProperties``, no
  ``x-kubernetes-preserve-unknown-fields``), which strict field validation
  refuses ("unknown field \\"spec.replica\\""); the closest known field is
  suggested;
- a wrong type (GM202): string, integer, number, boolean, object, array, the
  int-or-string and quantity alternatives (``x-kubernetes-int-or-string``,
  ``format: int-or-string``, ``oneOf`` of plain types), or a value outside an
  ``enum``. A ``null`` is never wrong: the API server decodes it as the field
  left out, as it decodes ``creationTimestamp: null``;
- a missing required field (GM203);
- a kind that neither the shipped schemas nor a CRD of the linted paths knows
  (GM204): reported, not passed, as kubeconform reports a missing schema
  unless told to ignore it;
- a custom resource that breaks its CRD's structural schema (GM205), with the
  same checks; ``metadata`` is always checked against ObjectMeta, since the
  API server ignores what a CRD says about it, and an
  ``x-kubernetes-embedded-resource`` object may carry apiVersion, kind and
  metadata.

SOPS files are linted as they are, encrypted: their ``sops`` block and
``ENC[…]`` values (sops marks an encrypted number ``type:int``, still a string
here) are not the object the cluster will see, so they are not judged.
Messages name types, never values, for a Secret.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmoor.lint.findings import Rule, Severity, register
from gitmoor.lint.rules import Hit
from gitmoor.model import UserInputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

JSON = dict[str, Any]
FieldPath = tuple[str | int, ...]

#: the shipped schemas, one file per Kubernetes minor version (``schemagen``)
SCHEMA_DIR = Path(__file__).parent / "schemas"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_CRD_API = "apiextensions.k8s.io/v1"
_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}

UNKNOWN_FIELD = register(
    Rule(
        "GM201",
        "unknown-field",
        Severity.ERROR,
        "an object has a field its kind's schema does not know",
        "Fix the field's name (the message suggests the closest known one) or move it to "
        "the level where it belongs; `kubectl explain KIND.FIELD` lists the fields.",
    )
)
WRONG_TYPE = register(
    Rule(
        "GM202",
        "wrong-type",
        Severity.ERROR,
        "a field's value has the wrong type or is not one of the allowed values",
        "Write the value with the type the schema names: unquote numbers and booleans "
        '(replicas: 3, not "3"), quote strings that YAML reads as numbers or booleans '
        '(value: "8080"), use one of the listed values.',
    )
)
MISSING_REQUIRED = register(
    Rule(
        "GM203",
        "missing-required-field",
        Severity.ERROR,
        "a required field is missing",
        "Add the field the message names (a container's name, a Deployment's selector "
        "and template); `kubectl explain` marks required fields.",
    )
)
UNKNOWN_KIND = register(
    Rule(
        "GM204",
        "unknown-kind",
        Severity.ERROR,
        "an object's apiVersion and kind are neither Kubernetes' nor a CRD's of the repository",
        "Fix apiVersion/kind (a removed version such as extensions/v1beta1 needs its "
        "successor), add the CRD to a linted path, or choose the cluster's version with "
        "--kubernetes-version; ignore the rule in .gitmoor-lint.yaml for paths whose CRDs "
        "are installed elsewhere.",
    )
)
CR_SCHEMA = register(
    Rule(
        "GM205",
        "custom-resource-schema",
        Severity.ERROR,
        "a custom resource does not match its CRD's schema",
        "Change the resource to match the CRD's spec.versions[].schema.openAPIV3Schema "
        "(the field, type or required field the message names), or change the CRD.",
    )
)


@dataclass(frozen=True, slots=True)
class _Problem:
    kind: str  # "unknown" | "type" | "required"
    message: str
    path: FieldPath


def shipped_versions() -> list[str]:
    """The Kubernetes versions (``1.37``) whose schemas ship, oldest first."""
    found = [
        p.name.removeprefix("v").removesuffix(".json.gz") for p in SCHEMA_DIR.glob("v*.json.gz")
    ]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".") if x.isdigit()))


@functools.cache
def _shipped(version: str) -> JSON:
    doc: JSON = json.loads(gzip.decompress((SCHEMA_DIR / f"v{version}.json.gz").read_bytes()))
    return doc


@dataclass(slots=True)
class Schemas:
    """The schemas one lint run checks against: a Kubernetes version's, plus the
    CRDs of the linted paths (``group/version/Kind`` -> (schema, CRD name))."""

    version: str
    definitions: JSON
    kinds: dict[str, str]
    crds: dict[str, tuple[JSON, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, version: str | None = None) -> Schemas:
        """The shipped schemas of ``version`` (``1.37``, ``v1.37``; default the newest)."""
        versions = shipped_versions()
        if not versions:  # pragma: no cover - a broken install
            raise UserInputError("gitmoor ships no Kubernetes schemas (run `make schemas`)")
        wanted = (version or versions[-1]).strip().removeprefix("v")
        wanted = ".".join(wanted.split(".")[:2])
        if wanted not in versions:
            raise UserInputError(
                f"no schemas for Kubernetes {version}: gitmoor ships " + ", ".join(versions)
            )
        doc = _shipped(wanted)
        return cls(wanted, doc["definitions"], doc["kinds"])

    def add_crds(self, objects: Iterable[JSON]) -> None:
        for obj in objects:
            if obj.get("apiVersion") != _CRD_API or obj.get("kind") != "CustomResourceDefinition":
                continue
            spec = _dict(obj.get("spec"))
            group, kind = spec.get("group"), _dict(spec.get("names")).get("kind")
            if not isinstance(group, str) or not isinstance(kind, str):
                continue
            name = str(_dict(obj.get("metadata")).get("name", f"{group}/{kind}"))
            for version in spec.get("versions") or []:
                if not isinstance(version, dict) or version.get("served") is False:
                    continue
                schema = _dict(_dict(version.get("schema")).get("openAPIV3Schema")) or {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                }
                self.crds[f"{group}/{version.get('name')}/{kind}"] = (schema, name)


def check_schema(obj: JSON, schemas: Schemas) -> Iterator[Hit]:
    """The schema findings of one rendered object (see the module)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    key = f"{api_version}/{kind}"
    walker = _Walker(schemas.definitions, encrypted="sops" in obj, secret=kind == "Secret")
    if key in schemas.crds:
        schema, crd = schemas.crds[key]
        problems = list(walker.walk(obj, schema, (), custom=True))
        if "metadata" in obj:
            problems.extend(walker.walk(obj["metadata"], {"$ref": OBJECT_META}, ("metadata",)))
        for p in problems:
            yield Hit(CR_SCHEMA, f"{p.message} (CRD {crd})", p.path)
        return
    if key in schemas.kinds:
        rules = {"unknown": UNKNOWN_FIELD, "type": WRONG_TYPE, "required": MISSING_REQUIRED}
        for p in walker.walk(obj, {"$ref": schemas.kinds[key]}, ()):
            yield Hit(rules[p.kind], p.message, p.path)
        return
    yield Hit(
        UNKNOWN_KIND,
        f"unknown kind {kind} of {api_version}: not a Kubernetes {schemas.version} kind, "
        "and no CRD of the linted paths defines it",
        ("kind",),
    )


def _dict(value: object) -> JSON:
    return value if isinstance(value, dict) else {}


def _dotted(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "the object"


def _type_of(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _is(value: object, t: str) -> bool:
    actual = _type_of(value)
    if t == "number":
        return actual in ("integer", "number")
    return actual == t if t in (*_TYPES, "object", "array") else True


@dataclass(slots=True)
class _Walker:
    definitions: JSON
    #: a SOPS file rendered encrypted: ENC[…] strings stand for any type
    encrypted: bool
    #: a Secret: messages never quote its values
    secret: bool

    def resolve(self, schema: JSON) -> JSON:
        seen = 0
        while "$ref" in schema and seen < 64:
            schema = _dict(self.definitions.get(schema["$ref"]))
            seen += 1
        return schema

    def walk(
        self, value: object, schema: JSON, path: FieldPath, *, custom: bool = False
    ) -> Iterator[_Problem]:
        schema = self.resolve(schema)
        if value is None or (
            self.encrypted and isinstance(value, str) and value.startswith("ENC[")
        ):
            return
        where = _dotted(path)
        if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
            if _type_of(value) not in ("integer", "string"):
                yield _Problem(
                    "type", f"{where}: expected integer or string, got {_type_of(value)}", path
                )
            return
        expected = schema.get("type")
        if expected is None and isinstance(schema.get("oneOf"), list):
            # Quantity (string or number) and IntOrString: plain alternatives
            choices = [self.resolve(_dict(s)).get("type") for s in schema["oneOf"]]
            types = [t for t in choices if isinstance(t, str)]
            if types and not any(_is(value, t) for t in types):
                yield _Problem(
                    "type", f"{where}: expected {' or '.join(types)}, got {_type_of(value)}", path
                )
            return
        if isinstance(expected, str) and not _is(value, expected):
            yield _Problem("type", f"{where}: expected {expected}, got {_type_of(value)}", path)
            return
        enum = schema.get("enum")
        if isinstance(enum, list) and enum and value not in enum:
            allowed = ", ".join(str(e) for e in enum)
            shown = "" if self.secret else f" {json.dumps(value)}"
            yield _Problem("type", f"{where}:{shown} is not one of {allowed}", path)
            return
        if isinstance(value, dict):
            yield from self._object(value, schema, path, custom=custom)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                yield from self.walk(item, schema["items"], (*path, i), custom=custom)

    def _object(
        self, value: JSON, schema: JSON, path: FieldPath, *, custom: bool
    ) -> Iterator[_Problem]:
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        open_ = extra is True or bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        # The envelope every object and embedded resource may carry, whatever
        # its schema says (a CRD's root rarely lists metadata).
        envelope = (custom and not path) or bool(schema.get("x-kubernetes-embedded-resource"))
        for name in schema.get("required") or []:
            if value.get(name) is None:
                where = _dotted(path)
                yield _Problem("required", f"{where}: missing required field {name}", path)
        # A structural schema's object without properties keeps nothing (the API
        # server prunes it); an OpenAPI object without properties is free-form.
        closed = isinstance(props, dict) or (
            custom and schema.get("type") == "object" and extra is None and not open_
        )
        known = props if isinstance(props, dict) else {}
        allowed: set[str] = set()
        if envelope:
            allowed |= {"apiVersion", "kind", "metadata"}
        if self.encrypted and not path:
            allowed.add("sops")
        for key, item in value.items():
            sub = (*path, key)
            if envelope and key == "metadata":
                # ObjectMeta whatever the CRD says (kubebuilder writes
                # `metadata: {type: object}`, which would keep nothing); the
                # root's is checked by check_schema, an embedded one here.
                if path:
                    yield from self.walk(item, {"$ref": OBJECT_META}, sub)
                continue
            if key in known:
                yield from self.walk(item, _dict(known[key]), sub, custom=custom)
            elif isinstance(extra, dict):
                yield from self.walk(item, extra, sub, custom=custom)
            elif closed and not open_ and key not in allowed:
                yield _Problem("unknown", _unknown(sub, str(key), list(known)), sub)


def _unknown(path: FieldPath, key: str, known: list[str]) -> str:
    message = f"unknown field {_dotted(path)}"
    by_case = [k for k in known if k.lower() == key.lower()]
    close = by_case or difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    if close:
        message += f" (did you mean {close[0]}?)"
    return message


__all__ = [
    "CR_SCHEMA",
    "MISSING_REQUIRED",
    "UNKNOWN_FIELD",
    "UNKNOWN_KIND",
    "WRONG_TYPE",
    "Schemas",
    "check_schema",
    "shipped_versions",
]
