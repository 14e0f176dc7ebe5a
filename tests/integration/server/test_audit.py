"""The audit trail (issue 12: "every state-changing call leaves a Kubernetes Event
on the object and a structured log line, saying who, what, which app, from where
and the result").

A sync through the API leaves an Event on the Application that ``kubectl
describe`` finds (it selects Events by the object's uid), and an ``event=audit``
line; a call refused by RBAC after login leaves an ``event=audit ... result=denied``
line, as Argo CD logs its "permission denied" answers, and no Event (a stream of
refused calls must not fill etcd).
"""

from __future__ import annotations

import logging
import shlex
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.engine.store import app_ref
from gitmoor.kube import wait_for
from support.apps import configmap, dump

if TYPE_CHECKING:
    from conftest import Server
    from support.apps import AppEnv

AUDIT_LOGGER = "gitmoor.server.audit"


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    """The ``event=audit`` records, each parsed into its key=value fields (a
    quoted value is one field, as a log pipeline's logfmt parser reads it)."""
    out = []
    for record in caplog.records:
        text = record.getMessage()
        if record.name == AUDIT_LOGGER and text.startswith("event=audit "):
            assert "\n" not in text, text
            out.append(dict(token.partition("=")[::2] for token in shlex.split(text)))
    return out


async def _events_of(server: Server, name: str) -> list[dict[str, Any]]:
    """The Events ``kubectl describe application NAME`` shows: by involvedObject uid."""
    live = await server.kube.get(app_ref(name, server.namespace))
    assert live is not None
    uid = live["metadata"]["uid"]
    events = await server.kube.resource("", "v1", "Event")
    listed = await server.kube.list(
        events,
        server.namespace,
        field_selector=f"involvedObject.kind=Application,involvedObject.name={name},"
        f"involvedObject.uid={uid}",
    )
    return list(listed.items)


@pytest.fixture
async def web(server: Server, env: AppEnv) -> str:
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("web")

    async def seen() -> bool:
        return server.state.apps.get("web") is not None

    await wait_for(seen, within=15, what="web in the server's watch")
    return "web"


async def test_a_sync_leaves_an_event_on_the_app_and_an_audit_line(
    server: Server, web: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = server.bearer(await server.token())
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)

    r = await admin.post(f"/api/v1/applications/{web}/sync", json={"prune": True})

    assert r.status_code == 202, r.text
    audit = [line for line in audit_lines(caplog) if line["action"] == "sync"]
    assert len(audit) == 1, audit
    line = audit[0]
    assert line["who"] == "admin"
    assert line["address"] == "127.0.0.1"
    assert line["result"] == "accepted"
    assert line["target"].endswith(f"/{web}") and "Application" in line["target"]
    events = [e for e in await _events_of(server, web) if e["reason"] == "AuditSync"]
    assert len(events) == 1, events
    event = events[0]
    assert event["type"] == "Normal"
    assert event["source"]["component"] == "gitmoor-server"
    for word in ("admin", "sync", "127.0.0.1", "accepted"):
        assert word in event["message"], event["message"]


async def test_a_refused_call_leaves_a_denied_audit_line_and_no_event(
    server: Server, web: str, caplog: pytest.LogCaptureFixture
) -> None:
    await server.add_user("ro", "readonly-password-1")
    await server.set_policy("g, ro, role:readonly\n")
    ro = server.bearer(await server.token("ro", "readonly-password-1"))
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)

    r = await ro.post(f"/api/v1/applications/{web}/sync", json={})

    assert r.status_code == 403, r.text
    denied = [line for line in audit_lines(caplog) if line["result"] == "denied"]
    assert len(denied) == 1, audit_lines(caplog)
    line = denied[0]
    assert line["who"] == "ro"
    assert line["action"] == "sync"
    assert line["address"] == "127.0.0.1"
    assert f"/api/v1/applications/{web}/sync" in line["message"]
    assert "permission denied" in line["message"]
    assert await _events_of(server, web) == []


async def test_a_call_without_credentials_is_not_an_audit_denial(
    server: Server, web: str, caplog: pytest.LogCaptureFixture
) -> None:
    """401 is answered before anyone is known: nothing to attribute, no audit line
    (the login limiter and its own audit lines cover guessing)."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    r = await server.anonymous().post(f"/api/v1/applications/{web}/sync", json={})
    assert r.status_code == 401
    assert audit_lines(caplog) == []
