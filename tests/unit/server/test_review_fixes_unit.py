"""Regressions for what the security review of the server's authentication found
(issue 12), where a unit is the place to show it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import httpx
from fastapi import Depends, FastAPI, HTTPException

from gitmoor.server.auth.accounts import _Fresh
from gitmoor.server.auth.ratelimit import LoginLimiter
from gitmoor.server.limits import BodyLimit
from gitmoor.settings import accounts

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.model import JSONDict


def _secret(rv: int) -> JSONDict:
    return {"metadata": {"name": "gitmoor-secret", "resourceVersion": str(rv)}}


def test_our_written_copy_does_not_outlive_the_objects_deletion() -> None:
    """The copy our write returned is read until the watch catches up; once the
    watch says the object is gone (deleted after our write), the tokens and
    passwords in our copy must not stay in force."""
    watched: list[JSONDict | None] = [_secret(5)]
    fresh = _Fresh(lambda: watched[0])
    fresh.wrote(_secret(6))
    assert fresh.get() == _secret(6)  # the watch is behind: our write wins
    watched[0] = None  # then the watch delivers a deletion
    assert fresh.get() is None


def test_a_copy_we_created_is_kept_until_the_watch_sees_it() -> None:
    """An object our write created is not in the watch yet: that absence is not a
    deletion, and our copy is read meanwhile."""
    watched: list[JSONDict | None] = [None]
    fresh = _Fresh(lambda: watched[0])
    fresh.wrote(_secret(3))
    assert fresh.get() == _secret(3)
    watched[0] = _secret(3)
    assert fresh.get() == _secret(3)
    watched[0] = None
    assert fresh.get() is None


def _anonymous() -> str:
    raise HTTPException(401, "authentication required")


async def _things(body: dict[str, int], who: Annotated[str, Depends(_anonymous)]) -> str:
    return who  # pragma: no cover - never authenticated


async def test_a_body_over_the_cap_is_not_read_before_authentication() -> None:
    """FastAPI reads a route's body before its dependencies run: behind
    ``BodyLimit`` an anonymous 64 MiB body is refused with a 413 after the cap,
    not read whole to answer 401."""
    app = FastAPI()
    app.post("/things")(_things)
    limited = BodyLimit(app, limit=1 << 20)
    read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(64):
            read += 1 << 16
            yield b" " * (1 << 16)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=limited), base_url="http://test"
    ) as c:
        r = await c.post("/things", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert read <= (1 << 20) + (1 << 16)
        r = await c.post("/things", json={"a": 1})
        assert r.status_code == 401  # a small body goes through to the route
        declared = await c.post(
            "/things", content=b" " * ((1 << 20) + 1), headers={"Content-Type": "application/json"}
        )
        assert declared.status_code == 413


def test_begin_counts_the_attempt_before_the_password_is_verified() -> None:
    """Ten attempts begun and not yet finished already use up the window: the
    eleventh is refused though none has failed yet (parallel guesses)."""
    lim = LoginLimiter(max_failures=10, window=300)
    for _ in range(10):
        assert lim.begin("admin", "10.0.0.1", now=0.0) is None
    assert lim.begin("admin", "10.0.0.1", now=0.0) == 300.0
    assert lim.begin("admin", "10.0.0.2", now=0.0) is not None  # the account is limited


def test_a_begun_success_takes_back_its_own_count_only() -> None:
    lim = LoginLimiter(max_failures=2, window=60)
    assert lim.begin("erin", "x", now=0.0) is None  # a wrong password, counted
    assert lim.begin("erin", "x", now=1.0) is None  # the right one
    lim.succeeded("erin", "x", begun=True)
    # The account is clear; the address keeps the one real failure, not two.
    assert lim.begin("ivan", "x", now=2.0) is None
    assert lim.begin("ivan", "x", now=2.0) is not None


def test_a_hand_edited_non_ascii_token_hash_refuses_the_token_instead_of_failing() -> None:
    """``hmac.compare_digest`` raises TypeError on a non-ASCII str; a hash edited
    by hand in gitmoor-secret must make its token invalid, not every request
    carrying it a 500."""
    token = accounts.new_token("deploy")
    entry = accounts.TokenEntry("deploy", 0.0, 0.0, "é" * 64)
    bot = accounts.Account("bot", True, (accounts.CAP_API_KEY,), tokens=(entry,))
    assert accounts.verify_token([bot], token) is None
