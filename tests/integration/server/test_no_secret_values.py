"""No Secret value anywhere (issue 12, "Must show"): the guard itself, and a sweep
of every read of an app that holds a Secret.

The guard (``SecretGuard`` in conftest.py) runs under every server test; the
first tests here show that it sees a value where it can appear (a response, an
SSE message, a log line, an Event, base64 or plain), so that its silence in the
other tests means something. The sweep then calls every GET route of one app
from the OpenAPI document, with a Secret in the app whose value changed in git
(so the diff and the manifests have a Secret to show), and reads the stream:
the guard must stay silent.
"""

from __future__ import annotations

import base64
import logging
import secrets
from typing import TYPE_CHECKING

from gitmoor.engine import status_of
from gitmoor.kube import wait_for
from support.api_routes import API, fill_path, reads
from support.apps import configmap, dump, secret
from support.secret_values import SECRET_VALUE

if TYPE_CHECKING:
    from conftest import SecretGuard, Server
    from support.apps import AppEnv


def _probe_guard(server: Server, value: str) -> SecretGuard:
    """A second guard, looking for ``value``, wired as the fixture wires its own."""
    guard = type(server.guard)((value,))
    guard.namespaces.add(server.namespace)
    return guard


async def _web(server: Server, env: AppEnv, value: str) -> None:
    env.repo.commit({"app.yaml": dump(configmap("settings"), secret("creds", {"token": value}))})
    await env.create("web")
    result = await env.sync("web")
    assert result.ok, result.message

    async def synced() -> bool:
        app = server.state.apps.get("web")
        return app is not None and status_of(app).sync_status == "Synced"

    await wait_for(synced, within=15, what="web synced in the server's watch")


async def test_the_guard_sees_a_value_in_a_response_and_in_an_sse_message(
    server: Server, env: AppEnv
) -> None:
    await _web(server, env, SECRET_VALUE)
    # the repository URL is in the app's list entry and in its SSE message
    guard = _probe_guard(server, env.repo.url)
    client = server.anonymous(**guard.client_options({}))
    token = await server.token()
    client.headers["Authorization"] = f"Bearer {token}"
    r = await client.get(f"{API}/applications")
    assert r.status_code == 200
    assert guard.hits == [f"a test secret value in the response to GET {API}/applications (200)"]

    guard.hits.clear()
    async with client.stream("GET", f"{API}/stream/applications") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                break
    assert guard.hits == [
        f"a test secret value in the response to GET {API}/stream/applications (200)"
    ]


async def test_the_guard_sees_a_value_in_a_log_line_and_an_event_base64_or_not(
    server: Server,
) -> None:
    value = f"probe-{secrets.token_hex(8)}"
    guard = _probe_guard(server, value)
    guard.watch_loggers("")
    try:
        logging.getLogger("gitmoor.test").warning("event=probe data=%s", value)
        encoded = base64.b64encode(f"user:{value}".encode()).decode()
        logging.getLogger("gitmoor.test").warning("event=probe data=%s", encoded)
    finally:
        guard.unwatch_loggers("")
    assert len(guard.hits) == 2, guard.hits
    assert guard.hits[1].startswith("a test secret value (base64) in log record of gitmoor.test")

    guard.hits.clear()
    await server.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"probe.{secrets.token_hex(6)}", "namespace": server.namespace},
            "involvedObject": {"kind": "ConfigMap", "namespace": server.namespace, "name": "x"},
            "reason": "Probe",
            "message": f"leaked {value}",
            "type": "Normal",
            "source": {"component": "gitmoor-test"},
        }
    )
    await guard.scan_events(server.kube)
    assert len(guard.hits) == 1 and guard.hits[0].startswith("a test secret value in Event")


async def test_no_read_of_an_app_shows_its_secret_value(server: Server, env: AppEnv) -> None:
    """Every GET of the app, on a Secret whose value also changed in git since the
    sync: manifests, diff, tree, events, history, the list and the stream. The
    autouse guard fails the test on a hit; this test only makes the calls."""
    await _web(server, env, SECRET_VALUE)
    newer = f"{SECRET_VALUE}-rotated"
    server.guard.add(newer, "the rotated secret value")
    env.repo.commit({"app.yaml": dump(configmap("settings"), secret("creds", {"token": newer}))})
    admin = server.bearer(await server.token())
    doc = (await admin.get("/api/openapi.json")).json()
    query = {
        "kind": "Secret",
        "name": "creds",
        "version": "v1",
        "namespace": env.namespace,
        "pod": "no-such-pod",
    }
    called = []
    for route in reads(doc):
        if route.path.endswith("/stream/applications") or "pod" in route.required_query:
            continue
        if route.path.endswith("/rollout"):
            continue  # answers only for a Rollout the app holds: test_rollout_ui.py reads one
        of_app = route.path.startswith(f"{API}/applications/{{name}}")
        if route.path_params and not of_app:
            continue  # one account, project...: not where an app's Secret shows
        url = fill_path(route.path, {"name": "web"})
        params = {p: query[p] for p in route.query_params if p in query} if of_app else {}
        r = await admin.get(url, params=params)
        assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text[:200]}"
        called.append(route.path)
    assert f"{API}/applications/{{name}}/diff" in called
    assert f"{API}/applications/{{name}}/resource" in called
    r = await admin.get(f"{API}/applications/web/diff")
    assert any(i["kind"] == "Secret" for i in r.json()["items"]), r.json()
    async with admin.stream("GET", f"{API}/stream/applications") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:") and '"web"' in line:
                break
