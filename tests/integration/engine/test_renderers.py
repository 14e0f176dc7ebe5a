"""The example repository's Kustomize overlay and Helm chart, synced from a real
git repository to Healthy."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from gitmoor.model import ObjectRef
from gitmoor.model.application import HelmSource
from support.apps import deploy_ref, job_ref

if TYPE_CHECKING:
    from pathlib import Path

    from support.apps import AppEnv


def _copy_examples(repo_root: Path, env: AppEnv, app: str) -> None:
    shutil.copytree(repo_root / "examples" / "apps" / app, env.repo.path / "apps" / app)


async def test_kustomize_overlay_syncs_healthy(env: AppEnv, repo_root: Path) -> None:
    _copy_examples(repo_root, env, "guestbook")
    overlay = env.repo.path / "apps/guestbook/overlays/dev/kustomization.yaml"
    # The overlay names its namespace; point it at this test's.
    text = overlay.read_text()
    assert "namespace: guestbook-dev\n" in text
    overlay.write_text(text.replace("namespace: guestbook-dev\n", f"namespace: {env.namespace}\n"))
    sha = env.repo.commit(message="guestbook")
    await env.create("guestbook-dev", path="apps/guestbook/overlays/dev")

    result = await env.sync("guestbook-dev")

    assert result.ok, result.message
    kinds = sorted((r.ref.kind, r.action.value) for r in result.resources)
    assert kinds == [
        ("ConfigMap", "created"),
        ("Deployment", "created"),
        ("Job", "hook-succeeded"),  # the migration, a PreSync hook
        ("Service", "created"),
    ]
    web = await env.get(deploy_ref(env.namespace, "guestbook"))
    assert web is not None
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/example/guestbook:1.1.0-rc.1"
    assert web["spec"]["template"]["metadata"]["annotations"]["example.org/environment"] == "dev"
    (cm,) = [r.ref for r in result.resources if r.ref.kind == "ConfigMap"]
    assert cm.name.startswith("guestbook-config-")  # the generator's hash suffix
    assert ((await env.get(cm)) or {})["data"]["LOG_LEVEL"] == "debug"
    migrate = await env.get(job_ref(env.namespace, "guestbook-migrate"))
    assert (migrate or {}).get("status", {}).get("succeeded") == 1
    app = await env.healthy("guestbook-dev")
    assert app.status["sync"] == {"status": "Synced", "revision": sha}
    assert app.status["health"]["status"] == "Healthy"


async def test_helm_chart_with_a_values_file_syncs_healthy(env: AppEnv, repo_root: Path) -> None:
    _copy_examples(repo_root, env, "dashboard")
    sha = env.repo.commit(message="dashboard")
    await env.create(
        "dash", path="apps/dashboard", helm=HelmSource(value_files=("values-prod.yaml",))
    )

    result = await env.sync("dash")

    assert result.ok, result.message
    # The release is named after the app.
    assert sorted(f"{r.ref.kind}/{r.ref.name}" for r in result.resources) == [
        "ConfigMap/dash-dashboard",
        "Deployment/dash-dashboard",
        "Service/dash-dashboard",
    ]
    await env.healthy("dash")
    web = await env.get(deploy_ref(env.namespace, "dash-dashboard"))
    assert web is not None
    assert web["spec"]["replicas"] == 2  # from values-prod.yaml
    assert web["status"].get("readyReplicas") == 2
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/example/dashboard:2.4.1"  # the chart's appVersion
    cm = await env.get(ObjectRef("", "v1", "ConfigMap", env.namespace, "dash-dashboard"))
    assert "theme = dark" in (cm or {})["data"]["dashboard.ini"]
    app = await env.app("dash")
    assert app.status["sync"] == {"status": "Synced", "revision": sha}
    assert app.status["health"]["status"] == "Healthy"
