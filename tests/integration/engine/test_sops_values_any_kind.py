"""Values decrypted from SOPS outside a Secret are masked like a Secret's (issue 13
review): a ConfigMap a kustomize ``configMapGenerator`` builds from an encrypted
env file, and a ConfigMap whose ``api-token`` is encrypted in its manifest.

Argo CD and Flux mask Secrets only, so such a value would show in clear in their
diffs. Here the render says which values were encrypted
(``RenderResult.secret_values``) and the app's Redactor masks every field equal to
one, in any kind. Files made by the real ``sops`` and ``age-keygen``; the real
control plane; a real git repository.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import TYPE_CHECKING

import yaml

from gitmoor.engine import operation, store
from gitmoor.engine.inventory import read_inventory
from gitmoor.engine.sync import Phase
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Destination, application_manifest
from gitmoor.model.redaction import Decryption
from gitmoor.secrets.redact import is_mask
from support.apps import configmap, diff_changes, dump
from support.sops import age_keygen, sops_encrypt

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.engine.compare import Comparison
    from gitmoor.model.application import Application
    from support.apps import AppEnv
    from support.cli import Gitmoor

KEY_SECRET = "sops-age-anykind"
APP = "anykind"


def _plaintext(what: str) -> str:
    return f"pl41n-{what}-{secrets.token_hex(6)}"


def _kustomization() -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["token.yaml", "plain.yaml"],
            "configMapGenerator": [{"name": "app-env", "envs": ["app.env"]}],
            # a fixed name: the test reads the ConfigMap by it
            "generatorOptions": {"disableNameSuffixHash": True},
        },
        sort_keys=False,
    )


def _forms(value: str) -> tuple[str, str]:
    return value, base64.b64encode(value.encode()).decode()


def _comparison_text(comparison: Comparison | None) -> str:
    assert comparison is not None
    return json.dumps(
        [
            {
                "message": r.message,
                "diff": r.diff.diff if r.diff else "",
                "live": r.diff.live if r.diff else None,
                "predicted": r.diff.predicted if r.diff else None,
            }
            for r in comparison.resources
        ],
        default=str,
    )


async def _create(env: AppEnv) -> Application:
    app = await store.save_app(
        env.kube,
        application_manifest(
            APP,
            env.apps_namespace,
            AppSource(repo_url=env.repo.url, path="kust", decryption=Decryption(KEY_SECRET)),
            Destination(namespace=env.namespace),
        ),
    )
    env.created.append(APP)
    return app


async def test_values_decrypted_into_configmaps_are_masked_in_every_engine_output(
    env: AppEnv, gitmoor: Gitmoor, tmp_path: Path
) -> None:
    home = tmp_path / "author-home"
    key = age_keygen(tmp_path / "keys", "author")
    db_old, db_new, token = _plaintext("db-old"), _plaintext("db-new"), _plaintext("token")
    values = (db_old, db_new, token)

    def env_file(password: str) -> str:
        return sops_encrypt(
            f"DB_PASSWORD={password}\nDB_HOST=db.internal\n",
            [key.recipient],
            kind="dotenv",
            home=home,
        )

    token_manifest = sops_encrypt(
        dump(configmap("token", {"api-token": token, "color": "blue"})),
        [key.recipient],
        kind="yaml",
        home=home,
        encrypted_regex="^api-token$",
    )
    env.repo.commit(
        {
            "kust/kustomization.yaml": _kustomization(),
            "kust/app.env": env_file(db_old),
            "kust/token.yaml": token_manifest,
            "kust/plain.yaml": dump(configmap("plain", {"mode": "fast"})),
        }
    )
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": KEY_SECRET, "namespace": env.apps_namespace},
            "stringData": {"author.agekey": key.file.read_text()},
        }
    )
    await _create(env)

    # Decrypted and applied: the cluster holds the plaintext.
    result = await env.sync(APP)
    assert result.phase is Phase.SUCCEEDED, result.message
    generated = await env.get(ObjectRef("", "v1", "ConfigMap", env.namespace, "app-env"))
    assert generated is not None and generated["data"]["DB_PASSWORD"] == db_old
    encrypted = await env.get(ObjectRef("", "v1", "ConfigMap", env.namespace, "token"))
    assert encrypted is not None and encrypted["data"]["api-token"] == token

    # A second sync writes nothing new and keeps its verdicts: none for an object
    # that holds a decrypted value (its key would be an unkeyed digest of it).
    result = await env.sync(APP)
    assert result.phase is Phase.SUCCEEDED, result.message
    app = await env.app(APP)
    pointer = operation.status_of(app).inventory_ref("verdicts")
    kept = (
        [e["key"] for e in await read_inventory(env.kube, app.name, app.namespace, pointer)]
        if pointer is not None
        else []
    )
    names = {k[3] for k in kept if k[1] == "ConfigMap"}
    assert not names & {"app-env", "token"}, kept
    assert "plain" in names, f"verdicts are kept for other objects: {kept}"

    # Refresh: synced, and nothing of the values in the status or comparison.
    app, comparison = await env.refresh(APP)
    assert app.status["sync"]["status"] == "Synced"
    shown = [json.dumps(app.status), _comparison_text(comparison)]

    # The env value changes in git: the diff shows the change, with two masks.
    env.repo.commit({"kust/app.env": env_file(db_new)})

    async def out_of_sync() -> bool | None:
        a, _ = await env.refresh(APP)
        return True if a.status["sync"]["status"] == "OutOfSync" else None

    await wait_for(out_of_sync, within=60, interval=0.5, what="the app OutOfSync")
    diff = await env.engine.diff(await env.app(APP))
    shown.append(_comparison_text(diff))
    changed = {r.ref.name: r.diff for r in diff.resources if r.diff is not None and r.diff.changed}
    assert set(changed) == {"app-env"}, "the changed value shows as changed, nothing else"
    removed, added = diff_changes(changed["app-env"].diff)
    assert len(removed) == len(added) == 1, changed["app-env"].diff
    assert removed[0].startswith("DB_PASSWORD: <redacted:") and added[0].startswith(
        "DB_PASSWORD: <redacted:"
    )
    assert removed != added

    # gitmoor render masks them too, unless --show-secrets.
    rendered = gitmoor("render", str(env.repo.path / "kust"), "--age-key-file", str(key.file))
    assert rendered.returncode == 0, rendered.stderr
    shown.append(rendered.stdout + rendered.stderr)
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(rendered.stdout) if d}
    assert is_mask(docs["app-env"]["data"]["DB_PASSWORD"])
    assert is_mask(docs["token"]["data"]["api-token"])
    assert docs["token"]["data"]["color"] == "blue", "a value that was not encrypted stays"
    # Every value of an encrypted env file was encrypted: DB_HOST too.
    assert is_mask(docs["app-env"]["data"]["DB_HOST"])
    assert docs["plain"]["data"] == {"mode": "fast"}

    for text in shown:
        for value in values:
            for form in _forms(value):
                assert form not in text
