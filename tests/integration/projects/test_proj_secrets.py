"""`gitmoor proj create --require-encrypted-secrets --decryption-secret`: a project
that keeps plaintext Secrets out of its apps, as a platform team sets it up."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from gitmoor.model import ObjectRef
from support.apps import dump

if TYPE_CHECKING:
    from support.apps import AppEnv
    from support.cli import Gitmoor


async def test_a_project_that_requires_encryption_refuses_a_plaintext_secret(
    gitmoor: Gitmoor, env: AppEnv
) -> None:
    made = gitmoor(
        "proj", "create", "team-s", "--src", "*", "--dest", "in-cluster,*",
        "--decryption-secret", "sops-age", "--require-encrypted-secrets",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    spec = json.loads(gitmoor("proj", "get", "team-s", "-o", "json").stdout)["spec"]
    assert spec["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    assert spec["requireEncryptedSecrets"] is True
    shown = gitmoor("proj", "get", "team-s").stdout
    assert "decrypted with Secret sops-age; must be encrypted in Git" in shown

    plain = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"password": "in-the-clear"},
    }
    env.repo.commit({"secrets/creds.yaml": dump(plain)})
    created = gitmoor(
        "app", "create", "plain", "--repo", env.repo.url, "--project", "team-s",
        "--dest-namespace", env.namespace,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    synced = gitmoor("app", "sync", "plain")
    assert synced.returncode != 0
    said = " ".join((synced.stdout + synced.stderr).split())
    assert (
        "secrets/creds.yaml:1 holds a plaintext Secret (creds), and the project requires "
        "Secrets to be encrypted with SOPS"
    ) in said
    assert await env.kube.get(ObjectRef("", "v1", "Secret", env.namespace, "creds")) is None
