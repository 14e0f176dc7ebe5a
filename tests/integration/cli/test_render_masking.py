"""`gitmoor render PATH` with SOPS files made by the real `sops`: decrypted with
local age keys (--age-key-file, or SOPS_AGE_KEY_FILE as sops reads it), Secret
values masked unless --show-secrets, fields a --redact-rules file names masked
too. No cluster is needed: the command runs as a user runs it, in a process."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import yaml

from support.apps import configmap, dump
from support.sops import age_keygen, sops_encrypt

if TYPE_CHECKING:
    from pathlib import Path

    from support.sops import AgeKey

MASK = re.compile(r"<redacted:[0-9a-f]{8}>")
PASSWORD = "render-pw-61c0-never-printed"
TOKEN = "render-token-0d9e-never-printed"


def _app(tmp_path: Path) -> tuple[Path, AgeKey]:
    """An app directory with an encrypted Secret and a ConfigMap holding a token."""
    key = age_keygen(tmp_path / "keys")
    app = tmp_path / "repo" / "app"
    app.mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()  # the repository root, as `git init` marks it
    plain = dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "stringData": {"password": PASSWORD, "user": "app"},
        }
    )
    enc = sops_encrypt(plain, [key.recipient], kind="yaml", home=tmp_path / "sops-home")
    (app / "secret.yaml").write_text(enc)
    (app / "cm.yaml").write_text(dump(configmap("settings", {"api-token": TOKEN, "mode": "on"})))
    return app, key


def _render(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_AGE_")}
    return subprocess.run(
        [sys.executable, "-m", "gitmoor.cli.main", "render", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
    )


def _no_plaintext(done: subprocess.CompletedProcess[str], *values: str) -> None:
    for value in values:
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in done.stdout and form not in done.stderr, (done.args, value)


def _objects(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    return {d["kind"]: d for d in yaml.safe_load_all(done.stdout) if d}


def test_render_decrypts_with_a_key_file_and_masks_secret_values(tmp_path: Path) -> None:
    app, key = _app(tmp_path)
    # No keys.txt of the developer's: sops (and gitmoor render) would find it there.
    home = {"XDG_CONFIG_HOME": str(tmp_path / "config")}

    refused = _render(str(app), env=home)
    assert refused.returncode == 2
    assert "app/secret.yaml" in refused.stderr and "--age-key-file" in refused.stderr

    masked = _render(str(app), "--age-key-file", str(key.file), env=home)
    assert masked.returncode == 0, masked.stderr
    secret = _objects(masked)["Secret"]
    data, string_data = secret.get("data") or {}, secret.get("stringData") or {}
    assert isinstance(data, dict) and isinstance(string_data, dict)
    values = {**data, **string_data}
    assert set(values) == {"password", "user"}
    assert all(MASK.fullmatch(str(v)) for v in values.values()), values
    assert "sops" not in secret, "the sops block is gone: the file was decrypted"
    _no_plaintext(masked, PASSWORD)
    # Without a rule, a ConfigMap is shown as it is.
    assert TOKEN in masked.stdout

    # SOPS_AGE_KEY_FILE as sops reads it; --show-secrets prints the values.
    shown = _render(str(app), "--show-secrets", env={**home, "SOPS_AGE_KEY_FILE": str(key.file)})
    assert shown.returncode == 0, shown.stderr
    assert PASSWORD in shown.stdout
    assert not MASK.search(shown.stdout)


def test_render_masks_the_fields_of_redaction_rules(tmp_path: Path) -> None:
    app, key = _app(tmp_path)
    rules = tmp_path / "app.yaml"
    rules.write_text(
        dump(
            {
                "apiVersion": "gitmoor.io/v1alpha1",
                "kind": "Application",
                "metadata": {"name": "shop"},
                "spec": {"redactions": [{"kind": "ConfigMap", "fields": ["data.*token*"]}]},
            }
        )
    )

    done = _render(
        str(app),
        "--redact-rules",
        str(rules),
        env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "SOPS_AGE_KEY": key.identity},
    )

    assert done.returncode == 0, done.stderr
    data = _objects(done)["ConfigMap"]["data"]
    assert isinstance(data, dict)
    assert MASK.fullmatch(data["api-token"]) and data["mode"] == "on"
    _no_plaintext(done, PASSWORD, TOKEN)

    bad = tmp_path / "bad.yaml"
    bad.write_text("- kind: ConfigMap\n")
    refused = _render(str(app), "--redact-rules", str(bad), env={"SOPS_AGE_KEY": key.identity})
    assert refused.returncode == 2 and "fields" in refused.stderr
