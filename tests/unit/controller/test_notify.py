"""Notifications: real HTTP POSTs to a local server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.controller.notify import (
    HEALTH_DEGRADED,
    SYNC_FAILED,
    SYNC_SUCCEEDED,
    Notification,
    Notifier,
    parse_config,
    render,
)
from gitmoor.model import UserInputError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class HookServer:
    """A webhook receiver. ``plans[path]`` is the statuses to answer in turn (the last
    one repeats); ``"hang"`` reads the request and never answers."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.plans: dict[str, list[int | str]] = {}
        self.release = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.received.append(
                        Received(self.path, dict(self.headers), json.loads(body), time.monotonic())
                    )
                    n = sum(1 for r in outer.received if r.path == self.path)
                plan = outer.plans.get(self.path, [200])
                answer = plan[min(n, len(plan)) - 1]
                if answer == "hang":
                    outer.release.wait(60)
                    return
                assert isinstance(answer, int)
                self.send_response(answer)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def hits(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]


@pytest.fixture
def server() -> Iterator[HookServer]:
    s = HookServer()
    s.thread.start()
    try:
        yield s
    finally:
        s.release.set()
        s.httpd.shutdown()
        s.httpd.server_close()


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[Notifier]:
    task = asyncio.create_task(notifier.run())
    try:
        yield notifier
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(pred: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


def note(trigger: str = SYNC_FAILED, **kw: str) -> Notification:
    values = {
        "app": "web",
        "namespace": "gitmoor",
        "revision": "0123abc",
        "message": "one or more objects failed to apply",
        "health": "Degraded",
        "sync": "OutOfSync",
    } | kw
    return Notification(trigger=trigger, **values)


def hook_yaml(
    name: str, url: str, *, on: str = "[sync-succeeded, sync-failed]", extra: str = ""
) -> str:
    return f"- name: {name}\n  url: {url}\n  on: {on}\n{extra}"


async def test_json_and_slack_bodies_carry_the_rendered_template(server: HookServer) -> None:
    notifier = Notifier(backoff=0.01)
    # The documented YAML as written: PyYAML reads a bare `on` key as True.
    notifier.configure(f"""
webhooks:
- name: ops
  url: {server.url("/ops")}
  format: json
  on: [sync-succeeded, sync-failed, health-degraded]
  headers: {{Authorization: "Bearer ops-token", X-Team: platform}}
- name: chat
  url: {server.url("/slack")}
  format: slack
  on: [sync-failed]
- name: pager
  url: {server.url("/pager")}
  on: [health-degraded]
templates:
  sync-failed: "{{app}} sync FAILED at {{revision}}: {{message}}"
""")
    async with running(notifier):
        notifier.notify(note(SYNC_FAILED))
        await notifier.drain(5)

        text = "web sync FAILED at 0123abc: one or more objects failed to apply"
        [ops] = server.hits("/ops")
        assert ops.body == {
            "trigger": "sync-failed",
            "app": "web",
            "namespace": "gitmoor",
            "revision": "0123abc",
            "message": "one or more objects failed to apply",
            "health": "Degraded",
            "sync": "OutOfSync",
            "text": text,
        }
        assert ops.headers["Authorization"] == "Bearer ops-token"
        assert ops.headers["X-Team"] == "platform"
        assert ops.headers["Content-Type"] == "application/json"
        [chat] = server.hits("/slack")
        assert chat.body == {"text": text}
        assert "Authorization" not in chat.headers  # headers belong to their webhook only
        assert server.hits("/pager") == []  # not subscribed to sync-failed
        assert (notifier.delivered, notifier.failed) == (2, 0)

        notifier.notify(note(HEALTH_DEGRADED, message="Deployment web: 0/3 replicas ready"))
        await notifier.drain(5)
        [pager] = server.hits("/pager")
        assert pager.body["text"] == "web is Degraded: Deployment web: 0/3 replicas ready"
        assert len(server.hits("/slack")) == 1
        assert len(server.hits("/ops")) == 2


async def test_500_twice_then_200_is_three_attempts_with_growing_backoff(
    server: HookServer,
) -> None:
    server.plans["/flaky"] = [500, 500, 200]
    notifier = Notifier(retries=3, backoff=0.05)
    notifier.configure("webhooks:\n" + hook_yaml("flaky", server.url("/flaky")))
    async with running(notifier):
        notifier.notify(note(SYNC_SUCCEEDED))
        await notifier.drain(5)
    hits = server.hits("/flaky")
    assert len(hits) == 3
    assert (notifier.delivered, notifier.failed) == (1, 0)
    first_wait, second_wait = hits[1].at - hits[0].at, hits[2].at - hits[1].at
    assert first_wait >= 0.05
    assert second_wait >= 0.1  # doubled


async def test_gives_up_after_the_retries_and_never_retries_a_4xx(server: HookServer) -> None:
    server.plans["/down"] = [503]
    server.plans["/refuses"] = [400]
    notifier = Notifier(retries=2, backoff=0.01)
    notifier.configure(
        "webhooks:\n"
        + hook_yaml("down", server.url("/down"))
        + hook_yaml("refuses", server.url("/refuses"))
    )
    async with running(notifier):
        notifier.notify(note(SYNC_FAILED))
        await notifier.drain(5)
    assert len(server.hits("/down")) == 3  # the first attempt and two retries
    assert len(server.hits("/refuses")) == 1
    assert (notifier.delivered, notifier.failed) == (0, 2)


async def test_a_hanging_endpoint_blocks_neither_notify_nor_another_endpoint(
    server: HookServer,
) -> None:
    server.plans["/hang"] = ["hang"]
    # A timeout far beyond the deadlines below: the healthy endpoint must not
    # wait for it. The hanging webhook comes first, so a sender that went
    # through webhooks in turn would fail this test.
    notifier = Notifier(retries=0, timeout=60)
    notifier.configure(
        "webhooks:\n" + hook_yaml("stuck", server.url("/hang")) + hook_yaml("ok", server.url("/ok"))
    )
    async with running(notifier):
        notifier.notify(note(SYNC_FAILED))
        # notify() only enqueued: nothing has been sent yet.
        assert server.received == []
        await eventually(lambda: len(server.hits("/ok")) == 1, within=5, what="first delivery")
        notifier.notify(note(SYNC_SUCCEEDED))
        await eventually(lambda: len(server.hits("/ok")) == 2, within=5, what="second delivery")
        # Both reached the healthy endpoint while the first POST to the stuck one
        # is still waiting for an answer, and the second waits behind it.
        assert len(server.hits("/hang")) == 1
        assert (notifier.delivered, notifier.failed, notifier.pending) == (2, 0, 1)


async def test_an_attempt_that_gets_no_answer_times_out_and_is_retried(
    server: HookServer,
) -> None:
    server.plans["/hang"] = ["hang"]
    notifier = Notifier(retries=1, backoff=0.01, timeout=0.5)
    notifier.configure("webhooks:\n" + hook_yaml("stuck", server.url("/hang")))
    started = time.monotonic()
    async with running(notifier):
        notifier.notify(note(SYNC_FAILED))
        await notifier.drain(10)
    elapsed = time.monotonic() - started
    assert len(server.hits("/hang")) == 2
    assert (notifier.delivered, notifier.failed) == (0, 1)
    assert 1.0 <= elapsed < 10


async def test_a_full_queue_drops_and_unwanted_triggers_are_not_queued(
    server: HookServer,
) -> None:
    notifier = Notifier(queue_size=1)
    notifier.configure("webhooks:\n" + hook_yaml("ops", server.url("/ops"), on="[sync-failed]"))
    notifier.notify(note(SYNC_SUCCEEDED))  # nobody wants it
    assert notifier.pending == 0
    notifier.notify(note(SYNC_FAILED, message="first"))
    notifier.notify(note(SYNC_FAILED, message="second"))  # no sender yet: the queue is full
    assert (notifier.pending, notifier.dropped) == (1, 1)
    async with running(notifier):
        await notifier.drain(5)
    assert [h.body["message"] for h in server.hits("/ops")] == ["first"]


async def test_logs_name_the_webhook_but_never_its_headers_or_path(
    server: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.plans["/services/T0/SECRET-PATH-TOKEN"] = [500]
    notifier = Notifier(retries=1, backoff=0.01)
    notifier.configure(
        "webhooks:\n"
        + hook_yaml(
            "ops",
            server.url("/services/T0/SECRET-PATH-TOKEN"),
            extra='  headers: {Authorization: "Bearer header-secret-value"}\n',
        )
    )
    caplog.set_level(logging.DEBUG)
    async with running(notifier):
        notifier.notify(note(SYNC_FAILED))
        await notifier.drain(5)
    assert len(server.hits("/services/T0/SECRET-PATH-TOKEN")) == 2
    assert "event=notification_failed webhook=ops" in caplog.text
    assert f"endpoint=http://127.0.0.1:{server.httpd.server_address[1]}" in caplog.text
    assert "header-secret-value" not in caplog.text
    assert "SECRET-PATH-TOKEN" not in caplog.text
    assert "header-secret-value" not in repr(notifier.config)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ("webhooks: {}", "webhooks must be a list"),
        ("webhooks:\n- name: ops\n", "webhooks[0].url"),
        ("webhooks:\n- name: ops\n  url: ftp://127.0.0.1/x\n", "webhooks[0].url"),
        ("webhooks:\n- name: ops\n  url: http://127.0.0.1:port/x\n", "webhooks[0].url"),
        ("webhooks:\n- url: http://127.0.0.1/x\n", "webhooks[0].name"),
        (
            "webhooks:\n- name: ops\n  url: http://127.0.0.1/x\n  format: teams\n",
            "webhooks[0].format",
        ),
        (
            "webhooks:\n- name: ops\n  url: http://127.0.0.1/x\n  on: [sync-started]\n",
            "webhooks[0].on[0]",
        ),
        ("webhooks:\n- name: ops\n  url: http://127.0.0.1/x\n  on: []\n", "webhooks[0].on"),
        ("webhooks:\n- name: ops\n  url: http://127.0.0.1/x\n  headrs: {}\n", "webhooks[0].headrs"),
        (
            "webhooks:\n- name: ops\n  url: http://127.0.0.1/x\n  headers: [a]\n",
            "webhooks[0].headers",
        ),
        (
            "webhooks:\n- name: a\n  url: http://127.0.0.1/x\n- name: a\n  url: http://127.0.0.1/y\n",
            "webhooks[1].name",
        ),
        ("templates: {sync-started: x}", "templates.sync-started"),
        ("templates: {sync-failed: [x]}", "templates.sync-failed"),
        ("webhook: []", "webhook is not a known field"),
        ("- a\n- b\n", "config.yaml must be a mapping"),
        ("webhooks: [", "config.yaml is not valid YAML at line"),
    ],
)
def test_bad_config_names_the_field(config: str, field: str) -> None:
    with pytest.raises(UserInputError) as e:
        parse_config(config)
    assert field in str(e.value)


def test_config_errors_never_quote_a_secret() -> None:
    bad_value = 'webhooks:\n- name: ops\n  url: http://127.0.0.1/x\n  headers: {Authorization: "Bearer tök-secret"}\n'
    with pytest.raises(UserInputError) as e:
        parse_config(bad_value)
    assert "webhooks[0].headers.Authorization" in str(e.value)
    assert "secret" not in str(e.value)

    bad_yaml = 'webhooks:\n- name: ops\n  headers: {Authorization: "Bearer yaml-secret}\n'
    with pytest.raises(UserInputError) as e:
        parse_config(bad_yaml)
    assert "not valid YAML" in str(e.value)
    assert "yaml-secret" not in str(e.value)


def test_a_bad_config_keeps_the_previous_one() -> None:
    notifier = Notifier()
    notifier.configure("webhooks:\n- name: ops\n  url: http://127.0.0.1/x\n")
    with pytest.raises(UserInputError):
        notifier.configure("webhooks:\n- name: ops\n")
    assert [w.name for w in notifier.config.webhooks] == ["ops"]
    notifier.configure("")
    assert notifier.config.webhooks == ()


def test_templates_cannot_reach_attributes_or_expand_values() -> None:
    hostile = (
        "{app.__class__} {app.__init__.__globals__} {app[0]} {app!r} {app:>999999999} "
        "{nope} {} {{app}} {{{app}}} | {app} at {revision}: {message}"
    )
    text = render(hostile, note(message="see {revision} and {app.__class__}", revision="v1"))
    assert text == (
        "{app.__class__} {app.__init__.__globals__} {app[0]} {app!r} {app:>999999999} "
        "{nope} {} {app} {web} | web at v1: see {revision} and {app.__class__}"
    )
    # Such a template is accepted, and is just text.
    cfg = parse_config(f"templates:\n  sync-failed: {json.dumps(hostile)}\n")
    assert cfg.templates[SYNC_FAILED] == hostile
