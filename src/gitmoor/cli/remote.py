"""Talking to a ``gitmoor server`` from the CLI: the stored login and an API client.

``gitmoor login SERVER`` writes the server's address and a session token to
``$XDG_CONFIG_HOME/gitmoor/config`` (default ``~/.config/gitmoor/config``, mode
0600, as ``argocd login`` keeps ``~/.config/argocd/config``). Commands that go
through the API read it with :func:`load_config`; when there is none (None),
they keep using the kubeconfig, the default.

The file is JSON (a YAML reader reads it too, and a hand-written YAML file is
accepted)::

    {"server": "https://gitmoor.example", "token": "...", "username": "alice",
     "insecure": false}

For a command module (``gitmoor app …`` through the server, for example)::

    from gitmoor.cli.remote import ApiClient, load_config

    config = load_config()
    if config is not None:
        with ApiClient(config) as api:
            apps = api.get("/applications", params={"project": "team-a"})["items"]
            api.post("/applications/web/sync", json={"prune": True})

Paths are relative to ``/api/v1`` (a path that starts with ``/api/`` is taken as
it is). Every failure is a :class:`~gitmoor.model.GitmoorError` whose message
is the server's ``detail``, classified so the caller knows what to do next::

    GitmoorError
    ├── UserInputError
    │   └── ServerInputError      400, 404, 409, 422: the request is wrong
    ├── PermanentError
    │   └── ServerRefusedError    401, 403 (``status`` tells which)
    │       └── NotLoggedInError  401, or no stored login: run ``gitmoor login``
    └── RetryableError
        └── ServerUnavailableError  unreachable, 429 (``retry_after``), 5xx

This module sits beside ``_common`` and imports no command module; httpx is
imported when a client is made, so ``gitmoor --help`` does not load it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from gitmoor.model import PermanentError, RetryableError, UserInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

API_PREFIX = "/api/v1"


@dataclass
class RemoteConfig:
    #: the server's base URL, e.g. ``https://gitmoor.example``
    server: str
    #: the session (or API) token sent as ``Authorization: Bearer``; "" after logout
    token: str = ""
    username: str = ""
    #: skip TLS certificate checks (a self-signed test server)
    insecure: bool = False


# ---------------------------------------------------------------------- errors


class ServerInputError(UserInputError):
    """The server refused the request as wrong (400, 404, 409, 422)."""

    def __init__(self, message: str, *, status: int, concerns: str | None = None) -> None:
        super().__init__(message, concerns=concerns)
        self.status = status


class ServerRefusedError(PermanentError):
    """Not allowed (403), or not authenticated (401, see :class:`NotLoggedInError`)."""

    def __init__(self, message: str, *, status: int, concerns: str | None = None) -> None:
        super().__init__(message, concerns=concerns)
        self.status = status


class NotLoggedInError(ServerRefusedError):
    """No stored login, or the server no longer accepts it."""


class ServerUnavailableError(RetryableError):
    """The server could not be reached, is limiting us (429) or failed (5xx)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        concerns: str | None = None,
        retry_after: float = 5.0,
    ) -> None:
        super().__init__(message, concerns=concerns, retry_after=retry_after)
        self.status = status


# ---------------------------------------------------------------------- the file


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gitmoor" / "config"


def normalize_server(server: str) -> str:
    """``host:port`` means https, as ``argocd login`` assumes; a scheme given is kept."""
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "https://" + server
    if not server.startswith(("http://", "https://")):
        raise UserInputError(f"server {server!r} must be an http:// or https:// address")
    return server


def load_config(path: Path | None = None) -> RemoteConfig | None:
    """The stored login, or None when no server is configured."""
    path = path or config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UserInputError(f"cannot read {path}: {e.strerror}", concerns=str(path)) from e
    try:
        doc = json.loads(text)
    except ValueError:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UserInputError(f"{path} is neither JSON nor YAML", concerns=str(path)) from e
    if not isinstance(doc, dict) or not doc.get("server"):
        return None
    return RemoteConfig(
        server=normalize_server(str(doc["server"])),
        token=str(doc.get("token") or ""),
        username=str(doc.get("username") or ""),
        insecure=bool(doc.get("insecure", False)),
    )


def save_config(config: RemoteConfig, path: Path | None = None) -> Path:
    """Write the login, readable by its owner only (it holds a credential). The
    file is written whole under a temporary name and renamed, so a reader never
    sees half of it, and it is never world-readable, not even for a moment."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            doc = {k: v for k, v in asdict(config).items() if v not in ("", None)}
            json.dump(doc, f, indent=2)
            f.write("\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path


# ---------------------------------------------------------------------- the client


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:300] or r.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's validation errors
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(x) for x in d.get("loc", ()) if x != "body")
                parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", "")))
        return "; ".join(parts) or r.reason_phrase
    return str(detail) if detail else r.reason_phrase


class ApiClient:
    """A synchronous client of the gitmoor API for one command's life."""

    def __init__(self, config: RemoteConfig, *, timeout: float = 30.0) -> None:
        import httpx

        self.config = config
        headers = {"Accept": "application/json", "User-Agent": "gitmoor-cli"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.Client(
            base_url=config.server,
            headers=headers,
            timeout=timeout,
            verify=not config.insecure,
        )

    @classmethod
    def logged_in(cls) -> ApiClient:
        """A client with the stored login; NotLoggedInError when there is none."""
        config = load_config()
        if config is None or not config.token:
            raise NotLoggedInError(
                "not logged in to a gitmoor server: run `gitmoor login SERVER`", status=401
            )
        return cls(config)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @staticmethod
    def url_of(path: str) -> str:
        return path if path.startswith("/api/") else API_PREFIX + "/" + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one); errors as described above."""
        import httpx

        url = self.url_of(path)
        try:
            r = self._http.request(method, url, json=json, params=params)
        except httpx.TransportError as e:
            raise ServerUnavailableError(
                f"cannot reach {self.config.server}: {type(e).__name__}: {e}",
                concerns=self.config.server,
            ) from e
        if r.status_code < 300:
            return r.json() if r.content else None
        self._raise(r, f"{method} {url}")
        return None  # unreachable: _raise always raises

    def _raise(self, r: httpx.Response, what: str) -> None:
        detail, code = _detail(r), r.status_code
        if code == 401 and not self.config.token:
            raise NotLoggedInError(detail, status=code)  # a login refused: say only why
        if code == 401:
            raise NotLoggedInError(
                f"{detail}: the server no longer accepts the stored login "
                "(logged out, password changed or token revoked); run `gitmoor login "
                f"{self.config.server}`",
                status=code,
            )
        if code == 403:
            raise ServerRefusedError(detail, status=code, concerns=what)
        if code == 429 or code >= 500:
            try:
                wait = float(r.headers.get("retry-after", "5"))
            except ValueError:
                wait = 5.0
            raise ServerUnavailableError(detail, status=code, concerns=what, retry_after=wait)
        raise ServerInputError(detail, status=code, concerns=what)

    def get(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str, json: Any = None) -> Any:
        return self.request("DELETE", path, json=json)

    def stream_lines(self, path: str, *, params: dict[str, Any] | None = None) -> Iterator[str]:
        """The lines of a streamed answer (pod logs with ``follow``, the SSE stream),
        as they arrive; no read timeout, since a quiet stream is not a dead one."""
        import httpx

        url = self.url_of(path)
        timeout = httpx.Timeout(30.0, read=None)
        try:
            with self._http.stream("GET", url, params=params, timeout=timeout) as r:
                if r.status_code >= 300:
                    r.read()
                    self._raise(r, f"GET {url}")
                yield from r.iter_lines()
        except httpx.TransportError as e:
            raise ServerUnavailableError(
                f"the stream from {self.config.server} broke: {type(e).__name__}",
                concerns=self.config.server,
            ) from e
