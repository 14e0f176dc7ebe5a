"""The bare client: the reference that a benchmark's write figures are divided by.

A minimal server-side-apply writer and nothing more: httpx ``AsyncClient(http2=True)``,
one connection, a bounded number of requests in flight (shared/ARCHITECTURE.md,
"Talking to the API server fast": one HTTP/2 connection with 32-64 requests in
flight is the practical limit of this machine). It does no discovery, no dry-run,
no read-back and writes no status, so a ratio to it measures everything gitmoor
adds on top of the writes themselves.

Only what a benchmark writes is mapped to a path (core and apps kinds below); the
bench modules import it as ``bare`` (they run as scripts, so ``bench/`` is first
on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from gitmoor.kube import ClusterConfig

#: kind -> (plural, namespaced) for the kinds the benchmarks write
_RESOURCES = {
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Namespace": ("namespaces", False),
    "Deployment": ("deployments", True),
}


def object_path(obj: dict[str, Any]) -> str:
    """The object's URL path; a kind the table above lacks is a bench bug."""
    plural, namespaced = _RESOURCES[obj["kind"]]
    api_version = obj["apiVersion"]
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    meta = obj["metadata"]
    if namespaced:
        base += f"/namespaces/{meta['namespace']}"
    return f"{base}/{plural}/{meta['name']}"


@asynccontextmanager
async def bare_client(cfg: ClusterConfig) -> AsyncIterator[httpx.AsyncClient]:
    """One HTTP/2 connection to the cluster, already open (TLS paid before any timing,
    as a long-lived client such as the controller has it)."""
    headers = {"Accept": "application/json"}
    if cfg.token:
        headers["Authorization"] = f"Bearer {cfg.token}"
    async with httpx.AsyncClient(
        base_url=cfg.server,
        http2=True,
        verify=cfg.ssl_context(),
        headers=headers,
        limits=httpx.Limits(max_connections=1),
        timeout=60,
    ) as http:
        warm = await http.get("/version")
        warm.raise_for_status()
        if warm.http_version != "HTTP/2":
            raise RuntimeError(f"bare client speaks {warm.http_version}, not HTTP/2")
        yield http


async def apply_all(
    http: httpx.AsyncClient,
    objects: Sequence[dict[str, Any]],
    *,
    in_flight: int,
    field_manager: str = "bench",
) -> float:
    """Server-side apply of every object, ``in_flight`` at a time; seconds taken.

    Any answer but 2xx fails the benchmark: a baseline that skipped objects would
    flatter every ratio computed from it.
    """
    sem = asyncio.Semaphore(in_flight)
    params = {"fieldManager": field_manager}
    ctype = {"Content-Type": "application/apply-patch+yaml"}

    async def one(obj: dict[str, Any]) -> None:
        path = object_path(obj)
        body = json.dumps(obj, separators=(",", ":")).encode()
        async with sem:
            r = await http.patch(path, params=params, content=body, headers=ctype)
        if r.status_code >= 300:
            raise RuntimeError(f"bare apply of {path}: {r.status_code} {r.text[:200]}")

    t0 = time.monotonic()
    await asyncio.gather(*(one(o) for o in objects))
    return time.monotonic() - t0
