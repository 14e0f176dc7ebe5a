"""What every page of the web UI shares: the templates, the session check, rendering.

Pages are server-rendered Jinja2 templates that extend ``base.html`` (blocks
``title``, ``head``, ``content``, ``scripts``); htmx swaps fragments of them.
A page needs a browser session (the cookie); without one the browser is sent
to ``/login?next=<this page>`` with a 303, and the login page sends it back.
An htmx request without a session gets 401 with ``HX-Redirect``, so htmx moves
the whole tab to the login page instead of swapping it into a fragment.

Every page gets ``user`` (the :class:`~gitmoor.server.auth.principal.Principal`),
``csrf`` (the session's CSRF token: ``base.html`` puts it in ``hx-headers`` on
``<body>``, so every htmx request carries ``X-CSRF-Token``), ``can(resource,
action, object)`` (the RBAC question, to show a write control only to who may
use it), ``static_url(path)`` (a URL with the file's content hash, so a browser
never runs yesterday's script against today's page) and ``active`` (the nav
entry to mark).
"""

from __future__ import annotations

import hashlib
import urllib.parse
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from gitmoor import __version__
from gitmoor.server.auth.sessions import Session
from gitmoor.server.deps import allowed, server_state, session_of

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"

#: pages must not be kept by the browser: one shows a user's data, and the back
#: button after a logout must not bring it back from the cache
NO_STORE = {"Cache-Control": "no-store"}


@cache
def _digest(path: str) -> str:
    try:
        return hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:10]
    except OSError:
        return __version__


def static_url(path: str) -> str:
    return f"/static/{path}?v={_digest(path)}"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.globals["version"] = __version__
    return env


templates = Jinja2Templates(env=_env())


def safe_next(value: str | None) -> str:
    """A path on this server to go back to after login; anything else (another
    host, ``//host``, a scheme, a backslash trick) becomes ``/applications``, so
    the login page is no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/applications"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/applications"
    return value


def login_url(request: Request) -> str:
    """The login page, to come back to this page; for an htmx request, to the page
    the browser shows (``HX-Current-URL``), not to the fragment it asked for."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    current = request.headers.get("hx-current-url")
    if request.headers.get("hx-request") and current:
        parts = urllib.parse.urlsplit(current)
        here = parts.path + (f"?{parts.query}" if parts.query else "")
    return "/login?" + urllib.parse.urlencode({"next": safe_next(here)})


async def page_session(request: Request) -> Session:
    """The browser session of a page request, or a redirect to the login page."""
    session = await session_of(request)
    if session is not None:
        return session
    target = login_url(request)
    if request.headers.get("hx-request"):
        raise HTTPException(401, "login required", headers={"HX-Redirect": target})
    raise HTTPException(303, "login required", headers={"Location": target})


#: a page route's parameter: the session, or the browser is sent to the login page
PageSession = Annotated[Session, Depends(page_session)]


def render(
    request: Request,
    template: str,
    session: Session | None,
    *,
    active: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with what every page needs (see the module docstring)."""
    state = server_state(request)
    who = session.principal if session is not None else None

    def can(resource: str, action: str, obj: str = "*") -> bool:
        return who is not None and allowed(state, who, resource, action, obj)

    response: HTMLResponse = templates.TemplateResponse(
        request,
        template,
        {
            "user": who,
            "csrf": session.csrf if session is not None else "",
            "can": can,
            "active": active,
            **context,
        },
        status_code=status_code,
        headers={**NO_STORE, **(headers or {})},
    )
    return response
