"""A real git server over HTTP on loopback: `git http-backend` behind Basic auth.

The handler plays the web server's part of the CGI contract (as Apache or nginx
+ fcgiwrap would): it checks the Authorization header, then runs
`git http-backend` with the request in CGI variables and copies its output
back. `Git-Protocol` is forwarded as GIT_PROTOCOL only when `protocol_v2` is
set, so a test can also stand up a v0 server, which refuses to serve a commit
that is not a branch or tag tip.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

USER = "deployer"
PASSWORD = "correct-horse-battery-staple-42"


@dataclass
class GitHTTPServer:
    root: Path
    port: int = 0
    protocol_v2: bool = True
    requests: list[tuple[str, str, int]] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(server: GitHTTPServer) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, code: int, headers: list[tuple[str, str]], body: bytes) -> None:
            server.requests.append((self.command, self.path, code))
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            if self.headers.get("Authorization") != expected:
                self._reply(401, [("WWW-Authenticate", 'Basic realm="git"')], b"")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ["PATH"],
                "HOME": str(server.root),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": USER,
                "REMOTE_ADDR": "127.0.0.1",
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if server.protocol_v2 and self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            out = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            ).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            code, headers = 200, []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    code = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self._reply(code, headers, payload)

    return Handler
