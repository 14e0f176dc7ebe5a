"""Helpers for the tests of ``deploy/``: render it with the real kustomize, and
move what it renders into a test's own namespaces.

The manifests name the namespace ``gitmoor`` (and the namespaced overlay its
destination namespaces); a test cannot use those names on a shared control
plane, nor rely on them existing in a fresh one. :func:`retarget` rewrites every
place a namespace appears (the same places kustomize's namespace transformer
rewrites) and gives cluster-scoped RBAC objects a test-specific name, so that
tests running side by side never share (or delete) each other's objects.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gitmoor.kube import KubeClient

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOY = REPO_ROOT / "deploy"
TARGETS = (
    "deploy",
    "deploy/overlays/ha",
    "deploy/overlays/namespaced",
    "deploy/overlays/impersonation",
)

Obj = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: the deploy tests render with `kubectl kustomize`")
    return found


def render(target: str) -> list[Obj]:
    """``kubectl kustomize <target>`` (the repository-relative path), as objects."""
    out = subprocess.run(
        [kubectl(), "kustomize", str(REPO_ROOT / target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, f"kubectl kustomize {target} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def namespaces_of(objs: Iterable[Obj]) -> set[str]:
    """Every namespace the objects live in or name (Namespaces included)."""
    found: set[str] = set()
    for o in objs:
        meta = o.get("metadata") or {}
        if o["kind"] == "Namespace":
            found.add(meta["name"])
        if meta.get("namespace"):
            found.add(meta["namespace"])
        found.update(s["namespace"] for s in o.get("subjects") or [] if s.get("namespace"))
    return found


CLUSTER_RBAC = ("ClusterRole", "ClusterRoleBinding")


def retarget(objs: Iterable[Obj], namespaces: Mapping[str, str], suffix: str) -> list[Obj]:
    """Copies of ``objs`` moved by ``namespaces`` (old name -> new name): Namespace
    names, ``metadata.namespace`` and ServiceAccount subjects; ClusterRoles and
    ClusterRoleBindings (and the roleRefs to those ClusterRoles) get ``-suffix``.
    Identical objects after the move (one RoleBinding per destination, all
    mapped to one namespace) are kept once."""
    out: list[Obj] = []
    seen: set[tuple[str, str, str]] = set()
    for original in objs:
        o = copy.deepcopy(original)
        meta = o["metadata"]
        if o["kind"] == "Namespace":
            meta["name"] = namespaces.get(meta["name"], meta["name"])
        if meta.get("namespace"):
            meta["namespace"] = namespaces.get(meta["namespace"], meta["namespace"])
        if o["kind"] in CLUSTER_RBAC:
            meta["name"] = f"{meta['name']}-{suffix}"
        ref = o.get("roleRef")
        if ref is not None and ref.get("kind") == "ClusterRole":
            ref["name"] = f"{ref['name']}-{suffix}"
        for s in o.get("subjects") or []:
            if s.get("namespace"):
                s["namespace"] = namespaces.get(s["namespace"], s["namespace"])
        key = (o["kind"], meta.get("namespace", ""), meta["name"])
        if key not in seen:
            seen.add(key)
            out.append(o)
    return out


async def create_namespace(kube: KubeClient, name: str, created: list[str]) -> str:
    """Create namespace ``name`` and note it in ``created`` (for deletion)."""
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"gitmoor.io/test": "true"}},
        }
    )
    created.append(name)
    return name
