"""`gitmoor app create --from-argocd FILE` and the annotation warnings of `app diff`
and `app sync`, end to end as a user runs them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from support.apps import SYNC_WAVE, configmap, dump

if TYPE_CHECKING:
    from pathlib import Path

    from support.apps import AppEnv
    from support.cli import Gitmoor


def argo_app(env: AppEnv, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "migrated", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": env.repo.url, "path": "app", "targetRevision": "main"},
            "destination": {
                "server": "https://kubernetes.default.svc",
                "namespace": env.namespace,
            },
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
            **spec,
        },
    }


async def test_from_argocd_creates_the_app_and_warnings_show(
    gitmoor: Gitmoor, env: AppEnv, tmp_path: Path
) -> None:
    both = configmap("cfg", annotations={SYNC_WAVE: "1", "argocd.argoproj.io/sync-wave": "2"})
    env.repo.commit({"app/cfg.yaml": dump(both)})
    f = tmp_path / "app.yaml"
    f.write_text(yaml.safe_dump(argo_app(env)))

    created = gitmoor("app", "create", "--from-argocd", str(f))

    assert created.returncode == 0, created.stderr
    assert "application migrated created" in created.stdout
    assert "warning: metadata.namespace 'argocd'" in created.stderr
    app = await env.app("migrated")
    assert app.spec.source.path == "app"
    assert app.spec.source.target_revision == "main"
    assert app.spec.destination.namespace == env.namespace
    assert app.spec.destination.name == ""
    assert app.spec.sync_policy.option("CreateNamespace")
    env.created.append("migrated")

    diff = gitmoor("app", "diff", "migrated")
    assert diff.returncode == 1, diff.stderr
    assert "gitmoor.io/sync-wave (1) and Argo CD's wave (2" in diff.stderr
    synced = gitmoor("app", "sync", "migrated", "--quiet")
    assert synced.returncode == 0, synced.stderr
    assert "gitmoor's wins: wave 1" in synced.stderr


async def test_from_argocd_refuses_what_it_cannot_convert(
    gitmoor: Gitmoor, env: AppEnv, tmp_path: Path
) -> None:
    doc = argo_app(env)
    spec = doc["spec"]
    assert isinstance(spec, dict)
    source = spec.pop("source")
    spec["sources"] = [source, {"repoURL": env.repo.url, "path": "other"}]
    f = tmp_path / "app.yaml"
    f.write_text(yaml.safe_dump(doc))

    refused = gitmoor("app", "create", "--from-argocd", str(f))

    assert refused.returncode == 2
    assert "spec.sources: several sources are not supported" in refused.stderr
    assert "Traceback" not in refused.stderr
    listed = gitmoor("app", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert "migrated" not in listed.stdout
