"""``gitmoor lint --server-dry-run``: the API server judges what the offline checks pass.

Real control plane, ``gitmoor`` run as a separate process as a CI job runs it.
Each repository here is clean for the offline schema check where it matters:
what fails, fails only because the API server says so (a validation rule the
OpenAPI schema does not carry, a ResourceQuota's admission, a namespace that
does not exist).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from gitmoor.model import ObjectRef

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient

CONTAINER = """\
      containers:
        - name: main
          image: nginx:1.27
"""


def gitmoor_lint(kubeconfig: Path, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gitmoor.cli.main",
            "--kubeconfig",
            str(kubeconfig),
            "lint",
            "--server-dry-run",
            *args,
            str(repo),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )


def write(repo: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return repo


async def quota_enforced(kube: KubeClient, namespace: str) -> None:
    """A ResourceQuota allowing no pods, once the quota controller has counted it
    (until then admission refuses with "status unknown", another message)."""
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods", "namespace": namespace},
            "spec": {"hard": {"pods": "0"}},
        }
    )
    ref = ObjectRef("", "v1", "ResourceQuota", namespace, "no-pods")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = await kube.get(ref)
        if live and (live.get("status") or {}).get("hard"):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the quota controller never set status.hard")


async def test_refusals_are_gm301_with_the_servers_message(
    kube: KubeClient, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    await quota_enforced(kube, namespace)
    absent = f"t-lint-absent-{secrets.token_hex(3)}"
    created = f"t-lint-new-{secrets.token_hex(3)}"
    repo = write(
        tmp_path,
        {
            "apps/web/service.yaml": (
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
                "  clusterIP: not-an-ip\n  ports:\n    - port: 80\n"
            ),
            "apps/web/pod.yaml": (
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: one-off\nspec:\n"
                "  containers:\n    - name: main\n      image: nginx:1.27\n"
            ),
            "apps/web/config.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\ndata:\n  a: b\n"
                "---\n"
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lost\n"
                f"  namespace: {absent}\ndata:\n  a: b\n"
            ),
            "apps/web/new-namespace.yaml": (
                f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {created}\n---\n"
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: early\n"
                f"  namespace: {created}\ndata:\n  a: b\n"
            ),
        },
    )
    r = gitmoor_lint(kubeconfig, repo, "--dry-run-namespace", namespace, "-o", "json")
    assert r.returncode == 1, r.stderr
    found = json.loads(r.stdout)["findings"]
    server = {
        (f["rule"], f["file"], f["line"], f["object"]): f["message"]
        for f in found
        if f["rule"].startswith("GM3")
    }
    service = server.pop(("GM301", "apps/web/service.yaml", 1, "Service web"))
    assert f"refused it (sent to namespace {namespace}): " in service
    assert 'spec.clusterIPs[0]: Invalid value: "not-an-ip"' in service
    pod = server.pop(("GM301", "apps/web/pod.yaml", 1, "Pod one-off"))
    assert "exceeded quota: no-pods" in pod
    lost = server.pop(("GM301", "apps/web/config.yaml", 8, f"ConfigMap {absent}/lost"))
    assert f"namespace {absent} does not exist in the cluster" in lost
    early = server.pop(("GM302", "apps/web/new-namespace.yaml", 6, f"ConfigMap {created}/early"))
    assert f"namespace {created} is created by this render" in early
    assert server == {}  # the valid ConfigMap and the Namespace itself pass
    # the offline schema check passes the Service: only the server knows clusterIP's format
    assert not [f for f in found if f["object"] == "Service web" and f["rule"].startswith("GM2")]


async def test_a_valid_repository_passes_and_nothing_is_created(
    kube: KubeClient, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    repo = write(
        tmp_path,
        {
            "app/objects.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n"
                "---\n"
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
                "  selector:\n    app: web\n  ports:\n    - port: 80\n"
                "---\n"
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
                "  selector:\n    matchLabels:\n      app: web\n  template:\n"
                "    metadata:\n      labels:\n        app: web\n    spec:\n" + CONTAINER
            ),
        },
    )
    r = gitmoor_lint(kubeconfig, repo, "--dry-run-namespace", namespace)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 error(s)" in r.stdout
    assert "server-side dry-run: 3 object(s) in" in r.stdout
    # dryRun=All: the server checked them and stored nothing
    for group, kind, name in (
        ("", "ConfigMap", "settings"),
        ("", "Service", "web"),
        ("apps", "Deployment", "web"),
    ):
        assert await kube.get(ObjectRef(group, "v1", kind, namespace, name)) is None


async def test_a_refused_secret_does_not_show_its_value(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    # The API server's type error quotes the value it got; the finding must not.
    value = "hunter2-" + secrets.token_hex(8)
    repo = write(
        tmp_path,
        {
            "app/secret.yaml": (
                f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {namespace}\n"
                f"stringData:\n  password:\n    - {value}\n"
            ),
        },
    )
    runs = {o: gitmoor_lint(kubeconfig, repo, "-o", o) for o in ("human", "json", "sarif")}
    for r in runs.values():
        assert r.returncode == 1, r.stderr
        assert value not in r.stdout + r.stderr
    found = json.loads(runs["json"].stdout)["findings"]
    refused = next(f for f in found if f["rule"] == "GM301")
    assert refused["object"] == f"Secret {namespace}/db"
    assert ".stringData.password: expected string" in refused["message"]


def test_an_unreachable_cluster_exits_2(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        "clusters:\n  - name: gone\n    cluster:\n      server: https://127.0.0.1:9\n"
        "      insecure-skip-tls-verify: true\n"
        "contexts:\n  - name: gone\n    context:\n      cluster: gone\n      user: me\n"
        "users:\n  - name: me\n    user:\n      token: t\n"
    )
    repo = write(
        tmp_path / "repo",
        {"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  a: b\n"},
    )
    r = gitmoor_lint(kubeconfig, repo)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--server-dry-run: cannot reach the API server at https://127.0.0.1:9" in r.stderr
    assert "0 error(s)" not in r.stdout  # no partial pass printed
