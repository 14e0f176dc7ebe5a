"""Generate the OpenAPI schemas ``gitmoor lint`` ships, from a real API server.

``make schemas`` runs ``python -m gitmoor.lint.schemagen`` against the local
control plane (testenv's kube-apiserver, ``.local/cluster/kubeconfig``) and
writes ``schemas/v<major>.<minor>.json.gz``: the schema check then needs no
cluster, as kubeconform's and kubectl's client-side validation need none, but
its schemas come from the very server the tests apply to, not from a
hand-kept copy.

What is read: the ``/openapi/v3`` index, then every group-version document it
lists (``api/v1``, ``apis/<group>/<version>``), through ``gitmoor.kube`` (the
one door to the API server). Group-versions served by a CustomResourceDefinition
or by an aggregated API server (an APIService with a ``service``) are skipped:
they are the cluster's extensions, not Kubernetes', and the tests install
CRDs of their own; a repository's CRs are checked against the CRDs found in
the repository instead.

What is kept, per definition: only what the validator reads (``type``,
``properties``, ``additionalProperties``, ``items``, ``required``, ``enum``,
``oneOf`` for the int-or-string and quantity alternatives, ``nullable``, the
``x-kubernetes-int-or-string``, ``-preserve-unknown-fields`` and
``-embedded-resource`` markers, and ``format: int-or-string``); descriptions,
defaults, patch strategies and list types are dropped. ``$ref`` is kept as the
definition's name and ``allOf: [{$ref}]`` (how v3 attaches a default to a
reference) becomes that ``$ref``. Every group-version document repeats the
shared definitions (ObjectMeta, PodSpec); they are merged into one map, and a
name defined twice differently is an error (the server never does that).

The file: ``{"kubernetesVersion", "kinds": {"apps/v1/Deployment":
"io.k8s.api.apps.v1.Deployment", ...}, "definitions": {...}}``, JSON with
sorted keys, gzip with no timestamp, so that a re-run against the same
server writes the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from gitmoor.kube import KubeClient, NotFoundError, load_kubeconfig
from gitmoor.lint.schema import SCHEMA_DIR

log = logging.getLogger(__name__)

_REF_PREFIX = "#/components/schemas/"
_KEPT_MARKERS = (
    "nullable",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
)
_VERSION = re.compile(r"^v(\d+)\.(\d+)")

JSON = dict[str, Any]


def compact(schema: object) -> Any:
    """The parts of one OpenAPI v3 schema that validation reads (see the module)."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return {"$ref": _ref_name(schema["$ref"])}
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        return {"$ref": _ref_name(all_of[0]["$ref"])}
    out: JSON = {}
    for key in ("type", "enum"):
        if key in schema:
            out[key] = schema[key]
    if isinstance(schema.get("required"), list) and schema["required"]:
        out["required"] = sorted(schema["required"])
    if schema.get("format") == "int-or-string":
        out["format"] = "int-or-string"
    for key in _KEPT_MARKERS:
        if schema.get(key) is True:
            out[key] = True
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: compact(v) for k, v in schema["properties"].items()}
    if "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        out["additionalProperties"] = extra if isinstance(extra, bool) else compact(extra)
    if "items" in schema:
        out["items"] = compact(schema["items"])
    if isinstance(schema.get("oneOf"), list):
        out["oneOf"] = [compact(s) for s in schema["oneOf"]]
    return out


def _ref_name(ref: str) -> str:
    return ref.removeprefix(_REF_PREFIX)


def minor_version(git_version: str) -> str:
    """``v1.37.2`` -> ``1.37`` (what ``--kubernetes-version`` names)."""
    m = _VERSION.match(git_version)
    if m is None:
        raise ValueError(f"not a Kubernetes version: {git_version!r}")
    return f"{m.group(1)}.{m.group(2)}"


async def _extension_group_versions(kc: KubeClient) -> set[str]:
    """The ``group/version``\\ s a CRD or an aggregated API server serves."""
    skip: set[str] = set()
    crds = await kc.get_raw("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    for crd in crds.get("items", []):
        spec = crd.get("spec", {})
        for v in spec.get("versions", []):
            skip.add(f"{spec.get('group')}/{v.get('name')}")
    services = await kc.get_raw("/apis/apiregistration.k8s.io/v1/apiservices")
    for svc in services.get("items", []):
        spec = svc.get("spec", {})
        if spec.get("service"):
            skip.add(f"{spec.get('group')}/{spec.get('version')}")
    return skip


async def fetch_schemas(kc: KubeClient) -> JSON:
    """The compact schema document of the server ``kc`` talks to."""
    version = await kc.get_raw("/version")
    index = await kc.get_raw("/openapi/v3")
    skip = await _extension_group_versions(kc)
    kinds: dict[str, str] = {}
    definitions: JSON = {}
    for path, entry in sorted(index.get("paths", {}).items()):
        parts = path.split("/")
        if parts[0] == "api" and len(parts) == 2:
            group_version = parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group_version = f"{parts[1]}/{parts[2]}"
        else:
            continue  # a group's own index, /version, the OIDC documents
        if group_version in skip:
            log.info("event=schemagen_skip group_version=%s reason=extension", group_version)
            continue
        try:
            doc = await kc.get_raw(entry.get("serverRelativeURL") or f"/openapi/v3/{path}")
        except NotFoundError:
            # Gone between the index and its document: a CRD being deleted (its
            # CRD object already gone, so not in ``skip``). Built-in groups never go.
            log.info("event=schemagen_skip group_version=%s reason=gone", group_version)
            continue
        group, _, ver = group_version.rpartition("/")
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            small = compact(schema)
            if name in definitions and definitions[name] != small:
                raise ValueError(f"definition {name} differs between group-version documents")
            definitions[name] = small
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                # DeleteOptions and WatchEvent list every group-version; a kind
                # belongs to the document of its own group-version.
                if gvk.get("group", "") == group and gvk.get("version") == ver:
                    kinds[f"{group_version}/{gvk['kind']}"] = name
    log.info(
        "event=schemagen version=%s kinds=%d definitions=%d",
        version.get("gitVersion"),
        len(kinds),
        len(definitions),
    )
    return {
        "kubernetesVersion": version.get("gitVersion", ""),
        "kinds": kinds,
        "definitions": definitions,
    }


def encode(doc: JSON) -> bytes:
    """The file's bytes: sorted compact JSON, gzip without a timestamp (reproducible)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(text, compresslevel=9, mtime=0)


async def _fetch(kubeconfig: Path) -> JSON:
    async with KubeClient(load_kubeconfig(kubeconfig)) as kc:
        return await fetch_schemas(kc)


def generate(kubeconfig: Path, out_dir: Path) -> Path:
    """Fetch the schemas of the server ``kubeconfig`` names and write its file."""
    doc = asyncio.run(_fetch(kubeconfig))
    path = out_dir / f"v{minor_version(doc['kubernetesVersion'])}.json.gz"
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(doc))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gitmoor.lint.schemagen",
        description="Write the OpenAPI schemas of a running API server for gitmoor lint.",
    )
    parser.add_argument("--kubeconfig", type=Path, default=Path(".local/cluster/kubeconfig"))
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="directory to write to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    path = generate(args.kubeconfig, args.out)
    print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":  # pragma: no cover - the make target
    sys.exit(main())
