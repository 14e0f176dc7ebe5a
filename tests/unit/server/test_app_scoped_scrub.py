"""The server scrubs an app's text by that app's Redactors only (issue 13 review):
a pod's log line, an Event, a tree message, and an error answer of a request
about the app. Another app's values are never marked in them, so the server is
no oracle for which strings are other apps' Secret values."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from gitmoor.engine import redactor_for
from gitmoor.model.application import (
    Application,
    AppSource,
    Destination,
    application_manifest,
    parse_application,
)
from gitmoor.server.redaction import RequestApps, note_app, scrub_request, scrubbed

if TYPE_CHECKING:
    from starlette.types import Message, Receive, Scope, Send

VICTIM_PW = "victim-pw-server-0a1b2c"
TENANT_PW = "tenant-pw-server-3d4e5f"


def _app(name: str, uid: str) -> Application:
    manifest = application_manifest(
        name, "apps", AppSource("https://git.example.com/x.git"), Destination(name)
    )
    manifest["metadata"]["uid"] = uid
    return parse_application(manifest)


VICTIM, TENANT = _app("victim", "uid-sv-victim"), _app("tenant", "uid-sv-tenant")


def _learn(app: Application, value: str) -> None:
    redactor_for(app).learn(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "data": {"password": base64.b64encode(value.encode()).decode()},
        }
    )


def test_a_tenants_pod_log_is_not_scrubbed_of_another_apps_values() -> None:
    _learn(VICTIM, VICTIM_PW)
    _learn(TENANT, TENANT_PW)
    line = f"trying {VICTIM_PW} and {TENANT_PW}"
    out = scrubbed(redactor_for(TENANT), line)
    assert VICTIM_PW in out, "another app's value is left as printed: no oracle"
    assert TENANT_PW not in out
    assert VICTIM_PW not in scrubbed(redactor_for(VICTIM), line)


async def test_an_error_answer_is_scrubbed_by_the_apps_the_request_touched() -> None:
    _learn(VICTIM, VICTIM_PW)
    _learn(TENANT, TENANT_PW)
    seen: list[str] = []
    error = f"Invalid value: {VICTIM_PW} / {TENANT_PW}"

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scrub_request(error))  # before any app: nothing to hide
        note_app(TENANT)  # what visible_app does
        seen.append(scrub_request(error))

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    await RequestApps(route)({"type": "http"}, receive, send)
    assert seen[0] == error
    assert TENANT_PW not in seen[1] and VICTIM_PW in seen[1]
    assert scrub_request(error) == error, "outside a request no app is noted"
