"""Secrets in Git, end to end: SOPS files made by the real ``sops`` for keys made
by the real ``age-keygen``, committed to a real repository, decrypted at render
time with the key Secret the Application names, applied to the real API server.

What a user relies on (issue 13, "Must show"):

- an encrypted Secret and a kustomize ``secretGenerator`` fed from an encrypted
  env file land in the cluster as plaintext;
- each failure (a tampered value, the key Secret removed, a key for another
  recipient) is reported naming the file, and the app is left as it was: nothing
  of the commit is applied, not even its unencrypted objects;
- rotation to a new key works, and the old key no longer opens the files;
- a project with ``requireEncryptedSecrets`` refuses a plaintext Secret;
- the plaintext is in no output (sync, diff, get, render, history, events, logs)
  and in no file left on disk (git cache, CLI cache, temp directories).

Every plaintext value is distinctive (``pl41n-<what>-<random>``) so that a search
for it cannot match anything else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from gitmoor.controller.notify import CONFIGMAP as NOTIFY_CONFIGMAP
from gitmoor.controller.service import serve_controller
from gitmoor.engine import store
from gitmoor.engine.sync import Phase
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Destination, application_manifest
from gitmoor.model.project import AppProject, ProjectDestination
from gitmoor.model.redaction import Decryption
from gitmoor.model.status import SyncOperation
from gitmoor.settings import create_project
from support.apps import configmap, diff_changes, dump
from support.receiver import Receiver, receiving
from support.sops import AgeKey, age_keygen, sops_decrypt, sops_encrypt, tool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from gitmoor.engine.compare import Comparison
    from gitmoor.engine.sync import SyncResult
    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application
    from support.apps import AppEnv
    from support.cli import Gitmoor

KEY_SECRET = "sops-age"


def plaintext(what: str) -> str:
    return f"pl41n-{what}-{secrets.token_hex(6)}"


# ---------------------------------------------------------------- authoring, as a user does


class Author:
    """An author's laptop: an age key and the real ``sops``, run with a HOME of its
    own so that no key of the machine's user is ever read."""

    def __init__(self, tmp: Path, name: str = "author") -> None:
        self.home = tmp / f"{name}-home"
        self.key = age_keygen(tmp / f"{name}-keys", name)

    def secret(self, name: str, values: dict[str, str]) -> str:
        """A Secret manifest with ``stringData``, encrypted (only ``data``/``stringData``,
        the rule Flux and gitmoor recommend, so the manifest stays readable)."""
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "Opaque",
            "stringData": values,
        }
        return sops_encrypt(dump(manifest), [self.key.recipient], kind="yaml", home=self.home)

    def env_file(self, values: dict[str, str]) -> str:
        text = "".join(f"{k}={v}\n" for k, v in values.items())
        return sops_encrypt(text, [self.key.recipient], kind="dotenv", home=self.home)

    def sops(self, *args: str | Path) -> str:
        """``sops ARGS`` with this author's key (``SOPS_AGE_KEY_FILE``)."""
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "SOPS_AGE_KEY_FILE": str(self.key.file),
        }
        done = subprocess.run(
            [tool("sops"), *map(str, args)], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def kustomization(*, resources: tuple[str, ...] = (), env_file: str | None = "creds.env") -> str:
    doc: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if resources:
        doc["resources"] = list(resources)
    if env_file:
        # A fixed name: the test reads the Secret by it (kustomize's hash suffix
        # would change with every value).
        doc["secretGenerator"] = [{"name": "generated", "envs": [env_file]}]
        doc["generatorOptions"] = {"disableNameSuffixHash": True}
    return yaml.safe_dump(doc, sort_keys=False)


# ---------------------------------------------------------------- the cluster side


async def install_key(kube: KubeClient, namespace: str, *keys: AgeKey) -> None:
    """The decryption Secret, as ``gitmoor secret install-key`` (or kubectl) makes it:
    each key file, comments and all, under a ``*.agekey`` entry. Replaced if present."""
    await kube.delete(ObjectRef("", "v1", "Secret", namespace, KEY_SECRET))
    await wait_for(
        lambda: _absent(kube, ObjectRef("", "v1", "Secret", namespace, KEY_SECRET)),
        within=30,
        interval=0.1,
        what="old key Secret gone",
    )
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": KEY_SECRET, "namespace": namespace},
            "stringData": {f"key{i}.agekey": k.file.read_text() for i, k in enumerate(keys)},
        }
    )


async def _absent(kube: KubeClient, ref: ObjectRef) -> bool | None:
    return True if await kube.get(ref) is None else None


async def create_app(
    env: AppEnv,
    name: str,
    *,
    path: str = ".",
    decryption: str | None = KEY_SECRET,
    project: str | None = None,
) -> Application:
    manifest = application_manifest(
        name,
        env.apps_namespace,
        AppSource(
            repo_url=env.repo.url,
            path=path,
            decryption=Decryption(decryption) if decryption else None,
        ),
        Destination(namespace=env.namespace),
    )
    if project:
        manifest["spec"]["project"] = project
    app = await store.save_app(env.kube, manifest)
    env.created.append(name)
    return app


def secret_ref(env: AppEnv, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "Secret", env.namespace, name)


async def live_values(env: AppEnv, name: str) -> dict[str, str]:
    live = await env.get(secret_ref(env, name))
    assert live is not None, f"Secret {name} is not in the cluster"
    return {k: base64.b64decode(v).decode() for k, v in (live.get("data") or {}).items()}


async def resource_version(env: AppEnv, ref: ObjectRef) -> str:
    live = await env.get(ref)
    assert live is not None, ref
    return str(live["metadata"]["resourceVersion"])


def condition_messages(app: Application) -> list[str]:
    return [str(c.get("message", "")) for c in app.status.get("conditions") or []]


def flat(text: str) -> str:
    """Messages may be wrapped (CLI tables); compare them with single spaces."""
    return " ".join(text.split())


# ---------------------------------------------------------------- decrypted and applied


async def test_an_encrypted_secret_and_a_generator_fed_from_an_encrypted_env_file_are_applied_in_plaintext(
    env: AppEnv, tmp_path: Path
) -> None:
    author = Author(tmp_path)
    password, token, api_key = plaintext("password"), plaintext("token"), plaintext("apikey")
    files = {
        # a directory app: plain YAML, one of them encrypted
        "dir/secret.yaml": author.secret("db", {"password": password, "user": "admin"}),
        "dir/settings.yaml": dump(configmap("settings", {"mode": "fast"})),
        # a kustomize app: its secretGenerator reads an encrypted dotenv file
        "kust/kustomization.yaml": kustomization(),
        "kust/creds.env": author.env_file({"TOKEN": token, "API_KEY": api_key}),
    }
    for text in files.values():
        assert password not in text and token not in text and api_key not in text
    env.repo.commit(files)
    await install_key(env.kube, env.apps_namespace, author.key)
    await create_app(env, "dir", path="dir")
    await create_app(env, "kust", path="kust")

    for name in ("dir", "kust"):
        result = await env.sync(name)
        assert result.phase is Phase.SUCCEEDED, result.message

    assert await live_values(env, "db") == {"password": password, "user": "admin"}
    assert await live_values(env, "generated") == {"TOKEN": token, "API_KEY": api_key}
    for name in ("dir", "kust"):
        app = await env.healthy(name)
        assert app.status["sync"]["status"] == "Synced"
        assert not app.status.get("conditions")


#: What examples/apps/credentials holds once decrypted with the demo's key (public,
#: demo only: src/gitmoor/demo/demo.agekey).
DEMO_VALUES = {
    "payments-db": {"username": "payments_rw", "password": "demo-only-db-password-4f1c"},
    "payments-api": {
        "API_TOKEN": "demo-only-api-token-9b7e",
        "WEBHOOK_SECRET": "demo-only-webhook-secret-2d05",
    },
}


async def test_the_example_repository_s_encrypted_app_syncs_as_the_demo_sets_it_up(
    env: AppEnv, gitmoor: Gitmoor, repo_root: Path
) -> None:
    """`make demo`'s credentials app: the committed ciphertext, the demo's key stored
    with `gitmoor secret install-key`, the app created and synced with the CLI."""
    shutil.copytree(
        repo_root / "examples" / "apps" / "credentials", env.repo.path / "apps" / "credentials"
    )
    shutil.copy(repo_root / "examples" / ".sops.yaml", env.repo.path / ".sops.yaml")
    committed = "".join(p.read_text() for p in _files_under(env.repo.path / "apps"))
    for values in DEMO_VALUES.values():
        for value in values.values():
            assert value not in committed
    env.repo.commit(message="the example repository's credentials app")

    def run(*args: str) -> str:
        done = gitmoor(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    key_file = repo_root / "src" / "gitmoor" / "demo" / "demo.agekey"
    run("secret", "install-key", KEY_SECRET, "--age-key-file", str(key_file))
    run(
        "app", "create", "credentials", "--repo", env.repo.url, "--path", "apps/credentials",
        "--dest-namespace", env.namespace, "--decryption-secret", KEY_SECRET,
    )  # fmt: skip
    synced = run("app", "sync", "credentials", "--timeout", "120")

    assert await live_values(env, "payments-db") == DEMO_VALUES["payments-db"]
    secrets_live = await env.kube.list(await env.kube.resource("", "v1", "Secret"), env.namespace)
    (api,) = [
        o["metadata"]["name"]
        for o in secrets_live.items
        if o["metadata"]["name"].startswith("payments-api-")  # the generator's hash
    ]
    assert await live_values(env, api) == DEMO_VALUES["payments-api"]
    web = await env.get(ObjectRef("apps", "v1", "Deployment", env.namespace, "payments"))
    assert web is not None
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": api}}]
    app = await env.healthy("credentials")
    assert app.status["sync"]["status"] == "Synced"
    shown = synced + run("app", "get", "credentials") + run("app", "diff", "credentials")
    for value in (*DEMO_VALUES["payments-api"].values(), DEMO_VALUES["payments-db"]["password"]):
        assert value not in shown


# ---------------------------------------------------------------- failures leave the app as it was


def _replay_old_value(old: str, new: str, field: str) -> str:
    """``new`` with ``field``'s ciphertext taken from ``old``: a value encrypted with
    the same data key at the same path, so it decrypts, but the MAC (over the new
    plaintext) no longer matches. This is the attack the MAC is there for: rolling
    one value back to an earlier one without the key."""
    pattern = re.compile(rf"^(\s*{re.escape(field)}: )(ENC\[[^\]]*\])$", re.M)
    old_value = pattern.search(old)
    assert old_value is not None
    tampered, count = pattern.subn(lambda m: m.group(1) + old_value.group(2), new)
    assert count == 1 and tampered != new
    return tampered


def _alter_ciphertext(text: str, field: str) -> str:
    """One character of ``field``'s ciphertext changed: AES-GCM refuses it."""

    def flip(m: re.Match[str]) -> str:
        return m.group(1) + ("A" if m.group(2) != "A" else "B")

    altered, count = re.subn(rf"({re.escape(field)}: ENC\[AES256_GCM,data:)(.)", flip, text)
    assert count == 1 and altered != text
    return altered


class Synced:
    """An app synced once with an encrypted Secret and a ConfigMap, and what the
    cluster held then: each failure below must leave exactly this."""

    def __init__(self, env: AppEnv, author: Author, password: str, path: Path) -> None:
        self.env = env
        self.author = author
        self.password = password
        self.file = path  # the encrypted file in the working tree

    @classmethod
    async def make(cls, env: AppEnv, tmp_path: Path) -> Synced:
        author = Author(tmp_path)
        password = plaintext("v1")
        env.repo.commit(
            {
                "app/secret.yaml": author.secret("db", {"password": password}),
                "app/settings.yaml": dump(configmap("settings", {"version": "1"})),
            }
        )
        await install_key(env.kube, env.apps_namespace, author.key)
        await create_app(env, "shop", path="app")
        result = await env.sync("shop")
        assert result.phase is Phase.SUCCEEDED, result.message
        return cls(env, author, password, env.repo.path / "app" / "secret.yaml")

    async def versions(self) -> tuple[str, str]:
        return (
            await resource_version(self.env, secret_ref(self.env, "db")),
            await resource_version(self.env, self.env.cm("settings")),
        )

    async def assert_refused_and_unchanged(self, before: tuple[str, str], *expected: str) -> None:
        """A sync fails with a message naming ``app/secret.yaml`` (and each of
        ``expected``), the refresh shows it as a ComparisonError, and nothing was
        written: neither the Secret nor the ConfigMap that the same commit changed."""
        result = await self.env.sync("shop")
        assert result.phase in (Phase.FAILED, Phase.ERROR), result
        assert "app/secret.yaml" in result.message
        for text in expected:
            assert text in flat(result.message), result.message
        assert not result.resources  # nothing of the app was applied

        app, comparison = await self.env.refresh("shop")
        assert comparison is None
        (condition,) = app.status.get("conditions") or [{}]
        assert condition.get("type") == "ComparisonError", app.status
        assert "app/secret.yaml" in condition["message"]
        for text in expected:
            assert text in flat(condition["message"])
        assert app.status["operationState"]["phase"] in ("Failed", "Error")
        assert "app/secret.yaml" in app.status["operationState"]["message"]

        assert await self.versions() == before
        assert await live_values(self.env, "db") == {"password": self.password}
        settings = await self.env.get(self.env.cm("settings"))
        assert settings is not None and settings["data"] == {"version": "1"}


@pytest.mark.parametrize("how", ["replayed-value", "altered-ciphertext"])
async def test_a_commit_that_tampers_with_an_encrypted_value_is_refused_naming_the_file(
    env: AppEnv, tmp_path: Path, how: str
) -> None:
    app = await Synced.make(env, tmp_path)
    before = await app.versions()
    old = app.file.read_text()
    # The author's legitimate change (sops keeps the data key, writes a new MAC)...
    app.author.sops("set", app.file, '["stringData"]["password"]', json.dumps(plaintext("v2")))
    new = app.file.read_text()
    # ...then someone without the key changes the committed file.
    if how == "replayed-value":
        tampered, expected = _replay_old_value(old, new, "password"), "its MAC does not match"
    else:
        tampered, expected = _alter_ciphertext(new, "password"), "does not decrypt"
    env.repo.commit(
        {
            "app/secret.yaml": tampered,
            "app/settings.yaml": dump(configmap("settings", {"version": "2"})),
        }
    )

    await app.assert_refused_and_unchanged(before, expected)


async def test_removing_the_key_secret_is_refused_naming_the_file(
    env: AppEnv, tmp_path: Path
) -> None:
    app = await Synced.make(env, tmp_path)
    before = await app.versions()
    env.repo.commit(
        {
            "app/secret.yaml": app.author.secret("db", {"password": plaintext("v2")}),
            "app/settings.yaml": dump(configmap("settings", {"version": "2"})),
        }
    )
    await env.kube.delete(ObjectRef("", "v1", "Secret", env.apps_namespace, KEY_SECRET))

    await app.assert_refused_and_unchanged(
        before, f"the decryption Secret {env.apps_namespace}/{KEY_SECRET} does not exist"
    )


async def test_a_key_for_another_recipient_is_refused_naming_the_file_and_its_recipient(
    env: AppEnv, tmp_path: Path
) -> None:
    app = await Synced.make(env, tmp_path)
    before = await app.versions()
    env.repo.commit(
        {
            "app/secret.yaml": app.author.secret("db", {"password": plaintext("v2")}),
            "app/settings.yaml": dump(configmap("settings", {"version": "2"})),
        }
    )
    stranger = Author(tmp_path, "stranger")
    await install_key(env.kube, env.apps_namespace, stranger.key)

    await app.assert_refused_and_unchanged(
        before, f"it is encrypted for {app.author.key.recipient}"
    )


# ---------------------------------------------------------------- rotation


async def test_rotation_to_a_new_key_syncs_and_the_old_key_no_longer_decrypts(
    env: AppEnv, tmp_path: Path
) -> None:
    old = Author(tmp_path, "old")
    new = Author(tmp_path, "new")
    password, token = plaintext("password"), plaintext("token")
    env.repo.commit(
        {
            "app/kustomization.yaml": kustomization(resources=("secret.yaml",)),
            "app/secret.yaml": old.secret("db", {"password": password}),
            "app/creds.env": old.env_file({"TOKEN": token}),
        }
    )
    await install_key(env.kube, env.apps_namespace, old.key)
    await create_app(env, "shop", path="app")
    assert (await env.sync("shop")).phase is Phase.SUCCEEDED

    # Rotate as an author does: a new data key, the new recipient in, the old out.
    files = {"app/secret.yaml": "yaml", "app/creds.env": "dotenv"}
    for rel, kind in files.items():
        old.sops(
            "rotate", "--in-place", "--input-type", kind, "--output-type", kind,
            "--add-age", new.key.recipient, "--rm-age", old.key.recipient,
            env.repo.path / rel,
        )  # fmt: skip
    rotated = {rel: (env.repo.path / rel).read_text() for rel in files}
    env.repo.commit(message="rotate to the new key")
    for rel, kind in files.items():
        assert new.key.recipient in rotated[rel] and old.key.recipient not in rotated[rel]
        refused = sops_decrypt(rotated[rel], old.key, kind=kind, home=tmp_path / "check-old")
        assert refused.returncode != 0, f"the old key still decrypts {rel}"
        opened = sops_decrypt(rotated[rel], new.key, kind=kind, home=tmp_path / "check-new")
        assert opened.returncode == 0, opened.stderr

    # The cluster still holds only the old key: the rotated files do not open.
    result = await env.sync("shop")
    assert result.phase in (Phase.FAILED, Phase.ERROR)
    assert "app/creds.env" in result.message or "app/secret.yaml" in result.message
    assert "none of the age keys" in flat(result.message)

    # With the new key installed, the sync works and the values are unchanged...
    await install_key(env.kube, env.apps_namespace, new.key)
    result = await env.sync("shop")
    assert result.phase is Phase.SUCCEEDED, result.message
    assert await live_values(env, "db") == {"password": password}
    assert await live_values(env, "generated") == {"TOKEN": token}
    # ...and a value encrypted for the new key after the rotation is applied.
    password2 = plaintext("password2")
    env.repo.commit({"app/secret.yaml": new.secret("db", {"password": password2})})
    result = await env.sync("shop")
    assert result.phase is Phase.SUCCEEDED, result.message
    assert await live_values(env, "db") == {"password": password2}


# ---------------------------------------------------------------- requireEncryptedSecrets


async def test_a_project_requiring_encryption_refuses_a_plaintext_secret_naming_the_file(
    env: AppEnv, tmp_path: Path
) -> None:
    author = Author(tmp_path)
    await create_project(
        env.kube,
        AppProject(
            name="vault",
            namespace=env.apps_namespace,
            source_repos=(env.repo.url,),
            destinations=(ProjectDestination(namespace=env.namespace),),
            # the apps name no decryption: the project's applies (Flux's spec.decryption)
            decryption=Decryption(KEY_SECRET),
            require_encrypted_secrets=True,
        ),
    )
    await install_key(env.kube, env.apps_namespace, author.key)
    password, leaked = plaintext("password"), plaintext("leaked")
    env.repo.commit(
        {
            "app/secret.yaml": author.secret("db", {"password": password}),
            "app/settings.yaml": dump(configmap("settings")),
            "app/oops.yaml": dump(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "oops"},
                    "stringData": {"password": leaked},
                }
            ),
        }
    )
    await create_app(env, "shop", path="app", decryption=None, project="vault")

    result = await env.sync("shop")

    assert result.phase in (Phase.FAILED, Phase.ERROR), result
    # Render errors name a manifest by its place in the app's path (file:line).
    assert "oops.yaml:1 holds a plaintext Secret (oops)" in result.message
    assert "requires Secrets to be encrypted" in flat(result.message)
    assert leaked not in result.message
    assert not result.resources
    for name in ("oops", "db"):
        assert await env.get(secret_ref(env, name)) is None
    assert await env.get(env.cm("settings")) is None
    app, _ = await env.refresh("shop")
    assert any("oops.yaml:1 holds a plaintext Secret" in m for m in condition_messages(app))

    # The same app with the plaintext Secret gone: the encrypted one is accepted.
    env.repo.commit(remove=("app/oops.yaml",))
    result = await env.sync("shop")
    assert result.phase is Phase.SUCCEEDED, result.message
    assert await live_values(env, "db") == {"password": password}


# ---------------------------------------------------------------- no plaintext anywhere


def _forms(value: str) -> list[str]:
    """The value and its base64 (how a Secret's ``data`` would leak it)."""
    return [value, base64.b64encode(value.encode()).decode()]


def _files_under(root: Path) -> Iterator[Path]:
    if root.exists():
        yield from (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


async def test_no_plaintext_in_any_output_or_file_after_a_whole_session(
    env: AppEnv,
    gitmoor: Gitmoor,
    git_cache: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    receiver: Receiver,
) -> None:
    # Temp files of this test, the engine's and the CLI's, go to a directory of its
    # own, so that "nothing left behind" is a check on this session only.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="gitmoor")
    cli_env = {**gitmoor.env, "TMPDIR": str(private_tmp)}

    author = Author(tmp_path)
    v1 = {"password": plaintext("password"), "token": plaintext("token"), "env": plaintext("env")}
    v2 = {"password": plaintext("password2")}
    v3 = {"password": plaintext("password3"), "tampered": plaintext("password4")}
    values = [*v1.values(), *v2.values(), *v3.values()]
    outputs: list[tuple[str, str]] = []

    def out(what: str, text: object) -> None:
        outputs.append((what, text if isinstance(text, str) else json.dumps(text, default=str)))

    def cli(*args: str, ok: bool = True) -> str:
        done = subprocess.run(
            [*_cli_prefix(gitmoor), *args], capture_output=True, text=True, env=cli_env, timeout=120
        )
        out(f"gitmoor {' '.join(args)}", done.stdout + done.stderr)
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    env.repo.commit(
        {
            "app/kustomization.yaml": kustomization(resources=("secret.yaml", "settings.yaml")),
            "app/secret.yaml": author.secret(
                "db", {"password": v1["password"], "token": v1["token"]}
            ),
            "app/creds.env": author.env_file({"ENV_VALUE": v1["env"]}),
            "app/settings.yaml": dump(configmap("settings", {"mode": "fast"})),
        }
    )
    await install_key(env.kube, env.apps_namespace, author.key)
    await create_app(env, "shop", path="app")

    # sync through the engine
    result = await env.sync("shop")
    assert result.phase is Phase.SUCCEEDED, result.message
    _record_sync(out, "engine sync", result)
    assert await live_values(env, "db") == {"password": v1["password"], "token": v1["token"]}
    assert await live_values(env, "generated") == {"ENV_VALUE": v1["env"]}
    app, comparison = await env.refresh("shop")
    _record_comparison(out, "engine refresh", comparison)

    # a changed value: the diff shows the Secret as changed, without either value
    env.repo.commit(
        {"app/secret.yaml": author.secret("db", {"password": v2["password"], "token": v1["token"]})}
    )
    app, comparison = await env.refresh("shop")
    assert app.status["sync"]["status"] == "OutOfSync"
    _record_comparison(out, "engine refresh after change", comparison)
    diff = await env.engine.diff(await env.app("shop"))
    _record_comparison(out, "engine diff", diff)
    changed = [r for r in diff.resources if r.diff is not None and r.diff.changed]
    assert [r.ref.name for r in changed] == ["db"], "the changed value must show as changed"
    diff_text = changed[0].diff.diff if changed[0].diff else ""
    removed, added = diff_changes(diff_text)
    mask = re.compile(r"^password: <redacted:[0-9a-f]{8}>$")
    # one fixed-length mask for the old value, another for the new; the token unchanged
    assert len(removed) == len(added) == 1 and mask.match(removed[0]) and mask.match(added[0])
    assert removed != added
    cli_diff = cli("app", "diff", "shop", ok=False)
    assert "db" in cli_diff

    # the CLI, as a user runs it
    cli("-v", "app", "sync", "shop")
    assert await live_values(env, "db") == {"password": v2["password"], "token": v1["token"]}
    for args in (
        ("app", "get", "shop"),
        ("app", "get", "shop", "-o", "json"),
        ("app", "get", "shop", "-o", "yaml", "--refresh"),
        ("app", "list"),
        ("app", "history", "shop"),
        ("app", "history", "shop", "-o", "json"),
        ("app", "diff", "shop"),
    ):
        cli(*args)
    # a local render of the checkout, with the author's key at hand
    render_env = {**cli_env, "SOPS_AGE_KEY_FILE": str(author.key.file)}
    done = subprocess.run(
        [*_cli_prefix(gitmoor)[:3], "render", str(env.repo.path / "app")],
        capture_output=True,
        text=True,
        env=render_env,
        timeout=120,
    )
    out("gitmoor render", done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr
    assert "name: generated" in done.stdout and "<redacted:" in done.stdout

    # the controller, as `gitmoor controller` runs it: a sync it runs, then a
    # tampered commit it refuses; both become Events and webhook notifications
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": NOTIFY_CONFIGMAP, "namespace": env.apps_namespace},
            "data": {"config.yaml": f"webhooks:\n- name: tests\n  url: {receiver.url}\n"},
        }
    )
    async with _controller(env):
        env.repo.commit(
            {
                "app/secret.yaml": author.secret(
                    "db", {"password": v3["password"], "token": v1["token"]}
                )
            }
        )
        await env.engine.request_sync(await env.app("shop"), SyncOperation(initiated_by="tests"))

        async def v3_live() -> bool:
            live = await env.get(secret_ref(env, "db"))
            data = (live or {}).get("data") or {}
            return base64.b64decode(data.get("password", "")).decode() == v3["password"]

        await wait_for(v3_live, within=60, interval=0.3, what="the controller's sync of v3")
        secret_file = env.repo.path / "app" / "secret.yaml"
        author.sops("set", secret_file, '["stringData"]["password"]', json.dumps(v3["tampered"]))
        env.repo.commit({"app/secret.yaml": _alter_ciphertext(secret_file.read_text(), "password")})
        await env.engine.request_sync(await env.app("shop"), SyncOperation(initiated_by="tests"))

        async def refused_event() -> list[dict[str, Any]] | None:
            # The failed sync's OperationCompleted (Warning) names the file; a
            # ComparisonError Event follows only if a refresh sees the condition first.
            events = await env.kube.list(
                await env.kube.resource("", "v1", "Event"), env.apps_namespace
            )
            named = any("app/secret.yaml" in str(e.get("message")) for e in events.items)
            return events.items if named else None

        await wait_for(refused_event, within=60, interval=0.3, what="an Event naming the file")

        async def notified() -> bool:
            return any("app/secret.yaml" in json.dumps(b) for b in receiver.bodies)

        await wait_for(notified, within=60, interval=0.3, what="the sync-failed notification")
    out("notifications", receiver.bodies)
    assert await live_values(env, "db") == {"password": v3["password"], "token": v1["token"]}

    # what the engine keeps: the Application (status, history, conditions), its
    # inventory, the sync results, and every Event of both namespaces
    app = await env.app("shop")
    out("Application", app.raw)
    out("resources", await env.engine.resources(app))
    out("sync results", await env.engine.sync_results(app))
    for ns in (env.namespace, env.apps_namespace):
        events = await env.kube.list(await env.kube.resource("", "v1", "Event"), ns)
        out(f"events in {ns}", events.items)
    inventories = await env.kube.list(
        await env.kube.resource("", "v1", "ConfigMap"), env.apps_namespace
    )
    out("ConfigMaps of the apps namespace", inventories.items)
    out("logs", "\n".join(r.getMessage() for r in caplog.records))

    # The search finds a value where it is meant to be: in the live Secret.
    live_db = await env.get(secret_ref(env, "db"))
    assert any(form in json.dumps(live_db) for form in _forms(v3["password"]))
    leaks = [
        (what, form[:14] + "…")
        for what, text in outputs
        for value in values
        for form in _forms(value)
        if form in text
    ]
    assert not leaks, f"plaintext found in {leaks}"

    # nothing on disk: the git caches (engine's and CLI's), and no temp directory
    # left behind (decryption happens in one, removed afterwards)
    cli_cache = Path(gitmoor.env["GITMOOR_CACHE_DIR"])
    on_disk = [
        str(path)
        for root in (git_cache, cli_cache, private_tmp)
        for path in _files_under(root)
        if any(form.encode() in path.read_bytes() for v in values for form in _forms(v))
    ]
    assert not on_disk, f"plaintext on disk in {on_disk}"
    left = sorted(p.name for p in private_tmp.iterdir() if p.name.startswith("gitmoor-"))
    assert not left, f"temporary directories left behind: {left}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@contextlib.asynccontextmanager
async def _controller(env: AppEnv) -> AsyncIterator[None]:
    """``gitmoor controller`` over the test's apps namespace (Events, notifications),
    stopped and awaited on leaving."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve_controller(
            env.kube,
            env.apps_namespace,
            interval=1,
            workers=2,
            stop=stop,
            # not about Rollouts: no cluster-wide Rollout controller over other tests'
            rollouts=False,
        )
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _cli_prefix(gitmoor: Gitmoor) -> list[str]:
    """The command line ``Gitmoor.__call__`` runs, so this test can give it an env."""
    return [
        sys.executable,
        "-m",
        "gitmoor.cli.main",
        "--kubeconfig",
        str(gitmoor.kubeconfig),
        "--apps-namespace",
        gitmoor.apps_namespace,
    ]


def _record_sync(out: Any, what: str, result: SyncResult) -> None:
    out(what, {"message": result.message, "result": result.to_dict()})


def _record_comparison(out: Any, what: str, comparison: Comparison | None) -> None:
    assert comparison is not None
    for r in comparison.resources:
        out(f"{what} {r.ref.kind}/{r.ref.name}", r.to_dict())
        if r.diff is not None:
            out(f"{what} diff {r.ref.name}", r.diff.diff)
            out(f"{what} live {r.ref.name}", r.diff.live)
            out(f"{what} predicted {r.ref.name}", r.diff.predicted)
