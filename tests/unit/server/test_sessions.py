"""Server-held sessions named by a signed cookie."""

from __future__ import annotations

from gitmoor.server.auth.principal import Principal
from gitmoor.server.auth.sessions import SessionStore


def test_a_session_is_found_by_its_signed_token_and_carries_its_id() -> None:
    store = SessionStore(b"k" * 32)
    session, token = store.create(Principal("alice", ("devs",)))
    found = store.get(token)
    assert found is not None
    assert found.principal.name == "alice"
    assert found.principal.session_id == session.id
    assert found.csrf and found.csrf != token


def test_a_forged_or_foreign_token_is_refused() -> None:
    store = SessionStore(b"k" * 32)
    _, token = store.create(Principal("alice"))
    other = SessionStore(b"x" * 32)
    assert other.get(token) is None  # signed with another key
    assert store.get(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    assert store.get("") is None
    assert store.get(None) is None


def test_logout_ends_the_session_at_once() -> None:
    store = SessionStore(b"k" * 32)
    session, token = store.create(Principal("alice"))
    assert store.end(session.id)
    assert store.get(token) is None
    assert not store.alive(session.id)


def test_end_all_ends_every_session_of_one_account() -> None:
    store = SessionStore(b"k" * 32)
    _, a1 = store.create(Principal("alice"))
    _, a2 = store.create(Principal("alice"))
    _, b = store.create(Principal("bob"))
    assert store.end_all("alice") == 2
    assert store.get(a1) is None and store.get(a2) is None
    assert store.get(b) is not None


def test_an_expired_session_is_refused() -> None:
    store = SessionStore(b"k" * 32, ttl=-1)
    _, token = store.create(Principal("alice"))
    assert store.get(token) is None
