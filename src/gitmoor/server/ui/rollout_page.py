"""The page of one Rollout of an app: what ``gitmoor rollout get`` shows, with
the plugin's promote, abort and retry as buttons.

The page is drawn from the API route's answer
(:func:`gitmoor.server.api.rollouts.get_rollout_view`), so it shows what the API
answers and is checked by RBAC exactly as that route is; its buttons call
``POST /api/v1/applications/{name}/rollout`` with the session's CSRF token
(``static/rollout-page.js``), and are shown only to a caller who may sync the
app. The view part reloads every few seconds while the page is open, as the
plugin's ``get --watch`` keeps redrawing, so a promote is seen taking effect.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from gitmoor.model import GitmoorError
from gitmoor.server.api import rollouts
from gitmoor.server.deps import app_object, server_state, visible_app
from gitmoor.server.redaction import scrub_request
from gitmoor.server.ui.pages import PageSession, render

router = APIRouter(include_in_schema=False)


async def _context(
    request: Request, session: PageSession, name: str, namespace: str, rollout: str
) -> dict[str, Any]:
    state = server_state(request)
    view = await rollouts.get_rollout_view(name, session.principal, state, namespace, rollout)
    app = visible_app(state, session.principal, name)
    return {"app_name": name, "rbac_object": app_object(app), "ro": view}


def _error(request: Request, session: PageSession, e: Exception, template: str) -> HTMLResponse:
    status = e.status_code if isinstance(e, HTTPException) else 502
    detail = str(e.detail) if isinstance(e, HTTPException) else str(e)
    return render(
        request, template, session, status_code=status, status=status, detail=scrub_request(detail)
    )


@router.get("/applications/{name}/rollouts/{namespace}/{rollout}", response_class=HTMLResponse)
async def rollout_page(
    name: str, namespace: str, rollout: str, request: Request, session: PageSession
) -> HTMLResponse:
    try:
        ctx = await _context(request, session, name, namespace, rollout)
    except (HTTPException, GitmoorError) as e:
        return _error(request, session, e, "app/error.html")
    return render(request, "rollout.html", session, active="applications", **ctx)


@router.get(
    "/applications/{name}/rollouts/{namespace}/{rollout}/part/view", response_class=HTMLResponse
)
async def rollout_view_part(
    name: str, namespace: str, rollout: str, request: Request, session: PageSession
) -> HTMLResponse:
    try:
        ctx = await _context(request, session, name, namespace, rollout)
    except (HTTPException, GitmoorError) as e:
        return _error(request, session, e, "app/message.html")
    return render(request, "rollout/view.html", session, **ctx)
