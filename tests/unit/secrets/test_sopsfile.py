"""SOPS files read and written in Python: round trips per format, the MAC, wrong
keys, rotation and `.sops.yaml` creation rules (compatibility with the real
``sops`` binary is shown in tests/integration/cli/test_secret_cli.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import yaml

from gitmoor.model import UserInputError
from gitmoor.secrets import agekeys, sopsconfig
from gitmoor.secrets.sopsfile import (
    SECRET_ENCRYPTED_REGEX,
    EncryptionRules,
    MacMismatch,
    NoMatchingKey,
    NotSopsFile,
    SopsError,
    TamperedValue,
    decrypt,
    decrypt_bytes,
    encrypt,
    is_encrypted,
    open_document,
    read_metadata,
    rotate,
)
from gitmoor.secrets.sopsstores import format_float

if TYPE_CHECKING:
    from pathlib import Path

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
type: Opaque
data:
  password: c2VjcmV0LXZhbHVlLTE=
stringData:
  user: admin-user-name
  port: 5432
  ratio: 1.5
  enabled: true
  empty: ""
  nothing: null
  certs: |
    line one of the certificate
    line two of the certificate
"""

FLUX = EncryptionRules(encrypted_regex=SECRET_ENCRYPTED_REGEX)
PLAINTEXTS = ("c2VjcmV0LXZhbHVlLTE=", "admin-user-name", "line one of the certificate")


@pytest.fixture(scope="module")
def alice() -> agekeys.KeyPair:
    return agekeys.generate()


@pytest.fixture(scope="module")
def bob() -> agekeys.KeyPair:
    return agekeys.generate()


def test_yaml_secret_round_trip_keeps_kind_and_name_readable(alice: agekeys.KeyPair) -> None:
    enc = encrypt(SECRET, "yaml", [alice.recipient], FLUX)
    doc = yaml.safe_load(enc)
    assert doc["kind"] == "Secret"
    assert doc["metadata"] == {"name": "db", "namespace": "apps"}
    assert doc["data"]["password"].startswith("ENC[AES256_GCM,data:")
    assert doc["stringData"]["port"].endswith(",type:int]")
    assert doc["stringData"]["empty"] == ""  # sops leaves empty strings empty
    assert doc["stringData"]["nothing"] is None
    assert doc["sops"]["encrypted_regex"] == SECRET_ENCRYPTED_REGEX
    assert [a["recipient"] for a in doc["sops"]["age"]] == [alice.recipient]
    assert doc["sops"]["age"][0]["enc"].startswith("-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert all(p not in enc for p in PLAINTEXTS)
    assert yaml.safe_load(decrypt(enc, "yaml", [alice.identity])) == yaml.safe_load(SECRET)


def test_without_rules_every_value_but_unencrypted_suffix_is_encrypted(
    alice: agekeys.KeyPair,
) -> None:
    plain = "name: visible-or-not\nnote_unencrypted: stays readable\nnested:\n  a: [x, 2]\n"
    enc = encrypt(plain, "yaml", [alice.recipient])
    doc = yaml.safe_load(enc)
    assert doc["name"].startswith("ENC[")
    assert doc["note_unencrypted"] == "stays readable"
    assert all(v.startswith("ENC[") for v in doc["nested"]["a"])
    assert doc["sops"]["unencrypted_suffix"] == "_unencrypted"
    assert yaml.safe_load(decrypt(enc, "yaml", [alice.identity])) == yaml.safe_load(plain)


def test_multi_document_yaml_round_trip(alice: agekeys.KeyPair) -> None:
    plain = SECRET + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: two\ndata:\n  k: dg==\n"
    enc = encrypt(plain, "yaml", [alice.recipient], FLUX)
    docs = list(yaml.safe_load_all(enc))
    assert [d["metadata"]["name"] for d in docs] == ["db", "two"]
    assert all("sops" in d for d in docs)  # sops writes its block into every document
    back = list(yaml.safe_load_all(decrypt(enc, "yaml", [alice.identity])))
    assert back == list(yaml.safe_load_all(plain))


def test_plain_scalars_are_typed_as_sops_yaml_types_them(alice: agekeys.KeyPair) -> None:
    # yaml.v3, sops's reader: YAML 1.2 booleans only, Go integer syntax, and
    # timestamps as Go times (a date gains its midnight, as `sops --decrypt` shows it)
    plain = "data:\n  a: yes\n  b: 2001-12-14\n  n: off\n  o: 0o17\n  l: 017\n  q: '5'\n"
    enc = encrypt(plain, "yaml", [alice.recipient])
    types = {k: v.rsplit("type:", 1)[1] for k, v in yaml.safe_load(enc)["data"].items()}
    assert types == {"a": "str]", "b": "time]", "n": "str]", "o": "int]", "l": "int]", "q": "str]"}
    # BaseLoader: every scalar a string, so a "yes" turned into true would show
    back = yaml.load(decrypt(enc, "yaml", [alice.identity]), Loader=yaml.BaseLoader)
    assert back == {
        "data": {
            "a": "yes",
            "b": "2001-12-14T00:00:00Z",
            "n": "off",
            "o": "15",
            "l": "15",
            "q": "5",
        }
    }


def test_dotenv_round_trip_with_comment_and_newline(alice: agekeys.KeyPair) -> None:
    plain = "USER=admin\n# a comment\nPASSWORD=p=a=s=s\nMULTI=one\\ntwo\n"
    enc = encrypt(plain, "dotenv", [alice.recipient])
    lines = enc.splitlines()
    assert lines[0].startswith("USER=ENC[AES256_GCM,")
    assert lines[1].startswith("#ENC[AES256_GCM,") and lines[1].endswith("type:comment]")
    assert any(ln.startswith("sops_age__list_0__map_enc=-----BEGIN AGE") for ln in lines)
    assert "sops_mac=ENC[" in enc and "admin" not in enc
    assert decrypt(enc, "dotenv", [alice.identity]) == plain


def test_json_round_trip_keeps_types(alice: agekeys.KeyPair) -> None:
    plain = {"s": "text", "i": 7, "f": 0.25, "b": False, "l": [1, "x"], "o": {"n": None}}
    enc = encrypt(json.dumps(plain), "json", [alice.recipient])
    assert json.loads(enc)["i"].endswith("type:int]")
    assert json.loads(decrypt(enc, "json", [alice.identity])) == plain


def test_binary_round_trip_any_bytes(alice: agekeys.KeyPair) -> None:
    plain = b"\x00\xff binary \xfe\n"
    enc = encrypt(plain, "binary", [alice.recipient])
    assert set(json.loads(enc)) == {"data", "sops"}
    assert decrypt_bytes(enc, "binary", [alice.identity]) == plain


def test_several_recipients_each_opens_the_file(
    alice: agekeys.KeyPair, bob: agekeys.KeyPair
) -> None:
    enc = encrypt(SECRET, "yaml", [alice.recipient, bob.recipient], FLUX)
    assert decrypt(enc, "yaml", [bob.identity]) == decrypt(enc, "yaml", [alice.identity])


def test_wrong_key_names_the_file_and_the_recipients(
    alice: agekeys.KeyPair, bob: agekeys.KeyPair
) -> None:
    enc = encrypt(SECRET, "yaml", [alice.recipient], FLUX)
    with pytest.raises(NoMatchingKey) as e:
        decrypt(enc, "yaml", [bob.identity], where="apps/secret.yaml")
    assert "apps/secret.yaml" in str(e.value) and alice.recipient in str(e.value)
    assert bob.identity not in str(e.value)


def test_tampered_value_is_refused(alice: agekeys.KeyPair) -> None:
    enc = encrypt(SECRET, "yaml", [alice.recipient], FLUX)
    doc = yaml.safe_load(enc)
    # Moving a ciphertext to another key fails its authentication (the path is its AAD).
    doc["stringData"]["user"] = doc["data"]["password"]
    with pytest.raises(TamperedValue) as e:
        decrypt(yaml.safe_dump(doc), "yaml", [alice.identity], where="s.yaml")
    assert "stringData/user" in str(e.value) and "s.yaml" in str(e.value)
    assert all(p not in str(e.value) for p in PLAINTEXTS)


def test_changed_plain_value_or_removed_value_is_a_mac_mismatch(alice: agekeys.KeyPair) -> None:
    enc = encrypt("a: 1\nkeep_unencrypted: x\nb: two\n", "yaml", [alice.recipient])
    changed = enc.replace("keep_unencrypted: x", "keep_unencrypted: y")
    with pytest.raises(MacMismatch):
        decrypt(changed, "yaml", [alice.identity])
    doc = yaml.safe_load(enc)
    del doc["b"]
    with pytest.raises(MacMismatch):
        decrypt(yaml.safe_dump(doc, sort_keys=False), "yaml", [alice.identity])


def test_a_plaintext_file_is_not_a_sops_file(alice: agekeys.KeyPair) -> None:
    with pytest.raises(NotSopsFile):
        decrypt(SECRET, "yaml", [alice.identity], where="plain.yaml")
    assert not is_encrypted(SECRET, "yaml")
    assert is_encrypted(encrypt(SECRET, "yaml", [alice.recipient]), "yaml")


def test_encrypting_an_encrypted_file_is_refused(alice: agekeys.KeyPair) -> None:
    enc = encrypt(SECRET, "yaml", [alice.recipient], FLUX)
    with pytest.raises(SopsError, match="reserved"):
        encrypt(enc, "yaml", [alice.recipient], FLUX)


def test_rotate_changes_the_data_key_and_drops_the_removed_recipient(
    alice: agekeys.KeyPair, bob: agekeys.KeyPair
) -> None:
    enc = encrypt(SECRET, "yaml", [alice.recipient], FLUX)
    rotated = rotate(enc, "yaml", [alice.identity], add=[bob.recipient], remove=[alice.recipient])
    before = open_document(enc, "yaml", [alice.identity])
    after = open_document(rotated, "yaml", [bob.identity])
    assert after.data_key != before.data_key
    assert after.metadata.recipients == (bob.recipient,)
    assert after.metadata.rules == before.metadata.rules
    assert after.plaintext() == before.plaintext()
    with pytest.raises(NoMatchingKey):
        decrypt(rotated, "yaml", [alice.identity])


def test_edit_keeps_the_data_key_and_unchanged_ciphertexts(alice: agekeys.KeyPair) -> None:
    enc = encrypt(SECRET, "yaml", [alice.recipient], FLUX)
    doc = open_document(enc, "yaml", [alice.identity])
    edited = doc.plaintext().replace(b"admin-user-name", b"another-user")
    again = doc.encrypt_plaintext(edited)
    old, new = yaml.safe_load(enc), yaml.safe_load(again)
    assert new["data"]["password"] == old["data"]["password"]
    assert new["stringData"]["user"] != old["stringData"]["user"]
    assert new["sops"]["age"] == old["sops"]["age"]
    reopened = open_document(again, "yaml", [alice.identity])
    assert reopened.data_key == doc.data_key
    assert yaml.safe_load(reopened.plaintext())["stringData"]["user"] == "another-user"


def test_mac_only_encrypted_round_trip(alice: agekeys.KeyPair) -> None:
    rules = EncryptionRules(encrypted_regex=SECRET_ENCRYPTED_REGEX, mac_only_encrypted=True)
    enc = encrypt(SECRET, "yaml", [alice.recipient], rules)
    assert yaml.safe_load(enc)["sops"]["mac_only_encrypted"] is True
    # the MAC covers only encrypted values: a readable field may change
    renamed = enc.replace("name: db", "name: db2")
    assert "db2" in decrypt(renamed, "yaml", [alice.identity])


def test_go_float_format() -> None:
    assert [format_float(v) for v in (1.0, 1.5, 0.1, 1e20, -0.0)] == [
        "1",
        "1.5",
        "0.1",
        "100000000000000000000",
        "-0",
    ]


def test_two_crypt_rules_are_refused(alice: agekeys.KeyPair) -> None:
    with pytest.raises(SopsError, match="only one"):
        encrypt("a: b\n", "yaml", [alice.recipient], EncryptionRules("^a$", "^b$"))


def test_creation_rules_first_match_from_the_nearest_config(
    tmp_path: Path, alice: agekeys.KeyPair, bob: agekeys.KeyPair
) -> None:
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n"
        f"  - path_regex: prod/.*\\.yaml$\n    age: [{alice.recipient}, {bob.recipient}]\n"
        "    encrypted_regex: ^(data|stringData)$\n"
        f"  - path_regex: \\.env$\n    age: '{bob.recipient},'\n"
    )
    (tmp_path / "prod" / "deep").mkdir(parents=True)
    rule = sopsconfig.rule_for(tmp_path / "prod" / "deep" / "s.yaml")
    assert rule is not None
    assert rule.age == (alice.recipient, bob.recipient)
    assert rule.rules.encrypted_regex == "^(data|stringData)$"
    env_rule = sopsconfig.rule_for(tmp_path / "app.env")
    assert env_rule is not None and env_rule.age == (bob.recipient,)
    assert not env_rule.rules.given
    with pytest.raises(UserInputError, match="no creation rule"):
        sopsconfig.rule_for(tmp_path / "other.json")
    # a nearer .sops.yaml wins over the one above it
    (tmp_path / "prod" / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {alice.recipient}\n    unencrypted_suffix: _plain\n"
    )
    near = sopsconfig.rule_for(tmp_path / "prod" / "deep" / "s.yaml")
    assert near is not None and near.age == (alice.recipient,)
    assert near.rules.unencrypted_suffix == "_plain"


def test_a_config_without_creation_rules_gives_no_rule(tmp_path: Path) -> None:
    (tmp_path / ".sops.yaml").write_text("stores:\n  yaml:\n    indent: 2\n")
    assert sopsconfig.rule_for(tmp_path / "x.yaml") is None


def test_a_syntax_error_names_the_place_not_the_content(alice: agekeys.KeyPair) -> None:
    broken = "data:\n  password: hunter2-secret\n   bad: [unclosed\n"
    with pytest.raises(SopsError) as e:
        encrypt(broken, "yaml", [alice.recipient], where="broken.yaml")
    assert "broken.yaml" in str(e.value) and "line" in str(e.value)
    assert "hunter2" not in str(e.value)


def test_dotenv_metadata_for_two_recipients_reads_back(
    alice: agekeys.KeyPair, bob: agekeys.KeyPair
) -> None:
    enc = encrypt("TOKEN=abc\n", "dotenv", [alice.recipient, bob.recipient])
    assert "sops_age__list_1__map_recipient=" + bob.recipient in enc.splitlines()
    meta = read_metadata(enc, "dotenv")
    assert meta.recipients == (alice.recipient, bob.recipient)
    assert meta.rules.unencrypted_suffix == "_unencrypted"
    assert decrypt(enc, "dotenv", [bob.identity]) == "TOKEN=abc\n"
