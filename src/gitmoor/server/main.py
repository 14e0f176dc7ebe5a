"""``gitmoor server``: the API and UI under uvicorn."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import uvicorn

from gitmoor.secrets.redact import install_log_filter
from gitmoor.server.app import create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.server")

#: the loggers whose handlers write the server's log: the root's and uvicorn's,
#: which do not propagate
_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host or "127.0.0.1", int(port)


def uvicorn_config(
    app: FastAPI,
    host: str,
    port: int,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    trusted_proxies: str = "",
) -> uvicorn.Config:
    """How the server runs under uvicorn (the tests run it the same way)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # X-Forwarded-For only from the proxies an operator names: uvicorn trusts
        # 127.0.0.1 by default, which would let any local client (a `kubectl
        # port-forward`) choose the address the audit and the login limit see.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
    )


async def serve(
    kube: KubeClient,
    namespace: str,
    *,
    listen: str = "127.0.0.1:8080",
    tls_cert: str | None = None,
    tls_key: str | None = None,
    url: str | None = None,
    trusted_proxies: str = "",
) -> None:
    host, port = parse_listen(listen)
    scheme = "https" if tls_cert else "http"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    url = url or f"{scheme}://{shown}:{port}"
    # Secure cookies under TLS, ours or a proxy's in front (an https --url).
    app = create_app(
        kube, namespace, url=url, secure_cookies=bool(tls_cert) or url.startswith("https://")
    )
    config = uvicorn_config(
        app, host, port, tls_cert=tls_cert, tls_key=tls_key, trusted_proxies=trusted_proxies
    )
    # Every log line scrubbed of the values the Redactors learned (issue 13), set
    # after uvicorn.Config, which gives uvicorn's loggers handlers of their own.
    for name in _LOGGERS:
        install_log_filter(logging.getLogger(name))
    log.info("event=server_listening address=%s://%s:%d", scheme, host, port)
    await uvicorn.Server(config).serve()
