"""SOPS files decrypted by the real sops at render time, in a private copy.

Files are encrypted here by the real ``sops`` for keys made by the real
``age-keygen``; the render then runs the real ``sops`` and ``kubectl kustomize``.
"""

from __future__ import annotations

import base64
import os
import re
from typing import TYPE_CHECKING

import pytest

from gitmoor.model import UserInputError
from gitmoor.render import DecryptionKeys, RenderCache, RenderOptions, render_app
from gitmoor.settings.decryption import keys_from_secret
from support.sops import AgeKey, age_keygen, sops_encrypt

if TYPE_CHECKING:
    from pathlib import Path

PLAIN = "pl41n-render-7c1d"
SECRET = f"""apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: {PLAIN}
"""


@pytest.fixture
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Every temporary directory of the render lands here, so the test can see
    # what is left behind.
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    return tmpdir


@pytest.fixture
def key(tmp_path: Path) -> AgeKey:
    return age_keygen(tmp_path / "keys", "app")


def _keys(*keys: AgeKey) -> RenderOptions:
    return RenderOptions(
        decryption=DecryptionKeys(secret="apps/sops-age", age=tuple(k.identity for k in keys))
    )


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _enc(text: str, key: AgeKey, tmp_path: Path, kind: str = "yaml") -> str:
    return sops_encrypt(text, [key.recipient], kind=kind, home=tmp_path / "sops-home")


def _secret_values(obj: dict[str, object]) -> dict[str, str]:
    out = {k: str(v) for k, v in (obj.get("stringData") or {}).items()}  # type: ignore[attr-defined]
    for k, v in (obj.get("data") or {}).items():  # type: ignore[attr-defined]
        out[k] = base64.b64decode(v).decode()
    return out


def test_an_encrypted_secret_renders_as_plaintext_and_nothing_is_left_behind(
    tmp_path: Path, tmp_home: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    encrypted = _enc(SECRET, key, tmp_path)
    _write(
        root,
        {
            "app/secret.yaml": encrypted,
            "app/cm.yaml": "kind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\n",
        },
    )
    result = render_app(root, "app", "rev", _keys(key))
    secret = next(m.obj for m in result.manifests if m.ref.kind == "Secret")
    assert _secret_values(secret) == {"password": PLAIN}
    assert "sops" not in secret
    # The checkout still holds only ciphertext, and no private copy outlives the render.
    assert (root / "app/secret.yaml").read_text() == encrypted
    assert PLAIN not in encrypted
    assert list(tmp_home.iterdir()) == []


def test_a_secret_generator_fed_from_an_encrypted_env_file(
    tmp_path: Path, tmp_home: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    _write(
        root,
        {
            "app/kustomization.yaml": (
                "secretGenerator:\n- name: gen\n  envs: [creds.env]\n"
                "generatorOptions: {disableNameSuffixHash: true}\n"
            ),
            "app/creds.env": _enc(f"TOKEN={PLAIN}\nUSER=admin\n", key, tmp_path, "dotenv"),
        },
    )
    result = render_app(root, "app", "rev", _keys(key))
    (secret,) = (m.obj for m in result.manifests)
    assert _secret_values(secret) == {"TOKEN": PLAIN, "USER": "admin"}
    assert list(tmp_home.iterdir()) == []


def test_a_tampered_file_fails_its_mac_and_names_the_file(
    tmp_path: Path, tmp_home: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    tampered = _enc(SECRET, key, tmp_path).replace("name: creds", "name: creds2")
    _write(root, {"app/secret.yaml": tampered})
    with pytest.raises(UserInputError, match=r"^app/secret\.yaml: its MAC does not match") as e:
        render_app(root, "app", "rev", _keys(key))
    assert e.value.concerns == "app/secret.yaml"
    assert list(tmp_home.iterdir()) == []


def test_an_altered_ciphertext_does_not_decrypt(tmp_path: Path, key: AgeKey) -> None:
    root = tmp_path / "repo"
    encrypted = _enc(SECRET, key, tmp_path)
    altered = re.sub(
        r"password: ENC\[AES256_GCM,data:(.)",
        lambda m: "password: ENC[AES256_GCM,data:" + ("A" if m.group(1) != "A" else "B"),
        encrypted,
    )
    assert altered != encrypted
    _write(root, {"app/secret.yaml": altered})
    with pytest.raises(
        UserInputError, match=r"app/secret\.yaml: an encrypted value does not decrypt"
    ):
        render_app(root, "app", "rev", _keys(key))


def test_a_key_for_another_recipient_names_the_file_and_its_recipient(
    tmp_path: Path, key: AgeKey
) -> None:
    other = age_keygen(tmp_path / "keys", "other")
    root = tmp_path / "repo"
    _write(root, {"app/secret.yaml": _enc(SECRET, key, tmp_path)})
    with pytest.raises(UserInputError) as e:
        render_app(root, "app", "rev", _keys(other))
    assert e.value.message == (
        "app/secret.yaml: none of the age keys in Secret apps/sops-age can decrypt it; "
        f"it is encrypted for {key.recipient}"
    )


def test_no_key_says_why_and_names_the_file(tmp_path: Path, key: AgeKey) -> None:
    root = tmp_path / "repo"
    _write(root, {"app/secret.yaml": _enc(SECRET, key, tmp_path)})
    missing = DecryptionKeys(
        secret="apps/sops-age", missing="the decryption Secret apps/sops-age does not exist"
    )
    with pytest.raises(UserInputError) as e:
        render_app(root, "app", "rev", RenderOptions(decryption=missing))
    assert e.value.message == (
        "app/secret.yaml is encrypted with SOPS, but the decryption Secret apps/sops-age "
        "does not exist"
    )


def test_a_secret_without_usable_keys_names_the_unsupported_key_and_the_file(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    _write(root, {"app/secret.yaml": _enc(SECRET, key, tmp_path)})
    pgp_and_plugin = keys_from_secret(
        {
            "data": {
                "team.asc": base64.b64encode(b"-----BEGIN PGP PRIVATE KEY BLOCK-----").decode(),
                "x.agekey": base64.b64encode(b"AGE-PLUGIN-YUBIKEY-1QQQQ").decode(),
            }
        },
        "apps/sops-age",
    )
    with pytest.raises(UserInputError) as e:
        render_app(root, "app", "rev", RenderOptions(decryption=pgp_and_plugin))
    assert e.value.message == (
        "app/secret.yaml is encrypted with SOPS, but the Secret apps/sops-age holds no age "
        "private key (an entry NAME.agekey); unsupported key type: team.asc (PGP), "
        "x.agekey (not an age X25519 key)"
    )


def test_a_file_for_another_key_that_the_app_does_not_render_holds_nothing_up(
    tmp_path: Path, key: AgeKey
) -> None:
    # A monorepo: another team's file, encrypted for their key, beside this app.
    theirs = age_keygen(tmp_path / "keys", "theirs")
    root = tmp_path / "repo"
    _write(
        root,
        {
            "app/secret.yaml": _enc(SECRET, key, tmp_path),
            "team-b/secret.yaml": _enc(SECRET, theirs, tmp_path),
            "docs/example.env": _enc("A=1\n", theirs, tmp_path, "dotenv"),
        },
    )
    result = render_app(root, "app", "rev", _keys(key))
    assert _secret_values(result.manifests[0].obj) == {"password": PLAIN}
    # The other team's app, rendered with this key, is refused naming its own file.
    with pytest.raises(UserInputError, match=r"^team-b/secret\.yaml: none of the age keys"):
        render_app(root, "team-b", "rev", _keys(key))


def test_a_generator_reading_a_file_that_does_not_decrypt_names_that_file(
    tmp_path: Path, key: AgeKey
) -> None:
    theirs = age_keygen(tmp_path / "keys", "theirs")
    root = tmp_path / "repo"
    _write(
        root,
        {
            "app/kustomization.yaml": "resources: [../shared]\n",
            "shared/kustomization.yaml": "configMapGenerator:\n- name: gen\n  envs: [creds.env]\n",
            "shared/creds.env": _enc(f"TOKEN={PLAIN}\n", theirs, tmp_path, "dotenv"),
            "shared/other.env": _enc("X=1\n", theirs, tmp_path, "dotenv"),
        },
    )
    with pytest.raises(UserInputError, match=r"^shared/creds\.env: none of the age keys"):
        render_app(root, "app", "rev", _keys(key))


def test_values_encrypted_in_git_travel_with_the_render_whatever_their_kind(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    _write(
        root,
        {
            "app/kustomization.yaml": "configMapGenerator:\n- name: gen\n  envs: [app.env]\n",
            "app/app.env": _enc(f"TOKEN={PLAIN}\n", key, tmp_path, "dotenv"),
        },
    )
    result = render_app(root, "app", "rev", _keys(key))
    (cm,) = (m.obj for m in result.manifests)
    assert cm["kind"] == "ConfigMap" and cm["data"] == {"TOKEN": PLAIN}
    assert PLAIN in result.secret_values


def test_without_decryption_an_encrypted_file_is_refused_not_applied(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    _write(root, {"app/secret.yaml": _enc(SECRET, key, tmp_path)})
    with pytest.raises(
        UserInputError,
        match=r"secret\.yaml.* is encrypted with SOPS, but the app names no decryption",
    ):
        render_app(root, "app", "rev")


def test_require_encrypted_secrets_refuses_a_plaintext_secret_naming_its_file(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    _write(
        root,
        {
            "app/enc.yaml": _enc(SECRET, key, tmp_path),
            "app/plain.yaml": SECRET.replace("creds", "plain"),
        },
    )
    options = RenderOptions(decryption=_keys(key).decryption, require_encrypted_secrets=True)
    with pytest.raises(UserInputError, match=r"^plain\.yaml.* holds a plaintext Secret \(plain\)"):
        render_app(root, "app", "rev", options)
    os.remove(root / "app/plain.yaml")
    assert len(render_app(root, "app", "rev", options).manifests) == 1


def test_require_encrypted_secrets_tells_generated_secrets_apart(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    kustomization = (
        "secretGenerator:\n- name: gen\n  envs: [creds.env]\n"
        "generatorOptions: {disableNameSuffixHash: true}\n"
    )
    _write(
        root,
        {
            "app/kustomization.yaml": kustomization,
            "app/creds.env": _enc(f"TOKEN={PLAIN}\n", key, tmp_path, "dotenv"),
        },
    )
    options = RenderOptions(decryption=_keys(key).decryption, require_encrypted_secrets=True)
    assert len(render_app(root, "app", "rev", options).manifests) == 1
    with_literal = kustomization.replace(
        "generatorOptions", "- name: lit\n  literals: [A=clear]\ngeneratorOptions"
    )
    _write(root, {"app/kustomization.yaml": with_literal})
    with pytest.raises(UserInputError, match=r"holds a plaintext Secret \(lit"):
        render_app(root, "app", "rev", options)


def test_the_render_cache_renders_again_when_the_keys_change(tmp_path: Path, key: AgeKey) -> None:
    root = tmp_path / "repo"
    _write(root, {"app/secret.yaml": _enc(SECRET, key, tmp_path)})
    cache = RenderCache()
    missing = RenderOptions(decryption=DecryptionKeys(secret="apps/k", missing="no Secret"))
    with pytest.raises(UserInputError):
        cache.get_or_render(root, "app", "rev", missing)
    result = cache.get_or_render(root, "app", "rev", _keys(key))
    assert _secret_values(result.manifests[0].obj) == {"password": PLAIN}


def test_require_encrypted_secrets_refuses_values_left_readable_in_an_encrypted_file(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    both = SECRET + "  user: in-the-clear\n"
    partly = sops_encrypt(
        both, [key.recipient], kind="yaml", home=tmp_path / "h", encrypted_regex="^password$"
    )
    assert "in-the-clear" in partly
    _write(root, {"app/secret.yaml": partly})
    options = RenderOptions(decryption=_keys(key).decryption, require_encrypted_secrets=True)
    with pytest.raises(UserInputError, match=r"holds a plaintext Secret \(creds\)"):
        render_app(root, "app", "rev", options)


def test_require_encrypted_secrets_accepts_a_chart_secret_fed_from_encrypted_values(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    _write(
        root,
        {
            "chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
            "chart/templates/secret.yaml": (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n"
                "stringData:\n  password: {{ .Values.password }}\n"
            ),
            "chart/secrets.yaml": sops_encrypt(
                f"password: {PLAIN}\n",
                [key.recipient],
                kind="yaml",
                home=tmp_path / "h",
                encrypted_regex=None,
            ),
        },
    )
    options = RenderOptions(
        decryption=_keys(key).decryption,
        require_encrypted_secrets=True,
        value_files=("secrets.yaml",),
    )
    (secret,) = (m.obj for m in render_app(root, "chart", "rev", options).manifests)
    assert _secret_values(secret) == {"password": PLAIN}


def test_a_render_error_quoting_a_decrypted_value_does_not_show_it(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    # A chart whose template fails on purpose with the decrypted value in its message.
    _write(
        root,
        {
            "chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
            "chart/templates/x.yaml": '{{ fail (printf "bad password %s" .Values.password) }}\n',
            "chart/secrets.yaml": sops_encrypt(
                f"password: {PLAIN}\n",
                [key.recipient],
                kind="yaml",
                home=tmp_path / "h",
                encrypted_regex=None,
            ),
        },
    )
    options = RenderOptions(decryption=_keys(key).decryption, value_files=("secrets.yaml",))
    with pytest.raises(UserInputError) as e:
        render_app(root, "chart", "rev", options)
    assert "bad password <redacted>" in e.value.message
    assert PLAIN not in e.value.message


def test_the_app_s_own_file_is_named_when_a_copy_elsewhere_holds_the_same_mac(
    tmp_path: Path, key: AgeKey
) -> None:
    # A kustomize app: its objects carry no file, so the failed file is found by
    # its ciphertext, and an identical copy elsewhere must not be named instead.
    root = tmp_path / "repo"
    encrypted = _enc(SECRET, key, tmp_path)
    _write(
        root,
        {
            "app/kustomization.yaml": "resources: [secret.yaml]\n",
            "app/secret.yaml": encrypted,
            "_archive/old/secret.yaml": encrypted,  # walked before app/
            ".cache/secret.yaml": "not: scanned\n" + encrypted,
        },
    )
    missing = DecryptionKeys(secret="apps/k", missing="the decryption Secret apps/k does not exist")
    with pytest.raises(UserInputError, match=r"^app/secret\.yaml is encrypted with SOPS, but"):
        render_app(root, "app", "rev", RenderOptions(decryption=missing))


def test_keep_encrypted_renders_sops_files_as_they_are_for_checks_without_keys(
    tmp_path: Path, key: AgeKey
) -> None:
    root = tmp_path / "repo"
    _write(root, {"app/secret.yaml": _enc(SECRET, key, tmp_path)})
    (secret,) = render_app(root, "app", "rev", RenderOptions(keep_encrypted=True)).manifests
    assert secret.obj["stringData"]["password"].startswith("ENC[AES256_GCM,")
    assert "sops" in secret.obj
