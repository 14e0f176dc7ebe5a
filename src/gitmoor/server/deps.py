"""FastAPI dependencies every route uses: who is calling, CSRF, may they.

Authentication, in this order (the first that is present decides):

1. ``Authorization: Bearer TOKEN``: an API token (``gitmoor account
   generate-token``) or a session token (the value ``POST /api/v1/session``
   returns). Browsers never send this header on their own, so it needs no CSRF
   token.
2. The session cookie. A state-changing request (anything but GET, HEAD,
   OPTIONS) with the cookie must also carry the session's CSRF token, in the
   ``X-CSRF-Token`` header (htmx and the CLI) or a ``csrf_token`` form field,
   and must not come from another origin (``Origin``/``Sec-Fetch-Site``): the
   synchronizer-token pattern plus an origin check, as OWASP describes.

No credentials: 401 with ``WWW-Authenticate: Bearer``. Then :func:`authorize`
asks the RBAC policy, and 403 names what was refused. The caller is kept in
``request.state.principal``, so that a 403 after authentication (RBAC, CSRF)
leaves an audit line (``result=denied``, :func:`gitmoor.server.app.create_app`),
as Argo CD logs its "permission denied" answers.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request

from gitmoor.server.auth.principal import Principal
from gitmoor.server.auth.sessions import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Session
from gitmoor.server.redaction import note_app

if TYPE_CHECKING:
    from gitmoor.model.application import Application
    from gitmoor.server.state import ServerState

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.gitmoor
    return state


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def unauthenticated(detail: str = "authentication required") -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def same_origin(request: Request, state: ServerState) -> bool:
    """Is a cookie-carrying request from our own pages? ``Sec-Fetch-Site`` where the
    browser sends it, else ``Origin`` against the address the request came to and
    the configured URL."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-origin request; the CSRF token is still asked
    here = f"{request.url.scheme}://{request.url.netloc}"
    return origin in (here, state.url.rstrip("/"))


async def _csrf_ok(request: Request, session: Session) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    # Bytes: compare_digest raises TypeError on a non-ASCII str (a 500 for "é").
    return sent is not None and hmac.compare_digest(sent.encode(), session.csrf.encode())


async def session_of(request: Request) -> Session | None:
    """The browser session of this request (cookie), without any check of CSRF."""
    return server_state(request).sessions.get(request.cookies.get(SESSION_COOKIE))


async def current_principal(request: Request) -> Principal:
    state = server_state(request)
    token = bearer(request)
    if token is not None:
        session = state.sessions.get(token)
        if session is not None:
            request.state.principal = session.principal
            return session.principal
        principal = await state.accounts.verify_token(token)
        if principal is None and state.oidc is not None:
            # Argo CD takes the provider's ID tokens as bearer tokens too.
            principal = await state.oidc.verify_bearer(token)
        if principal is None:
            raise unauthenticated("the bearer token is not valid (expired, revoked or unknown)")
        request.state.principal = principal
        return principal
    session = await session_of(request)
    if session is None:
        raise unauthenticated()
    request.state.principal = session.principal
    if request.method not in SAFE_METHODS:
        if not same_origin(request, state):
            raise HTTPException(403, "cross-site request refused")
        if not await _csrf_ok(request, session):
            raise HTTPException(403, f"missing or wrong CSRF token (send the {CSRF_HEADER} header)")
    return session.principal


Caller = Annotated[Principal, Depends(current_principal)]
State = Annotated["ServerState", Depends(server_state)]


def allowed(state: ServerState, who: Principal, resource: str, action: str, obj: str) -> bool:
    return state.rbac.enforce(who.subjects, resource, action, obj)


def authorize(state: ServerState, who: Principal, resource: str, action: str, obj: str) -> None:
    if not allowed(state, who, resource, action, obj):
        raise HTTPException(403, f"permission denied: {resource}, {action}, {obj}")


def app_object(app: Application) -> str:
    """The RBAC object of an app: ``project/name``."""
    return f"{app.spec.project or 'default'}/{app.name}"


def visible_app(state: ServerState, who: Principal, name: str, action: str = "get") -> Application:
    """The app ``name`` if the caller may ``action`` it. A caller who may not read
    it gets 403 whether or not it exists (Argo CD answers the same), so names of
    other teams' apps do not leak; one who could read any app of that name gets
    404 for a missing one."""
    app = state.apps.get(name)
    if app is None:
        if allowed(state, who, "applications", "get", f"*/{name}"):
            raise HTTPException(404, f"application {name} not found")
        raise HTTPException(403, f"permission denied: applications, {action}, {name}")
    obj = app_object(app)
    if not allowed(state, who, "applications", "get", obj):
        raise HTTPException(403, f"permission denied: applications, {action}, {name}")
    authorize(state, who, "applications", action, obj)
    # An error this request ends with is scrubbed by this app's Redactors (issue 13).
    note_app(app)
    return app
