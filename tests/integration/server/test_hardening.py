"""What every answer of the server carries, and what it does not believe."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from conftest import Server


async def test_every_answer_carries_the_security_headers(server: Server) -> None:
    anon = server.anonymous()
    for path in ("/login", "/api/v1/applications", "/api/openapi.json", "/static/app.css"):
        r = await anon.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path


async def test_a_forwarded_for_header_is_not_believed_by_default(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    # Without --trusted-proxy, X-Forwarded-For from a local client (a port-forward)
    # must not choose the address the audit records and the login limit counts.
    anon = server.anonymous(headers={"X-Forwarded-For": "203.0.113.9"})
    with caplog.at_level(logging.INFO, logger="gitmoor.server.audit"):
        r = await anon.post("/api/v1/session", json={"username": "admin", "password": "wrong"})
    assert r.status_code == 401
    lines = [rec.getMessage() for rec in caplog.records if "event=audit" in rec.getMessage()]
    assert lines and all("203.0.113.9" not in line for line in lines)
    assert any("address=127.0.0.1" in line for line in lines)
