"""A webhook endpoint on loopback that keeps every notification body it gets:
what the notification tests read to see what left the controller."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[Any] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                bodies.append(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the bodies are what the test reads

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    """A Receiver serving until the block ends."""
    r = Receiver()
    thread = threading.Thread(target=r.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.httpd.shutdown()
        r.httpd.server_close()
        thread.join(timeout=5)
