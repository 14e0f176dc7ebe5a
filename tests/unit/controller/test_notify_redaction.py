"""Notifications leave scrubbed (issue 13, "one redaction policy for every output"):
a sync message that quotes a Secret value, or a value of a field an app's
``redactions`` name, reaches the webhook as the value's mask, in the JSON body's
fields and in the text the template expands to. Real HTTP POSTs to a receiver
on 127.0.0.1, as the other notification tests do."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.controller.notify import SYNC_FAILED, Notification, Notifier
from gitmoor.engine import app_identity, redactor_for
from gitmoor.model.application import (
    Application,
    AppSource,
    Destination,
    application_manifest,
    parse_application,
)
from gitmoor.model.project import AppProject
from gitmoor.model.redaction import RedactRule

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gitmoor.secrets.redact import Redactor

PASSWORD = "notify-redaction-pw-4b9e27"
TOKEN = "notify-redaction-token-c03d58"


class Receiver:
    """Keeps each POSTed body as raw bytes, so the test can search what was sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.httpd.shutdown()
        r.httpd.server_close()


def _app(name: str, uid: str) -> Application:
    manifest = application_manifest(
        name, "apps", AppSource("https://git.example.com/notify.git"), Destination(name)
    )
    manifest["metadata"]["uid"] = uid
    return parse_application(manifest)


APP = _app("notify-redaction", "uid-notify-1")


def _learn() -> Redactor:
    """What the engine does while it compares an app: its Redactor (the app's,
    under its project's rules) masks, and so learns, the app's Secret and the
    ConfigMap field a rule names."""
    project = AppProject(
        name="notify", redactions=(RedactRule(kind="ConfigMap", fields=("data.*token*",)),)
    )
    redactor = redactor_for(APP, project)
    redactor.learn(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "data": {"password": base64.b64encode(PASSWORD.encode()).decode()},
        }
    )
    redactor.learn(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"api-token": TOKEN, "color": "blue"},
        }
    )
    return redactor


@pytest.mark.parametrize("format_", ["json", "slack"])
async def test_a_notification_quoting_values_leaves_with_their_masks(
    receiver: Receiver, format_: str
) -> None:
    redactor = _learn()
    config = f"""
webhooks:
  - name: ops
    url: {receiver.url}
    format: {format_}
    on: [{SYNC_FAILED}]
templates:
  {SYNC_FAILED}: "{{app}} failed: {{message}}"
"""
    notifier = Notifier(retries=0, timeout=5)
    notifier.configure(config)
    runner = asyncio.create_task(notifier.run())
    try:
        message = (
            f'Secret "db" is invalid: data[password]: Invalid value: "{PASSWORD}"; '
            f"ConfigMap settings: token {TOKEN} refused"
        )
        notifier.notify(
            Notification(
                SYNC_FAILED,
                "notify-redaction",
                "apps",
                "abc123",
                message,
                "",
                "",
                app_key=app_identity(APP),
            )
        )
        await notifier.drain(10)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert notifier.delivered == 1, (notifier.delivered, notifier.failed)
    (raw,) = receiver.bodies
    for value in (PASSWORD, TOKEN):
        assert value.encode() not in raw
        assert base64.b64encode(value.encode()) not in raw
    body = json.loads(raw)
    # the mask the app's Redactor gives each value: the same as in its diffs
    expected = (
        f'Secret "db" is invalid: data[password]: Invalid value: '
        f'"{redactor.mask_value(PASSWORD)}"; ConfigMap settings: token '
        f"{redactor.mask_value(TOKEN)} refused"
    )
    assert body["text"] == f"notify-redaction failed: {expected}"
    if format_ == "json":
        assert body["message"] == expected
        assert body["app"] == "notify-redaction"


async def test_another_apps_notification_is_not_scrubbed_of_these_values(
    receiver: Receiver,
) -> None:
    # A shared scrub would mask, in the other app's notification, a value it
    # quotes that happens to be this app's: telling its readers it is one.
    _learn()
    other = _app("other-app", "uid-other-1")
    notifier = Notifier(retries=0, timeout=5)
    notifier.configure(
        f"""
webhooks:
  - name: ops
    url: {receiver.url}
    format: json
    on: [{SYNC_FAILED}]
"""
    )
    runner = asyncio.create_task(notifier.run())
    try:
        message = f"printed {PASSWORD}"
        notifier.notify(
            Notification(
                SYNC_FAILED,
                "other-app",
                "apps",
                "abc",
                message,
                "",
                "",
                app_key=app_identity(other),
            )
        )
        await notifier.drain(10)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    (raw,) = receiver.bodies
    assert json.loads(raw)["message"] == f"printed {PASSWORD}"
    assert b"app_key" not in raw and b"uid-other-1" not in raw
