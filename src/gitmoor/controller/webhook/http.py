"""The route: ``POST /api/webhook``, with its size cap and per-repository rate limit.

Refreshes are rate-limited per repository (:mod:`~gitmoor.controller.ratelimit`,
a token bucket: ``burst`` at once, then one per ``interval`` seconds; 5 and
10 s by default). A push over the limit is not dropped: it is answered 202
``{"deferred": <seconds>}`` and refreshes its apps when the next token is
due, coalesced with every other push to that repository until then (one
refresh per ref, the latest push's data). 202 rather than 429: forges count
a 429 as a failed delivery and GitHub does not redeliver it, while the push
will be acted on.

Status codes: 200 ``{"refreshed": n}`` for a push, 202 ``{"deferred": s}`` for a
push over the repository's rate limit, 200 ``{"ignored": event}``
for a valid event that is not a push (Argo CD answers 400 "event not defined
to be parsed" there, which forges show as a failed delivery for an event the
user merely left ticked), 400 for an unknown provider, invalid JSON or a
payload without a ref or repository, 401 for a missing or wrong signature
(or no secret configured for the provider),
413 for a body over ``max_body`` (1 MiB by default; Argo CD's
``webhook.maxPayloadSizeMB`` defaults to 50), 503 when the secrets cannot be
read. Every rejection happens before ``on_push`` is called.

Logs are ``key=value`` and never contain a secret, a signature, the query
string (which may carry ``?secret=``) or request headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from gitmoor.controller.ratelimit import RefreshLimits, RepoRateLimiter
from gitmoor.controller.webhook.auth import WebhookSecrets, parse_push
from gitmoor.controller.webhook.match import repo_key, repo_keys
from gitmoor.controller.webhook.providers import WebhookRejected, event_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gitmoor.controller.webhook.providers import PushEvent

log = logging.getLogger("gitmoor.controller.webhook")

DEFAULT_MAX_BODY = 1 << 20
WEBHOOK_PATH = "/api/webhook"

_DESCRIPTION = """\
Push webhooks from GitHub, GitLab, Gitea/Forgejo and Bitbucket (Cloud and Server).
Point the forge's webhook at this URL with content type `application/json` and the
push event. The request is authenticated with the provider's secret when one is
configured (`webhook.<provider>.secret` in the gitmoor secret, Argo CD's keys):
GitHub `X-Hub-Signature-256`, Gitea/Forgejo `X-Gitea-Signature`/`X-Forgejo-Signature`,
GitLab `X-Gitlab-Token`, Bitbucket `X-Hub-Signature`, `?secret=` or `X-Hook-UUID`.
A provider with no secret is refused (401) unless the controller runs with
`--webhook-allow-unsigned`.
Applications whose `repoURL` names the pushed repository and whose `targetRevision`
is the pushed branch or tag (or `HEAD`, or a semver range the tag satisfies) are
refreshed at once instead of at the next poll. Refreshes are rate-limited per
repository: a push over the limit is answered 202 and refreshes its apps when the
limit allows, together with the other pushes to that repository until then.
"""


def _error(example: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"example": {"error": example}}},
    }


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": 'A push: `{"refreshed": <apps>}`; another event: `{"ignored": <event>}`.',
        "content": {"application/json": {"example": {"refreshed": 2}}},
    },
    202: {
        "description": "A push over the repository's rate limit: its refresh runs in "
        '`{"deferred": <seconds>}`, coalesced with other pushes to that repository.',
        "content": {"application/json": {"example": {"deferred": 7.5}}},
    },
    400: _error("body is not valid JSON", "Unknown provider, invalid JSON or payload."),
    401: _error(
        "signature mismatch", "Missing or wrong signature or token, or no secret configured."
    ),
    413: _error("body larger than 1048576 bytes", "Body over the size limit."),
    500: _error("refresh failed", "The refresh could not be requested."),
    503: _error("webhook secrets unavailable", "The secrets could not be read."),
}


class _Deferred:
    """Pushes over a repository's limit, one per ref, refreshed together when due."""

    #: distinct refs held per repository; more are dropped (logged): a forged
    #: flood of invented branch names cannot grow memory without bound
    MAX_REFS = 32

    def __init__(
        self, on_push: Callable[[PushEvent], Awaitable[int]], limiter: RepoRateLimiter
    ) -> None:
        self.on_push, self.limiter = on_push, limiter
        self.pending: dict[str, dict[tuple[str, str], PushEvent]] = {}
        self.due: dict[str, float] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def remaining(self, key: str) -> float:
        return max(0.0, self.due.get(key, 0.0) - asyncio.get_running_loop().time())

    def add(self, key: str, event: PushEvent, wait: float) -> None:
        refs = self.pending.get(key)
        if refs is None:
            refs = self.pending[key] = {}
            loop = asyncio.get_running_loop()
            self.due[key] = loop.time() + wait
            task = loop.create_task(self._fire(key, wait))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        ref = (event.ref_kind, event.ref)
        before = refs.get(ref)
        if before is None and len(refs) >= self.MAX_REFS:
            log.warning("event=webhook_deferred_dropped repo=%s ref=%s:%s", key, *ref)
            return
        if before is not None:
            # The latest push wins (its ``after``); a path list is kept only when
            # both list theirs, and the lane only when both were verified.
            paths = before.paths | event.paths if before.paths and event.paths else frozenset()
            event = dataclasses.replace(
                event, paths=paths, verified=before.verified and event.verified
            )
        refs[ref] = event

    async def _fire(self, key: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self.limiter.take(key, force=True)
        events = self.pending.pop(key, {})
        self.due.pop(key, None)
        total = 0
        for event in events.values():
            try:
                total += await self.on_push(event)
            except Exception:
                log.exception("event=webhook_refresh_failed repo=%s ref=%s", key, event.ref)
        log.info(
            "event=webhook_deferred_refresh repo=%s refs=%d refreshed=%d", key, len(events), total
        )


def webhook_router(
    on_push: Callable[[PushEvent], Awaitable[int]],
    secrets: Callable[[], Awaitable[WebhookSecrets]] | WebhookSecrets,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    allow_unsigned: bool = False,
    limits: RefreshLimits | None = None,
    limiter: RepoRateLimiter | None = None,
) -> APIRouter:
    """A router serving ``POST /api/webhook``.

    ``on_push`` gets each verified push and returns how many apps it
    refreshed; it runs before the response is sent and forges give up after
    about 10 s (GitHub), so it should enqueue refreshes, not run syncs.
    ``secrets`` may be a coroutine function, awaited on every request, so a
    rotated Secret takes effect without a restart (Argo CD re-reads
    argocd-secret the same way). The body is read as a stream and the request
    refused as soon as it passes ``max_body`` bytes, so an oversized body is
    never held in memory.

    ``allow_unsigned`` accepts requests of providers with no secret (see the
    module docstring); ``limits`` (or a ready ``limiter``, for tests with a
    clock of their own) sets the per-repository rate limit.
    """
    if max_body <= 0:
        raise ValueError("max_body must be positive")
    router = APIRouter(tags=["webhooks"])
    rate = limiter if limiter is not None else RepoRateLimiter(limits or RefreshLimits())
    deferred = _Deferred(on_push, rate)

    async def current_secrets() -> WebhookSecrets:
        if isinstance(secrets, WebhookSecrets):
            return secrets
        return await secrets()

    @router.post(
        WEBHOOK_PATH,
        summary="Receive a Git push webhook",
        description=_DESCRIPTION,
        responses=_RESPONSES,
        response_class=JSONResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "description": "The forge's push payload."}
                    }
                },
            }
        },
    )
    async def receive_webhook(request: Request) -> JSONResponse:
        remote = request.client.host if request.client else "-"
        try:
            body = await _read_capped(request, max_body)
            try:
                configured = await current_secrets()
            except Exception:
                log.exception("event=webhook_secrets_unavailable remote=%s", remote)
                return JSONResponse({"error": "webhook secrets unavailable"}, status_code=503)
            event = parse_push(
                request.headers,
                body,
                configured,
                query=request.query_params,
                allow_unsigned=allow_unsigned,
            )
        except WebhookRejected as err:
            log.warning(
                "event=webhook_rejected status=%d reason=%r event_type=%r remote=%s",
                err.status_code,
                err.reason,
                event_name(request.headers),
                remote,
            )
            return JSONResponse({"error": err.reason}, status_code=err.status_code)
        if event is None:
            name = event_name(request.headers)
            log.info("event=webhook_ignored event_type=%r remote=%s", name, remote)
            return JSONResponse({"ignored": name})
        key = repo_key(event)
        # A deferred refresh already waiting for this repository is joined even if
        # a token came back meanwhile, so a later push never overtakes an earlier one.
        joining = key in deferred.pending
        # Every repository the payload names pays a token, not only the first: a
        # forged payload that adds an invented URL beside the real one would
        # otherwise get a fresh bucket at each push while refreshing the real one.
        wait = (
            deferred.remaining(key)
            if joining
            else max([rate.take(k) for k in repo_keys(event)], default=0.0)
        )
        if joining or wait > 0:
            deferred.add(key, event, wait)
            log.info(
                "event=webhook_deferred provider=%s repo=%s ref=%s:%s verified=%s remote=%s",
                event.provider,
                key,
                event.ref_kind,
                event.ref,
                event.verified,
                remote,
            )
            return JSONResponse({"deferred": round(max(wait, 0.0), 1)}, status_code=202)
        try:
            refreshed = await on_push(event)
        except Exception:
            log.exception(
                "event=webhook_refresh_failed provider=%s ref=%s:%s",
                event.provider,
                event.ref_kind,
                event.ref,
            )
            # The cause stays in the log: the caller may be anyone.
            return JSONResponse({"error": "refresh failed"}, status_code=500)
        log.info(
            "event=webhook_push provider=%s repo=%s ref=%s:%s after=%s verified=%s refreshed=%d "
            "remote=%s",
            event.provider,
            ",".join(sorted(event.repo_urls)),
            event.ref_kind,
            event.ref,
            event.after or "-",
            event.verified,
            refreshed,
            remote,
        )
        return JSONResponse({"refreshed": refreshed})

    return router


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``limit`` bytes.

    ``Content-Length`` is checked first (no byte is read for a declared
    oversize), then the stream itself, since a chunked body declares nothing.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise WebhookRejected(400, "invalid Content-Length")
        if int(declared) > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise WebhookRejected(413, f"body larger than {limit} bytes")
    except ClientDisconnect as err:
        raise WebhookRejected(400, "client disconnected before the body was complete") from err
    return bytes(body)
