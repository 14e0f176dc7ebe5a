"""`gitmoor server`: the REST API and the web UI (fastapi and uvicorn are imported
when the command runs, not when the CLI starts)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, fail, run

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient


def server(
    listen: Annotated[
        str, typer.Option(help="address to serve the API and UI on (HOST:PORT)")
    ] = "127.0.0.1:8080",
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="serve HTTPS with this PEM certificate (chain)"),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="the private key of --tls-cert (PEM)")
    ] = None,
    url: Annotated[
        str,
        typer.Option(
            help="the address users reach the server at, when it differs from --listen "
            "(behind a proxy): OIDC redirects and the same-origin check use it"
        ),
    ] = "",
    trusted_proxy: Annotated[
        str,
        typer.Option(
            "--trusted-proxy",
            metavar="ADDRESSES",
            help="comma-separated addresses or CIDRs of reverse proxies whose "
            "X-Forwarded-For/-Proto are believed (the audit's address and the login limit "
            "use it); empty: none, the connection's own address counts",
        ),
    ] = "",
    allow_file_repos: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-file-repos",
            metavar="DIR",
            help="allow file:// repositories under DIR for diffs (as the controller's flag)",
        ),
    ] = None,
) -> None:
    """Serve the REST API (/api/v1, OpenAPI at /api/openapi.json), the web UI (/),
    /healthz and /readyz. Sign in with a local account (`admin`: its password is
    printed once by `gitmoor install`; `gitmoor admin reset-password` sets a new one),
    an API token, or OIDC when gitmoor-cm configures it. Who may do what is the RBAC
    policy in the gitmoor-rbac-cm ConfigMap."""
    from gitmoor.server.main import serve
    from gitmoor.source import allow_file_repos as allow_roots

    if (tls_cert is None) != (tls_key is None):
        raise fail("--tls-cert and --tls-key go together")
    logging.getLogger().setLevel(logging.INFO)
    allow_roots(allow_file_repos or ())

    async def go(kube: KubeClient) -> None:
        await serve(
            kube,
            State.namespace,
            listen=listen,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
            url=url or None,
            trusted_proxies=trusted_proxy,
        )

    with contextlib.suppress(KeyboardInterrupt):
        run(go)
