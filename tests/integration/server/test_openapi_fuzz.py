"""Property-based run of the OpenAPI document with Schemathesis (issue 12, "Must
show: Schemathesis ... finds no 5xx and no response that breaks its schema").

Schemathesis reads ``/api/openapi.json`` from the running server and generates
requests for every operation from its schemas, as an admin (a bearer token), so
every route runs its real code, state-changing ones included. The server works
on this test's own namespace, which holds only this test's app, and no
controller runs: a sync or an app created here is only written, never applied.
Each response must not be a 5xx, and its status, content type and body must be
ones the document declares for the route (``not_a_server_error``,
``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance``): a client generated from the document can
handle every answer.

The run is bounded (a few examples per operation, derandomized so that a
failure reproduces) and happens in a worker thread: Schemathesis's client is
synchronous, and the server runs in this test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gitmoor.kube import wait_for
from support.apps import configmap, dump, secret
from support.secret_values import SECRET_VALUE

if TYPE_CHECKING:
    from conftest import SecretGuard, Server
    from support.apps import AppEnv

#: examples per operation: about 35 operations x this, in about a minute here
MAX_EXAMPLES = 60

#: no 5xx; a body, a status and a content type the document declares for the route
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]

#: (method, path) left out, and why
EXCLUDED = {
    ("DELETE", "/api/v1/session"): "ends the session whose token the run uses",
    ("GET", "/api/v1/stream/applications"): "an endless text/event-stream, not a JSON "
    "answer (test_authz.py and test_apps_api.py read it)",
}


def _fuzz(url: str, doc: dict[str, Any], token: str, guard: SecretGuard) -> list[str]:
    """Run every operation; return one line per failing operation (the failure
    Schemathesis found, shrunk to its smallest input)."""
    schema = schemathesis.openapi.from_dict(doc)
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in EXCLUDED or not operation.path.startswith("/api/"):
            continue
        # Never let the server reach out: a cluster is registered unverified. Never
        # ask for values in the clear either (showSecrets; test_server_redaction.py
        # covers who may): the guard would rightly find them in the answer.
        pinned = {"verify": False, "showSecrets": False}
        params = {p.name for p in operation.iter_parameters()}
        query = {k: v for k, v in pinned.items() if k in params} or None
        # Valid requests, and requests that break the schema (the server must
        # answer those with a 4xx, never a 5xx).
        strategies = [
            operation.as_strategy(query=query),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        ]
        names = [p.name for p in operation.iter_parameters() if p.location == "path"]
        if names == ["name"] and operation.method.upper() != "DELETE":
            # Examples on the real app too, so its routes run past the 404.
            strategies.append(operation.as_strategy(query=query, path_parameters={"name": "web"}))
        strategy = st.one_of(strategies)

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=url, headers=headers, timeout=30)
            guard.scan(response.content, f"the response to {case.method} {case.formatted_path}")
            case.validate_response(response, checks=CHECKS)

        started, before = time.monotonic(), calls
        try:
            run()
        # every operation's failure is reported, not the first only (Schemathesis
        # raises a BaseExceptionGroup of its failures)
        except (Exception, BaseExceptionGroup) as e:
            failures.append(f"{key[0]} {key[1]}: {e}")
        seconds = time.monotonic() - started
        print(f"fuzz {key[0]} {key[1]}: {calls - before} calls, {seconds:.1f} s")
    assert calls > 100, f"only {calls} calls made"
    return failures


async def test_openapi_document_holds_under_generated_requests(
    server: Server, env: AppEnv, secret_guard: SecretGuard
) -> None:
    env.repo.commit(
        {"app.yaml": dump(configmap("settings"), secret("creds", {"password": SECRET_VALUE}))}
    )
    await env.create("web")
    result = await env.sync("web")
    assert result.ok, result.message

    async def seen() -> bool:
        return server.state.apps.get("web") is not None

    await wait_for(seen, within=15, what="web in the server's watch")
    token = await server.token()
    doc = (await server.anonymous().get("/api/openapi.json")).json()

    failures = await asyncio.to_thread(_fuzz, server.url, doc, token, secret_guard)

    assert not failures, "\n\n".join(failures)
