"""`gitmoor app create --decryption-secret`: an encrypted Secret from Git, as a user
meets it: refused with the file named until the key is in the cluster, then
applied as plaintext. Files are encrypted by the real sops for a key made by the
real age-keygen."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from gitmoor.model import ObjectRef
from support.sops import age_keygen, sops_encrypt

if TYPE_CHECKING:
    from pathlib import Path

    from support.apps import AppEnv
    from support.cli import Gitmoor

PLAIN = "pl41n-cli-3e9b0a"


async def test_an_encrypted_secret_waits_for_its_key_then_is_applied_in_plaintext(
    gitmoor: Gitmoor, env: AppEnv, tmp_path: Path
) -> None:
    key = age_keygen(tmp_path / "keys")
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n"
        f"stringData:\n  password: {PLAIN}\n"
    )
    env.repo.commit(
        {"secret.yaml": sops_encrypt(secret, [key.recipient], kind="yaml", home=tmp_path / "h")}
    )
    outputs: list[str] = []

    def run(*args: str) -> tuple[int, str]:
        done = gitmoor(*args)
        outputs.append(done.stdout + done.stderr)
        return done.returncode, done.stdout + done.stderr

    code, out = run(
        "app", "create", "sec", "--repo", env.repo.url, "--dest-namespace", env.namespace,
        "--decryption-secret", "sops-age",
    )  # fmt: skip
    assert code == 0, out
    code, out = run("app", "sync", "sec")
    assert code != 0
    assert (
        f"secret.yaml is encrypted with SOPS, but the decryption Secret "
        f"{env.apps_namespace}/sops-age does not exist"
    ) in " ".join(out.split())
    live_ref = ObjectRef("", "v1", "Secret", env.namespace, "creds")
    assert await env.kube.get(live_ref) is None

    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sops-age", "namespace": env.apps_namespace},
            "stringData": {"app.agekey": key.file.read_text()},
        }
    )
    code, out = run("app", "sync", "sec")
    assert code == 0, out
    live = await env.kube.get(live_ref)
    assert live is not None
    assert base64.b64decode(live["data"]["password"]).decode() == PLAIN
    code, out = run("app", "get", "sec")
    assert code == 0, out
    assert "Synced" in out
    assert not [o for o in outputs if PLAIN in o]
