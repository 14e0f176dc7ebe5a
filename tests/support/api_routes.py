"""The routes of ``gitmoor server`` as its OpenAPI document lists them.

The cross-cutting server tests (authorization, CSRF, fuzzing) walk the document
the running server publishes at ``/api/openapi.json`` rather than a list of
their own, so a route added later is covered the day it appears, and a route
the tests do not know how to call fails them with a sentence saying what to add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

API = "/api/v1"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: the login itself: it takes credentials instead of asking for them
LOGIN = ("POST", f"{API}/session")

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    op: JSON

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def resource(self) -> str:
        """The first path segment after ``/api/v1``: the RBAC resource for most routes."""
        return self.path[len(API) :].strip("/").split("/")[0]

    @property
    def path_params(self) -> list[str]:
        return [p["name"] for p in self.op.get("parameters", []) if p.get("in") == "path"]

    @property
    def required_query(self) -> list[str]:
        return [
            p["name"]
            for p in self.op.get("parameters", [])
            if p.get("in") == "query" and p.get("required")
        ]

    @property
    def query_params(self) -> list[str]:
        return [p["name"] for p in self.op.get("parameters", []) if p.get("in") == "query"]

    def body_schema(self) -> JSON | None:
        content = (self.op.get("requestBody") or {}).get("content") or {}
        media = content.get("application/json")
        return None if media is None else dict(media.get("schema") or {})

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def api_routes(doc: JSON) -> list[Route]:
    """Every operation under ``/api/v1``, in the document's order."""
    out: list[Route] = []
    for path, ops in (doc.get("paths") or {}).items():
        if not path.startswith(API + "/"):
            continue
        for method, op in ops.items():
            if method.upper() in {"GET", *STATE_CHANGING}:
                out.append(Route(method.upper(), path, op))
    return out


def state_changing(doc: JSON) -> list[Route]:
    return [r for r in api_routes(doc) if r.method in STATE_CHANGING and r.key != LOGIN]


def reads(doc: JSON) -> list[Route]:
    return [r for r in api_routes(doc) if r.method == "GET"]


def _resolve(doc: JSON, schema: JSON) -> JSON:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = dict(doc["components"]["schemas"][name])
    return schema


def minimal(doc: JSON, schema: JSON) -> Any:
    """The smallest value the schema accepts: required properties only, each the
    default, the first enum value, or the simplest value of its type."""
    schema = _resolve(doc, schema)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_resolve(doc, s) for s in schema[key]]
            non_null = [s for s in options if s.get("type") != "null"]
            return minimal(doc, (non_null or options)[0])
    if "allOf" in schema:
        merged: JSON = {}
        for part in schema["allOf"]:
            value = minimal(doc, part)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: minimal(doc, props.get(name, {})) for name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def merged(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``, dicts key by key."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merged(base.get(k), v)
        return out
    return override


def fill_path(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path
