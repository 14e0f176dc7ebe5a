"""Accounts on plain data: parsing gitmoor-cm/gitmoor-secret, passwords, tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from argon2 import PasswordHasher

from gitmoor.settings import accounts
from gitmoor.settings.accounts import (
    CAP_API_KEY,
    CAP_LOGIN,
    Account,
    TokenEntry,
    hash_password,
    new_token,
    parse_accounts,
    token_hash,
    token_id_of,
    verify_password,
    verify_token,
)


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests only: production keeps argon2-cffi's defaults.
    monkeypatch.setattr(accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    monkeypatch.setattr(accounts, "_dummy_hash", None)


def cm(data: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "gitmoor-cm"}, "data": data}


def secret(data: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "gitmoor-secret"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_admin_is_built_in_and_other_accounts_come_from_the_configmap() -> None:
    got = parse_accounts(
        cm(
            {
                "accounts.alice": "apiKey, login",
                "accounts.ci": "apiKey",
                "accounts.ci.enabled": "false",
                "url": "https://gitmoor.example",
            }
        ),
        None,
    )
    assert sorted(got) == ["admin", "alice", "ci"]
    assert got["admin"].capabilities == (CAP_LOGIN,) and got["admin"].enabled
    assert got["alice"].capabilities == (CAP_LOGIN, CAP_API_KEY)
    assert got["ci"].capabilities == (CAP_API_KEY,) and not got["ci"].enabled


def test_admin_can_be_disabled_and_given_api_keys() -> None:
    got = parse_accounts(cm({"admin.enabled": "false", "accounts.admin": "login, apiKey"}), None)
    assert not got["admin"].enabled
    assert got["admin"].capabilities == (CAP_LOGIN, CAP_API_KEY)


def test_unknown_capabilities_and_dotted_names_are_ignored() -> None:
    got = parse_accounts(cm({"accounts.bob": "login, root", "accounts.x.y": "login"}), None)
    assert got["bob"].capabilities == (CAP_LOGIN,)
    assert "x.y" not in got and "x" not in got


def test_passwords_and_tokens_come_from_the_secret_under_argo_cd_keys() -> None:
    tokens = [{"id": "t1", "iat": 100, "exp": 0, "hash": "ab"}, {"broken": True}]
    got = parse_accounts(
        cm({"accounts.alice": "apiKey, login"}),
        secret(
            {
                "admin.password": "$argon2id$admin",
                "admin.passwordMtime": "2026-01-01T00:00:00Z",
                "accounts.alice.password": "$argon2id$alice",
                "accounts.alice.tokens": json.dumps(tokens),
                "webhook.github.secret": "not ours",
            }
        ),
    )
    assert got["admin"].password_hash == "$argon2id$admin"
    assert got["admin"].password_mtime == "2026-01-01T00:00:00Z"
    assert got["alice"].password_hash == "$argon2id$alice"
    # The malformed entry is skipped, the good one kept.
    assert got["alice"].tokens == (TokenEntry("t1", 100.0, 0.0, "ab"),)


def test_the_hash_is_argon2id_and_never_the_password() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$") and "correct horse" not in h


def test_a_password_opens_only_its_enabled_login_account() -> None:
    h = hash_password("s3cret-pass")
    alice = Account("alice", True, (CAP_LOGIN,), h)
    assert verify_password(alice, "s3cret-pass")
    assert not verify_password(alice, "s3cret-pasS")
    assert not verify_password(Account("alice", False, (CAP_LOGIN,), h), "s3cret-pass")
    assert not verify_password(Account("alice", True, (CAP_API_KEY,), h), "s3cret-pass")
    assert not verify_password(Account("alice", True, (CAP_LOGIN,), ""), "")
    assert not verify_password(None, "s3cret-pass")


def test_an_unknown_user_still_costs_one_argon2_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = accounts.HASHER

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append("verify")
            return real.verify(hash, password)

    monkeypatch.setattr(accounts, "HASHER", Counting(time_cost=1, memory_cost=1024))
    assert not verify_password(None, "whatever1")
    assert not verify_password(Account("bob", False, (CAP_LOGIN,), ""), "whatever1")
    assert calls == ["verify", "verify"]


def test_a_hash_made_with_other_parameters_still_verifies() -> None:
    strong = PasswordHasher().hash("made-elsewhere")
    assert verify_password(Account("admin", True, (CAP_LOGIN,), strong), "made-elsewhere")


def _with_token(
    token: str, *, exp: float = 0, caps: tuple[str, ...] = (CAP_API_KEY,), enabled: bool = True
) -> Account:
    tid = token_id_of(token)
    assert tid is not None
    return Account("ci", enabled, caps, tokens=(TokenEntry(tid, 1000.0, exp, token_hash(token)),))


def test_a_token_is_found_by_id_and_checked_by_hash() -> None:
    token = new_token("deploy")
    assert token.startswith("gmt_deploy.")
    acc = _with_token(token)
    found = verify_token([Account("admin", True, (CAP_LOGIN,)), acc], token, now=2000.0)
    assert found is not None and found[0].name == "ci" and found[1].id == "deploy"
    # Same id, another secret: refused.
    assert verify_token([acc], "gmt_deploy." + "A" * 43, now=2000.0) is None


def test_an_expired_token_is_refused() -> None:
    token = new_token("short")
    acc = _with_token(token, exp=1500.0)
    assert verify_token([acc], token, now=1499.0) is not None
    assert verify_token([acc], token, now=1500.0) is None


def test_a_disabled_account_or_one_without_api_key_has_no_working_tokens() -> None:
    token = new_token("t")
    assert verify_token([_with_token(token, enabled=False)], token, now=0.0) is None
    assert verify_token([_with_token(token, caps=(CAP_LOGIN,))], token, now=0.0) is None


def test_two_accounts_may_use_the_same_token_id() -> None:
    a, b = new_token("ci"), new_token("ci")
    accs = [
        Account("one", True, (CAP_API_KEY,), tokens=(TokenEntry("ci", 0, 0, token_hash(a)),)),
        Account("two", True, (CAP_API_KEY,), tokens=(TokenEntry("ci", 0, 0, token_hash(b)),)),
    ]
    assert verify_token(accs, a, now=1.0)[0].name == "one"  # type: ignore[index]
    assert verify_token(accs, b, now=1.0)[0].name == "two"  # type: ignore[index]


@pytest.mark.parametrize(
    "text", ["", "gmt_", "gmt_abc", "gmt_.secret", "gmt_a.b.c/../x", "Bearer gmt_a.b", "xyz_a.b"]
)
def test_strings_that_are_not_tokens_are_refused(text: str) -> None:
    if token_id_of(text) is None:
        assert verify_token([], text) is None
    else:
        assert verify_token([], text, now=0.0) is None


def test_a_stored_entry_never_holds_the_token() -> None:
    token = new_token("x")
    entry = TokenEntry("x", 1.0, 0.0, token_hash(token))
    assert token not in json.dumps(entry.to_json())
    assert token_hash(token) not in repr(entry)
