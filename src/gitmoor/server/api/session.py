"""Login, logout and "who am I" (Argo CD's ``SessionService``: ``POST
/api/v1/session``, ``DELETE /api/v1/session``, ``GET /api/v1/session/userinfo``).

A login answers with the session token twice: in the ``gitmoor.session`` cookie
(HttpOnly, SameSite=Lax, Secure under TLS) for browsers, and in the body for
scripts and the CLI, which send it as ``Authorization: Bearer``. The CSRF token
in the body is what a browser page sends back in ``X-CSRF-Token``.

Failed logins are limited per account and per client address
(:mod:`gitmoor.server.auth.ratelimit`); the limit is checked before the
password, and the 429 says when to come back in ``Retry-After``. Unknown user
and wrong password get one and the same 401, so the API does not tell which
account names exist.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gitmoor.server.auth.sessions import SESSION_COOKIE, set_session_cookie
from gitmoor.server.deps import (
    Caller,
    State,
    client_address,
    same_origin,
    session_of,
)

if TYPE_CHECKING:
    from gitmoor.server.auth.principal import Principal
    from gitmoor.server.state import ServerState

router = APIRouter(tags=["session"])

BAD_CREDENTIALS = "invalid username or password"


class Problem(BaseModel):
    """What an error answer carries (FastAPI's ``HTTPException`` body)."""

    detail: str


def errors(**described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers: ``errors(e401="...")`` -> ``{401: ...}``."""
    return {int(k[1:]): {"model": Problem, "description": v} for k, v in described.items()}


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=253)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    token: str = Field(
        description="the session token: send it as `Authorization: Bearer TOKEN` "
        "(the same value is set as the session cookie)"
    )
    csrf: str = Field(
        description="send it in `X-CSRF-Token` with cookie requests that change state"
    )
    username: str


class LogoutOut(BaseModel):
    message: str


class UserInfo(BaseModel):
    loggedIn: bool = True
    username: str
    groups: list[str]
    roles: list[str] = Field(
        description="the RBAC roles the user is in, directly or through a group"
    )
    via: str = Field(description="session, token or oidc")
    csrf: str | None = Field(
        default=None, description="the CSRF token of the cookie session this request came with"
    )


_ERRORS = errors(
    e401="wrong username or password",
    e403="a login from another site (CSRF)",
    e422="the body is not a username and a password",
    e429="too many failed logins; see Retry-After",
)

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Credentials.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": Credentials.model_json_schema()},
        },
    }
}


def loggable(name: str) -> str:
    """A name someone typed, fit for a key=value log line: a login failure logs
    what the client sent, which must not be able to forge a second line or field."""
    return "".join(c if c.isalnum() or c in "@._-" else "?" for c in name[:64]) or "-"


async def _credentials(request: Request) -> Credentials:
    """The body as JSON (scripts, the CLI) or as form fields (a plain HTML form)."""
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            return Credentials.model_validate(
                {"username": fields.get("username", ""), "password": fields.get("password", "")}
            )
        return Credentials.model_validate(json.loads(await request.body() or b"null"))
    except (ValueError, ValidationError, RecursionError) as e:
        # RecursionError: json.loads on a deeply nested body ("[[[[..."), which
        # an anonymous caller could otherwise turn into a 500.
        raise HTTPException(
            422, "send a JSON object (or form fields) with a username and a password"
        ) from e


@router.post(
    "/session",
    response_model=SessionOut,
    summary="Log in with a local account",
    description=(
        "Takes `{username, password}` as JSON or form fields. Sets the session cookie and "
        "returns the session token (usable as a bearer token) and the CSRF token. Failed "
        "logins are limited per account and per client address: 429 with `Retry-After`."
    ),
    responses=_ERRORS,
    openapi_extra=_BODY,
)
async def login(
    request: Request,
    response: Response,
    state: State,
) -> SessionOut:
    address = client_address(request)
    if not same_origin(request, state):
        # A login CSRF would sign the victim's browser into the attacker's account.
        await state.audit.record(
            who="-",
            action="login",
            target=None,
            result="refused",
            address=address,
            message="cross-site login",
        )
        raise HTTPException(403, "cross-site request refused")
    creds = await _credentials(request)
    # Counted as a failure now, taken back on success (LoginLimiter.begin):
    # parallel guesses cannot all pass the check before the first is counted.
    wait = state.limiter.begin(creds.username, address)
    if wait is not None:
        await state.audit.record(
            who=loggable(creds.username),
            action="login",
            target=None,
            result="limited",
            address=address,
        )
        raise HTTPException(
            429,
            "too many failed logins; try again later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    principal = await state.accounts.login(creds.username, creds.password)
    if principal is None:
        await state.audit.record(
            who=loggable(creds.username),
            action="login",
            target=None,
            result="failure",
            address=address,
        )
        raise HTTPException(401, BAD_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"})
    state.limiter.succeeded(creds.username, address, begun=True)
    session, token = state.sessions.create(principal)
    set_session_cookie(response, token, secure=state.secure_cookies)
    await state.audit.record(
        who=principal.name,
        action="login",
        target=None,
        result="success",
        address=address,
    )
    return SessionOut(token=token, csrf=session.csrf, username=principal.name)


@router.delete(
    "/session",
    response_model=LogoutOut,
    summary="Log out",
    description=(
        "Ends the session server-side, so its cookie and session token stop working at "
        "once, and clears the cookie. API tokens are revoked through the accounts API instead."
    ),
    responses=errors(
        e400="the caller used an API token, not a session",
        e401="not logged in",
        e403="a cookie request without its CSRF token, or from another site",
    ),
)
async def logout(
    request: Request,
    response: Response,
    who: Caller,
    state: State,
) -> LogoutOut:
    if not who.session_id:
        raise HTTPException(
            400, "this request carries no session (an API token is revoked instead)"
        )
    state.sessions.end(who.session_id)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=state.secure_cookies
    )
    await state.audit.record(
        who=who.name,
        action="logout",
        target=None,
        result="success",
        address=client_address(request),
    )
    return LogoutOut(message="logged out")


def _userinfo(state: ServerState, who: Principal, csrf: str | None) -> UserInfo:
    return UserInfo(
        username=who.name,
        groups=list(who.groups),
        roles=state.rbac.roles_of(who.subjects),
        via=who.via,
        csrf=csrf,
    )


@router.get(
    "/session/userinfo",
    response_model=UserInfo,
    summary="Who is calling",
    description="The caller's name, groups, RBAC roles and, for a cookie session, its CSRF token.",
    responses=errors(e401="not logged in"),
)
async def userinfo(request: Request, who: Caller, state: State) -> UserInfo:
    session = await session_of(request)
    csrf = session.csrf if session is not None and session.id == who.session_id else None
    return _userinfo(state, who, csrf)
