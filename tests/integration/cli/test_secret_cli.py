"""`gitmoor secret`: files it encrypts are decrypted by the real ``sops`` (v3.13.3
from the tool cache), files the real ``sops`` encrypts are decrypted by it, and
rotation, edit and install-key behave as an author relies on."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from gitmoor.model import ObjectRef
from support.sops import AgeKey, age_keygen, sops_decrypt, sops_encrypt, tool

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from support.cli import Gitmoor

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db-credentials
  namespace: apps
type: Opaque
data:
  password: c3VwZXItc2VjcmV0LXBhc3N3b3Jk
stringData:
  username: plaintext-user-name
  port: "5432"
"""
DOTENV = "DB_USER=plaintext-user-name\n# rotate yearly\nDB_PASSWORD=env-secret-value\n"
JSON_DOC = json.dumps({"token": "json-secret-token", "retries": 3, "nested": {"on": True}})
BINARY = "opaque binary-secret-blob\x01\x02 end\n"

#: format, file name, plaintext, the values that must never appear encrypted
CASES = [
    ("yaml", "secret.yaml", SECRET, ["c3VwZXItc2VjcmV0LXBhc3N3b3Jk", "plaintext-user-name"]),
    ("dotenv", "app.env", DOTENV, ["plaintext-user-name", "env-secret-value"]),
    ("json", "config.json", JSON_DOC, ["json-secret-token"]),
    ("binary", "blob.bin", BINARY, ["binary-secret-blob"]),
]


def gitmoor_secret(
    *args: str, home: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``gitmoor secret ARGS`` as an author runs it, with a HOME of the test's own
    (so neither sops's nor gitmoor's default key file is the developer's)."""
    return subprocess.run(
        [sys.executable, "-m", "gitmoor.cli.main", "secret", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home), **(env or {})},
        timeout=120,
    )


def keygen(home: Path, name: str) -> AgeKey:
    path = home / f"{name}.txt"
    r = gitmoor_secret("keygen", "-o", str(path), home=home)
    assert r.returncode == 0, r.stderr
    identity = next(ln for ln in path.read_text().splitlines() if ln.startswith("AGE-SECRET"))
    assert identity not in r.stdout + r.stderr
    return AgeKey(identity, r.stdout.strip(), path)


def same(fmt: str, a: str, b: str) -> bool:
    if fmt == "yaml":
        return list(yaml.safe_load_all(a)) == list(yaml.safe_load_all(b))
    if fmt == "json":
        return bool(json.loads(a) == json.loads(b))
    return a == b


def test_keygen_writes_a_private_key_file_in_age_keygen_format(tmp_path: Path) -> None:
    key = keygen(tmp_path, "k")
    assert key.file.stat().st_mode & 0o777 == 0o600
    lines = key.file.read_text().splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1] == f"# public key: {key.recipient}"
    assert key.recipient.startswith("age1")
    # a second key is appended, as `age-keygen >> FILE`; both stay usable
    second = gitmoor_secret("keygen", "-o", str(key.file), home=tmp_path)
    assert second.returncode == 0, second.stderr
    assert key.file.read_text().count("AGE-SECRET-KEY-1") == 2


@pytest.mark.parametrize(("fmt", "name", "plain", "secrets"), CASES, ids=[c[0] for c in CASES])
def test_gitmoor_encrypt_is_decrypted_by_real_sops(
    tmp_path: Path, fmt: str, name: str, plain: str, secrets: list[str]
) -> None:
    key = keygen(tmp_path, "author")
    src = tmp_path / name
    src.write_text(plain)
    r = gitmoor_secret("encrypt", str(src), "--age", key.recipient, home=tmp_path)
    assert r.returncode == 0, r.stderr
    encrypted = r.stdout
    assert all(s not in encrypted + r.stderr for s in secrets)
    if fmt == "yaml":  # a Secret: only data and stringData are encrypted
        doc = yaml.safe_load(encrypted)
        assert doc["metadata"]["name"] == "db-credentials"
        assert doc["sops"]["encrypted_regex"] == "^(data|stringData)$"
    out = sops_decrypt(encrypted, key, kind=fmt, home=tmp_path / "sops-home")
    assert out.returncode == 0, out.stderr
    assert same(fmt, out.stdout, plain)


@pytest.mark.parametrize(("fmt", "name", "plain", "secrets"), CASES, ids=[c[0] for c in CASES])
def test_real_sops_encrypt_is_decrypted_by_gitmoor(
    tmp_path: Path, fmt: str, name: str, plain: str, secrets: list[str]
) -> None:
    key = age_keygen(tmp_path / "keys")
    encrypted = sops_encrypt(plain, [key.recipient], kind=fmt, home=tmp_path / "sops-home")
    path = tmp_path / name
    path.write_text(encrypted)
    r = gitmoor_secret("decrypt", str(path), "--age-key-file", str(key.file), home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert same(fmt, r.stdout, plain)
    # the same through $SOPS_AGE_KEY_FILE, and through $SOPS_AGE_KEY
    via_file = gitmoor_secret(
        "decrypt", str(path), home=tmp_path, env={"SOPS_AGE_KEY_FILE": str(key.file)}
    )
    via_env = gitmoor_secret(
        "decrypt", str(path), home=tmp_path, env={"SOPS_AGE_KEY": key.identity}
    )
    assert via_file.stdout == via_env.stdout == r.stdout


def test_decrypt_with_another_key_or_a_tampered_value_fails_naming_the_file(
    tmp_path: Path,
) -> None:
    key, other = age_keygen(tmp_path / "k", "one"), age_keygen(tmp_path / "k", "two")
    path = tmp_path / "secret.yaml"
    path.write_text(sops_encrypt(SECRET, [key.recipient], kind="yaml", home=tmp_path / "h"))
    wrong = gitmoor_secret("decrypt", str(path), "--age-key-file", str(other.file), home=tmp_path)
    assert wrong.returncode == 2
    assert str(path) in wrong.stderr and key.recipient in wrong.stderr
    doc = yaml.safe_load(path.read_text())
    doc["stringData"]["port"] = doc["stringData"]["username"]  # ciphertext moved
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    tampered = gitmoor_secret("decrypt", str(path), "--age-key-file", str(key.file), home=tmp_path)
    assert tampered.returncode == 2
    assert "stringData/port" in tampered.stderr and "plaintext-user-name" not in tampered.stderr


def test_encrypt_honours_sops_yaml_and_refuses_an_encrypted_file(tmp_path: Path) -> None:
    key = keygen(tmp_path, "team")
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - path_regex: clusters/.*\\.json$\n"
        f"    age: {key.recipient}\n"
        "    encrypted_regex: ^token$\n"
    )
    target = tmp_path / "clusters" / "prod" / "config.json"
    target.parent.mkdir(parents=True)
    target.write_text(JSON_DOC)
    r = gitmoor_secret("encrypt", "-i", str(target), home=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(target.read_text())
    assert doc["token"].startswith("ENC[") and doc["retries"] == 3  # only what the rule says
    assert doc["sops"]["encrypted_regex"] == "^token$"
    out = sops_decrypt(target.read_text(), key, kind="json", home=tmp_path / "h")
    assert out.returncode == 0 and json.loads(out.stdout) == json.loads(JSON_DOC)
    again = gitmoor_secret("encrypt", "-i", str(target), home=tmp_path)
    assert again.returncode == 2 and "already encrypted" in again.stderr
    # a file no creation rule matches, without --age, is refused as sops refuses it
    other = tmp_path / "elsewhere.yaml"
    other.write_text(SECRET)
    refused = gitmoor_secret("encrypt", str(other), home=tmp_path)
    assert refused.returncode == 2 and "no creation rule" in refused.stderr


def test_rotate_rekeys_every_sops_file_below_the_directory(tmp_path: Path) -> None:
    old, new = age_keygen(tmp_path / "k", "old"), age_keygen(tmp_path / "k", "new")
    repo = tmp_path / "repo"
    (repo / "apps").mkdir(parents=True)
    (repo / "apps" / "secret.yaml").write_text(
        sops_encrypt(SECRET, [old.recipient], kind="yaml", home=tmp_path / "h")
    )
    (repo / "apps" / "app.env").write_text(
        sops_encrypt(DOTENV, [old.recipient], kind="dotenv", home=tmp_path / "h")
    )
    (repo / "apps" / "plain.yaml").write_text("kind: ConfigMap\n")
    before = {p.name: p.read_text() for p in (repo / "apps").iterdir()}
    # a recipient to remove that no file has is a typo: refused, nothing written
    typo = gitmoor_secret(
        "rotate",
        "--rm-age",
        new.recipient,
        "--age-key-file",
        str(old.file),
        home=tmp_path,
        cwd=repo,
    )
    assert typo.returncode == 2 and "none of the files" in typo.stderr
    assert {p.name: p.read_text() for p in (repo / "apps").iterdir()} == before
    r = gitmoor_secret(
        "rotate",
        "--add-age",
        new.recipient,
        "--rm-age",
        old.recipient,
        "--age-key-file",
        str(old.file),
        home=tmp_path,
        cwd=repo,
    )
    assert r.returncode == 0, r.stderr
    assert "secret.yaml" in r.stdout and "app.env" in r.stdout and "plain.yaml" not in r.stdout
    assert (repo / "apps" / "plain.yaml").read_text() == "kind: ConfigMap\n"
    for name, fmt, plain in (("secret.yaml", "yaml", SECRET), ("app.env", "dotenv", DOTENV)):
        text = (repo / "apps" / name).read_text()
        ok = sops_decrypt(text, new, kind=fmt, home=tmp_path / "h")
        assert ok.returncode == 0, ok.stderr
        assert same(fmt, ok.stdout, plain)
        refused = sops_decrypt(text, old, kind=fmt, home=tmp_path / "h")
        assert refused.returncode != 0


EDITOR = """\
import os, stat, sys
path = sys.argv[1]
with open(os.environ["RECORD"], "w") as f:
    f.write(f"{path}\\n{stat.S_IMODE(os.stat(path).st_mode):o}\\n")
    f.write(f"{stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode):o}\\n")
old, new = os.environ.get("REPLACE_OLD"), os.environ.get("REPLACE_NEW")
if old:
    text = open(path).read()
    open(path, "w").write(text.replace(old, new))
"""


def test_edit_leaves_an_unchanged_file_untouched_and_reencrypts_a_change(tmp_path: Path) -> None:
    key = age_keygen(tmp_path / "k")
    path = tmp_path / "secret.yaml"
    original = sops_encrypt(SECRET, [key.recipient], kind="yaml", home=tmp_path / "h")
    path.write_text(original)
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    record = tmp_path / "record.txt"
    env = {
        "SOPS_AGE_KEY_FILE": str(key.file),
        "EDITOR": f"{sys.executable} {script}",
        "RECORD": str(record),
    }
    before = path.stat()
    r = gitmoor_secret("edit", str(path), home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert path.read_text() == original
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_ino == before.st_ino
    temp, file_mode, dir_mode = record.read_text().splitlines()
    assert (file_mode, dir_mode) == ("600", "700")
    assert not Path(temp).exists() and not Path(temp).parent.exists()

    changed = {**env, "REPLACE_OLD": "plaintext-user-name", "REPLACE_NEW": "edited-user-name"}
    r = gitmoor_secret("edit", str(path), home=tmp_path, env=changed)
    assert r.returncode == 0, r.stderr
    edited = path.read_text()
    assert "edited-user-name" not in edited
    old_doc, new_doc = yaml.safe_load(original), yaml.safe_load(edited)
    assert new_doc["sops"]["age"] == old_doc["sops"]["age"]  # same data key, same recipients
    assert new_doc["data"]["password"] == old_doc["data"]["password"]  # unchanged value kept
    out = sops_decrypt(edited, key, kind="yaml", home=tmp_path / "h")
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["stringData"]["username"] == "edited-user-name"
    assert not Path(record.read_text().splitlines()[0]).exists()


async def test_install_key_stores_the_key_in_the_cluster_secret(
    tmp_path: Path, kube: KubeClient, namespace: str, gitmoor: Gitmoor
) -> None:
    key = keygen(tmp_path, "cluster")
    r = gitmoor(
        "secret", "install-key", "sops-age", "--age-key-file", str(key.file), "-n", namespace
    )
    assert r.returncode == 0, r.stderr
    assert key.identity not in r.stdout + r.stderr and key.recipient in r.stdout
    secret = await kube.get(ObjectRef("", "v1", "Secret", namespace, "sops-age"))
    assert secret is not None
    assert secret["metadata"]["labels"]["gitmoor.io/secret-type"] == "sops-age"
    stored = base64.b64decode(secret["data"]["age.agekey"]).decode()
    assert key.identity in stored.splitlines()
    # a second key under another entry sits beside the first (rotation)
    other = keygen(tmp_path, "next")
    r = gitmoor(
        "secret",
        "install-key",
        "sops-age",
        "--age-key-file",
        str(other.file),
        "--entry",
        "next.agekey",
        "-n",
        namespace,
    )
    assert r.returncode == 0, r.stderr
    secret = await kube.get(ObjectRef("", "v1", "Secret", namespace, "sops-age"))
    assert secret is not None
    assert set(secret["data"]) == {"age.agekey", "next.agekey"}


TRICKY = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: typed
base: &base
  octal: 0o17
  legacy_octal: 017
merged:
  <<: *base
  hex: 0x1F
values:
  word_yes: yes
  bool: true
  y: n
  date: 2001-12-14
  stamp: 2001-12-14T21:59:43.10-05:00
  float: 1e3
  under: 1_000
  inf: -.inf
  tilde: ~
  unicode: "h\\u00e9llo \\u2713"
  multi: |
    first line
    second line
  quoted_number: "5"
  nested: [[1, 2], {x: [true, false, null]}]
"""


def test_yaml_values_are_typed_as_sops_types_them(tmp_path: Path) -> None:
    key = age_keygen(tmp_path / "k")
    # the real sops's own round trip is the reference
    by_sops = sops_encrypt(
        TRICKY, [key.recipient], kind="yaml", home=tmp_path / "h", encrypted_regex=None
    )
    reference = sops_decrypt(by_sops, key, kind="yaml", home=tmp_path / "h")
    assert reference.returncode == 0, reference.stderr
    path = tmp_path / "typed.yaml"
    path.write_text(by_sops)
    ours = gitmoor_secret("decrypt", str(path), "--age-key-file", str(key.file), home=tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert yaml.safe_load(ours.stdout) == yaml.safe_load(reference.stdout)
    # and what gitmoor encrypts, sops decrypts to the same document (MAC included)
    src = tmp_path / "plain.yaml"
    src.write_text(TRICKY)
    enc = gitmoor_secret("encrypt", str(src), "--age", key.recipient, home=tmp_path)
    assert enc.returncode == 0, enc.stderr
    back = sops_decrypt(enc.stdout, key, kind="yaml", home=tmp_path / "h")
    assert back.returncode == 0, back.stderr
    assert yaml.safe_load(back.stdout) == yaml.safe_load(reference.stdout)


RULED = """\
name: service
password: pass-value-1
api_secret: suffix-value-2
note_plain: readable
nested:
  password: pass-value-3
  port: 8080
"""

RULES = [
    ["--encrypted-regex", "^password$"],
    ["--unencrypted-regex", "^(name|port)$"],
    ["--encrypted-suffix", "_secret"],
    ["--unencrypted-suffix", "_plain"],
    ["--encrypted-regex", "^password$", "--mac-only-encrypted"],
]


def encrypted_paths(doc: object, path: str = "") -> set[str]:
    if isinstance(doc, dict):
        return {p for k, v in doc.items() if k != "sops" for p in encrypted_paths(v, f"{path}/{k}")}
    return {path} if isinstance(doc, str) and doc.startswith("ENC[") else set()


@pytest.mark.parametrize("flags", RULES, ids=[" ".join(r) for r in RULES])
def test_encryption_rules_and_recipients_match_real_sops(tmp_path: Path, flags: list[str]) -> None:
    one, two = age_keygen(tmp_path / "k", "one"), age_keygen(tmp_path / "k", "two")
    src = tmp_path / "values.yaml"
    src.write_text(RULED)
    recipients = f"{one.recipient},{two.recipient}"
    home = tmp_path / "h"
    home.mkdir()
    by_sops = subprocess.run(
        [tool("sops"), "--encrypt", "--age", recipients, *flags, str(src)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
    ).stdout
    ours = gitmoor_secret("encrypt", str(src), "--age", recipients, *flags, home=tmp_path)
    assert ours.returncode == 0, ours.stderr
    # the same values are encrypted, under the same metadata rule
    sops_doc, our_doc = yaml.safe_load(by_sops), yaml.safe_load(ours.stdout)
    assert encrypted_paths(our_doc) == encrypted_paths(sops_doc)
    rule_keys = {"encrypted_regex", "unencrypted_regex", "encrypted_suffix", "unencrypted_suffix"}
    rule_keys.add("mac_only_encrypted")
    assert {k: v for k, v in our_doc["sops"].items() if k in rule_keys} == {
        k: v for k, v in sops_doc["sops"].items() if k in rule_keys
    }
    # each recipient's key opens the other tool's file
    for key in (one, two):
        out = sops_decrypt(ours.stdout, key, kind="yaml", home=home)
        assert out.returncode == 0, out.stderr
        assert yaml.safe_load(out.stdout) == yaml.safe_load(RULED)
        path = tmp_path / "by-sops.yaml"
        path.write_text(by_sops)
        back = gitmoor_secret("decrypt", str(path), "--age-key-file", str(key.file), home=tmp_path)
        assert back.returncode == 0, back.stderr
        assert yaml.safe_load(back.stdout) == yaml.safe_load(RULED)
