"""Live updates: a server-sent-events stream of application changes.

Fed by the server's one Application watch (:class:`~gitmoor.server.state.AppIndex`):
every client subscribes to it and gets a summary of each app that changed and
that it may see, so 50 tabs cost 50 small queues and no extra request to the
API server. Changes are coalesced per app: a client that reads slowly gets the
latest summary of each app once, not every intermediate write.

Messages (``event:`` names):

- ``application``: an :class:`~gitmoor.server.api.schemas.AppSummary` as JSON;
  first one per visible app (the snapshot), then one per change;
- ``deleted``: ``{"name": ...}`` for an app that is gone or no longer visible;
- ``logout``: the session ended (logout, or a password change) or the API token
  was revoked or expired; the stream closes.

A comment line every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from gitmoor.server.deps import Caller, State, allowed, app_object

if TYPE_CHECKING:
    from gitmoor.server.auth.principal import Principal
    from gitmoor.server.state import ServerState

router = APIRouter(tags=["applications"])

KEEPALIVE = 15.0
#: how often a quiet stream checks that its session still stands (logout ends it)
TICK = 2.0


def _event(name: str, data: object) -> str:
    return _message(name, json.dumps(data, separators=(",", ":")))


def _message(name: str, data: str) -> str:
    """One SSE message of already encoded JSON ``data``."""
    return f"event: {name}\ndata: {data}\n\n"


def _still_valid(state: ServerState, who: Principal) -> bool:
    """Does what opened this stream still stand? A session: not logged out. An
    API token: not revoked or expired, its account still enabled with apiKey, as
    ``settings.accounts.verify_token`` decides for a new request; a revocation
    is in force on open streams too, within a TICK."""
    if who.session_id:
        return state.sessions.alive(who.session_id)
    if who.via == "token":
        account = state.accounts.get(who.name)
        now = time.time()
        return (
            account is not None
            and account.can_use_tokens
            and any(t.id == who.token_id and not t.expired(now) for t in account.tokens)
        )
    return True


@router.get(
    "/stream/applications",
    summary="Server-sent events: application summaries as they change",
    description="`text/event-stream`. Events `application` (an AppSummary), `deleted` "
    "({name}) and `logout`. With `name`, only that app. RBAC filters every message.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_applications(
    request: Request,
    who: Caller,
    state: State,
    name: Annotated[list[str] | None, Query()] = None,
) -> StreamingResponse:
    wanted = set(name or ())

    def visible(app_name: str) -> tuple[bool, str]:
        app = state.apps.get(app_name)
        if app is None or (wanted and app_name not in wanted):
            return False, ""
        if not allowed(state, who, "applications", "get", app_object(app)):
            return False, ""
        return True, state.apps.summary_json(app)

    async def events() -> AsyncIterator[str]:
        sent: set[str] = set()
        with state.apps.subscribe() as sub:
            yield "retry: 2000\n\n"
            for app in state.apps.all():
                ok, data = visible(app.name)
                if ok:
                    sent.add(app.name)
                    yield _message("application", data)
            idle = 0.0
            while True:
                if not _still_valid(state, who):
                    yield _event("logout", {})
                    return
                try:
                    await asyncio.wait_for(sub.wake.wait(), TICK)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    idle += TICK
                    if idle >= KEEPALIVE:
                        idle = 0.0
                        yield ": keepalive\n\n"
                    continue
                for app_name in sorted(sub.take()):
                    ok, data = visible(app_name)
                    if ok:
                        sent.add(app_name)
                        yield _message("application", data)
                    elif app_name in sent:
                        sent.discard(app_name)
                        yield _event("deleted", {"name": app_name})

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
