"""A cap on the size of request bodies.

FastAPI reads and decodes a route's whole body before it runs the route's
dependencies, authentication included: without a cap, an anonymous client could
make the server hold a body of any size in memory just to answer 401. No body
the API takes comes near the cap: every one becomes (part of) a Kubernetes
object, and the kube-apiserver itself refuses request bodies over 3 MiB
(``MaxRequestBodyBytes``), the figure used here.

A declared ``Content-Length`` over the cap is answered 413 at once; a body sent
without one (chunked) is counted as it is read and refused with a 413 when it
passes the cap, before the rest is read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: the kube-apiserver's own limit on a request body
MAX_BODY_BYTES = 3 * 1024 * 1024


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of request body per request."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.strip().isdigit() and int(declared) > self.limit:
            body = json.dumps({"detail": _too_large(self.limit)}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raised inside the route's read of the body, so the app's
                    # exception handlers answer it like any HTTPException.
                    raise HTTPException(413, _too_large(self.limit))
            return message

        await self.app(scope, counted, send)
