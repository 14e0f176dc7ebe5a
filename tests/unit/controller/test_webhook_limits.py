"""Webhook hardening: unsigned pushes refused, the priority lane for verified pushes
only, and refreshes rate-limited per repository (coalesced, never dropped)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gitmoor.controller.ratelimit import RefreshLimits, RepoRateLimiter
from gitmoor.controller.service import refresh_plan
from gitmoor.controller.webhook import PushEvent, WebhookSecrets, parse_push, webhook_router
from gitmoor.model.application import parse_application

TESTDATA = Path(__file__).parent / "testdata" / "webhook"
SECRET = "gh-limits-s3cret"


def github_push(ref: str = "refs/heads/main", after: str = "1" * 40, repo: str = "") -> bytes:
    data: dict[str, Any] = json.loads((TESTDATA / "github_push.json").read_bytes())
    data["ref"], data["after"] = ref, after
    data.pop("head_commit", None)
    if repo:
        for key in ("clone_url", "ssh_url", "html_url"):
            data["repository"][key] = repo
    return json.dumps(data).encode()


def signed(body: bytes) -> dict[str, str]:
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={sig}",
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[PushEvent] = []

    async def __call__(self, event: PushEvent) -> int:
        self.events.append(event)
        return 1


def client(on_push: Recorder, **kwargs: Any) -> httpx.AsyncClient:
    app = FastAPI()
    secrets = kwargs.pop("secrets", WebhookSecrets(github=SECRET))
    app.include_router(webhook_router(on_push, secrets, **kwargs))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.9", 40000)),
        base_url="http://gitmoor.test",
    )


async def until(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --- the token bucket ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_one_per_interval() -> None:
    clock = Clock()
    limiter = RepoRateLimiter(RefreshLimits(burst=3, interval=10), clock=clock)
    assert [limiter.take("r") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("r") == pytest.approx(10.0)
    clock.now += 4
    assert limiter.take("r") == pytest.approx(6.0)
    clock.now += 6
    assert limiter.take("r") == 0.0
    assert limiter.take("other") == 0.0, "each repository has its own bucket"
    assert limiter.take("r", force=True) == 0.0
    assert limiter.take("r") == pytest.approx(10.0)


def test_bucket_forgets_idle_repositories_and_caps_their_number() -> None:
    clock = Clock()
    limiter = RepoRateLimiter(RefreshLimits(burst=2, interval=1), clock=clock, max_keys=100)
    for i in range(1000):
        limiter.take(f"invented-{i}")
    assert len(limiter) <= 101
    clock.now += 10
    limiter.take("late")
    assert len(limiter) == 1


def test_interval_zero_turns_the_limit_off() -> None:
    limiter = RepoRateLimiter(RefreshLimits(burst=1, interval=0))
    assert all(limiter.take("r") == 0.0 for _ in range(100))


# --- the route ------------------------------------------------------------------------


async def test_unsigned_push_is_refused_401_without_the_flag() -> None:
    on_push = Recorder()
    body = github_push()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    async with client(on_push, secrets=WebhookSecrets()) as http:
        r = await http.post("/api/webhook", content=body, headers=headers)
    assert r.status_code == 401
    assert "--webhook-allow-unsigned" in r.json()["error"]
    assert on_push.events == []


async def test_unsigned_push_with_the_flag_is_accepted_but_unverified() -> None:
    on_push = Recorder()
    body = github_push()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    async with client(on_push, secrets=WebhookSecrets(), allow_unsigned=True) as http:
        r = await http.post("/api/webhook", content=body, headers=headers)
    assert (r.status_code, r.json()) == (200, {"refreshed": 1})
    assert [e.verified for e in on_push.events] == [False]


async def test_pushes_over_the_limit_coalesce_into_one_deferred_refresh() -> None:
    on_push = Recorder()
    limits = RefreshLimits(burst=2, interval=0.3)
    async with client(on_push, limits=limits) as http:
        statuses = []
        for i, ref in enumerate(["main", "main", "main", "main", "dev"]):
            body = github_push(f"refs/heads/{ref}", after=f"{i + 1}" * 40)
            r = await http.post("/api/webhook", content=body, headers=signed(body))
            statuses.append(r.status_code)
            if r.status_code == 202:
                assert 0 < r.json()["deferred"] <= 0.3
        assert statuses == [200, 200, 202, 202, 202]
        assert len(on_push.events) == 2
        # Another repository has a bucket of its own.
        other = github_push(repo="https://github.com/someone/else")
        r = await http.post("/api/webhook", content=other, headers=signed(other))
        assert r.status_code == 200
        await until(lambda: len(on_push.events) == 5)
    deferred = on_push.events[3:]
    # One refresh per ref: the latest push to main (its commit), and dev.
    assert [(e.ref, e.after) for e in deferred] == [("main", "4" * 40), ("dev", "5" * 40)]
    assert all(e.verified for e in deferred)


async def test_an_invented_url_beside_the_real_one_does_not_escape_the_limit() -> None:
    on_push = Recorder()
    limits = RefreshLimits(burst=1, interval=30)
    async with client(on_push, limits=limits) as http:
        statuses = []
        for i in range(3):
            data = json.loads(github_push(after=f"{i + 1}" * 40))
            # Sorted first, so a limiter keyed on one URL would pick it each time.
            data["repository"]["html_url"] = f"https://a.example/invented-{i}"
            body = json.dumps(data).encode()
            r = await http.post("/api/webhook", content=body, headers=signed(body))
            statuses.append(r.status_code)
    assert statuses == [200, 202, 202]
    assert len(on_push.events) == 1


async def test_no_limit_when_interval_is_zero() -> None:
    on_push = Recorder()
    async with client(on_push, limits=RefreshLimits(burst=1, interval=0)) as http:
        for _ in range(10):
            body = github_push()
            r = await http.post("/api/webhook", content=body, headers=signed(body))
            assert r.status_code == 200
    assert len(on_push.events) == 10


# --- the priority lane -----------------------------------------------------------------


def _app(name: str, path: str) -> Any:
    return parse_application(
        {
            "metadata": {"name": name, "namespace": "gitmoor"},
            "spec": {
                "source": {"repoURL": "https://github.com/Gitmoor-Demo/guestbook", "path": path},
                "destination": {"namespace": "d"},
            },
        }
    )


def test_only_a_verified_push_puts_apps_first() -> None:
    body = (TESTDATA / "github_push.json").read_bytes()
    apps = [_app("dev", "overlays/dev"), _app("prod", "overlays/prod")]
    verified = parse_push(signed(body), body, WebhookSecrets(github=SECRET))
    assert verified is not None and verified.verified
    assert refresh_plan(apps, verified) == (["dev", "prod"], ["prod"])
    unsigned = parse_push({"X-GitHub-Event": "push"}, body, WebhookSecrets(), allow_unsigned=True)
    assert unsigned is not None and not unsigned.verified
    # The same payload, unsigned: every app is refreshed, none ahead of the queue.
    assert refresh_plan(apps, unsigned) == (["dev", "prod"], [])
