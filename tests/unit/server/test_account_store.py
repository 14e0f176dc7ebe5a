"""The server's AccountStore on plain objects (as the watch caches hold them):
logins and tokens without API requests, the newer of two copies, and sessions
ended when an account changes behind the server's back."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from argon2 import PasswordHasher

from gitmoor.server.auth.accounts import AccountStore, _Fresh
from gitmoor.server.auth.principal import Principal
from gitmoor.server.auth.sessions import SessionStore
from gitmoor.settings import accounts


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    monkeypatch.setattr(accounts, "_dummy_hash", None)


class Watched:
    """What a watch cache would return for gitmoor-cm and gitmoor-secret."""

    def __init__(self) -> None:
        self.cm: dict[str, Any] = {"metadata": {"resourceVersion": "10"}, "data": {}}
        self.secret: dict[str, Any] = {"metadata": {"resourceVersion": "10"}, "data": {}}

    def set_secret(self, rv: int, **data: str) -> None:
        enc = {k.replace("__", "."): base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.secret = {"metadata": {"resourceVersion": str(rv)}, "data": enc}

    def store(self) -> AccountStore:
        return AccountStore(
            None,  # type: ignore[arg-type]  # no API request may happen in these tests
            "ns",
            configmap=lambda: self.cm,
            secret=lambda: self.secret,
        )


async def test_login_reads_the_watched_objects() -> None:
    w = Watched()
    w.cm["data"] = {"accounts.alice": "login"}
    w.set_secret(11, accounts__alice__password=accounts.hash_password("alice-pass"))
    store = w.store()
    who = await store.login("alice", "alice-pass")
    assert who == Principal("alice", via="session")
    assert await store.login("alice", "wrong-pass") is None
    assert await store.login("admin", "alice-pass") is None  # admin has no password yet


async def test_a_token_in_the_watched_secret_is_accepted() -> None:
    w = Watched()
    w.cm["data"] = {"accounts.ci": "apiKey"}
    token = accounts.new_token("t1")
    entry = {"id": "t1", "iat": 0, "exp": 0, "hash": accounts.token_hash(token)}
    w.set_secret(11, accounts__ci__tokens=json.dumps([entry]))
    who = await w.store().verify_token(token)
    assert who == Principal("ci", via="token", token_id="t1")


def test_our_own_write_wins_until_the_watch_catches_up() -> None:
    watched: dict[str, Any] = {"metadata": {"resourceVersion": "5"}, "v": "old"}
    fresh = _Fresh(lambda: watched)
    fresh.wrote({"metadata": {"resourceVersion": "7"}, "v": "ours"})
    assert fresh.get()["v"] == "ours"  # type: ignore[index]
    watched = {"metadata": {"resourceVersion": "7"}, "v": "ours-from-watch"}
    assert fresh.get()["v"] == "ours-from-watch"  # type: ignore[index]
    watched = {"metadata": {"resourceVersion": "9"}, "v": "later"}
    assert fresh.get()["v"] == "later"  # type: ignore[index]
    fresh.wrote({"metadata": {"resourceVersion": "8"}, "v": "stale"})  # older than the watch
    assert fresh.get()["v"] == "later"  # type: ignore[index]


def test_a_password_reset_behind_the_servers_back_ends_the_sessions() -> None:
    w = Watched()
    w.cm["data"] = {"accounts.alice": "login", "accounts.bob": "login"}
    w.set_secret(
        11,
        accounts__alice__password=accounts.hash_password("alice-pass"),
        accounts__bob__password=accounts.hash_password("bob-pass1"),
    )
    store = w.store()
    sessions = SessionStore(b"k" * 32)
    assert store.reconcile_sessions(sessions) == []  # the baseline
    a, _ = sessions.create(Principal("alice"))
    b, _ = sessions.create(Principal("bob"))

    w.set_secret(
        12,
        accounts__alice__password=accounts.hash_password("alice-new!"),
        accounts__bob__password=w_secret_value(w, "accounts.bob.password"),
    )
    assert store.reconcile_sessions(sessions) == ["alice"]
    assert not sessions.alive(a.id) and sessions.alive(b.id)

    # A watch delivers a new object with a new resourceVersion.
    w.cm = {
        "metadata": {"resourceVersion": "13"},
        "data": {**w.cm["data"], "accounts.bob.enabled": "false"},
    }
    assert store.reconcile_sessions(sessions) == ["bob"]
    assert not sessions.alive(b.id)


def w_secret_value(w: Watched, key: str) -> str:
    return base64.b64decode(w.secret["data"][key]).decode()
