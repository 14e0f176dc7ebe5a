"""The FastAPI application of ``gitmoor server``: API, UI, health, OpenAPI."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from gitmoor import __version__
from gitmoor.model import GitmoorError, UserInputError
from gitmoor.server.deps import client_address
from gitmoor.server.headers import SecurityHeaders
from gitmoor.server.limits import BodyLimit
from gitmoor.server.redaction import RequestApps, scrub_request
from gitmoor.server.state import ServerState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.server")

API = "/api/v1"


_DETAIL = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        }
    }
}
#: what every API route may answer besides its own (a route's own entries win), so
#: the OpenAPI document lists them and clients (and Schemathesis) can check them
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credentials, or ones that are not valid", "content": _DETAIL},
    403: {
        "description": "the RBAC policy does not allow this, or a cross-site request",
        "content": _DETAIL,
    },
}


def create_app(
    kube: KubeClient,
    namespace: str,
    *,
    url: str = "http://127.0.0.1:8080",
    secure_cookies: bool = False,
) -> FastAPI:
    from gitmoor.server.api import (
        accounts,
        app_resources,
        apps,
        crud,
        ops,
        rollouts,
        session,
        stream,
    )
    from gitmoor.server.auth import oidc
    from gitmoor.server.ui import app_page, rollout_page
    from gitmoor.server.ui import routes as ui

    state = ServerState(kube, namespace, url=url, secure_cookies=secure_cookies)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.start()
        log.info("event=server_ready namespace=%s url=%s", namespace, url)
        try:
            yield
        finally:
            await state.aclose()

    api = FastAPI(
        title="gitmoor",
        version=__version__,
        description=(
            "The gitmoor REST API. Every route takes `Authorization: Bearer TOKEN` "
            "(an API token or a session token) or the web session cookie; "
            "cookie requests that change state also need the `X-CSRF-Token` header."
        ),
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    api.state.gitmoor = state
    # Bodies are read before authentication: cap them (gitmoor.server.limits).
    api.add_middleware(BodyLimit)
    api.add_middleware(SecurityHeaders)
    # Which apps each request touched, for the error handlers' scrub below.
    api.add_middleware(RequestApps)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 echoes each bad field's input (and pydantic's context):
        # a password in the wrong shape would come back in the answer. Where and
        # why only.
        errors = [
            {k: v for k, v in err.items() if k not in ("input", "ctx", "url")} for err in e.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    # Every error detail goes through the one redaction policy (issue 13): an
    # error of the API server or of a tool can quote a value it refused
    # (``Invalid value: "..."``), and these handlers are the one way out of the
    # API for every route's errors. Scrubbed by the Redactors of the apps the
    # request touched only (gitmoor.server.redaction: no cross-app oracle).
    @api.exception_handler(UserInputError)
    async def _user_error(_: Request, e: UserInputError) -> JSONResponse:
        return JSONResponse({"detail": scrub_request(str(e))}, status_code=400)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> Response:
        # A caller who proved who they are and was refused (RBAC, CSRF) leaves an
        # audit line, as Argo CD logs "permission denied"; a log line only, not an
        # Event, so a stream of refused calls cannot flood etcd with Events.
        who = getattr(request.state, "principal", None)
        if e.status_code == 403 and who is not None:
            route = request.scope.get("route")
            await state.audit.record(
                who=who.name,
                action=str(getattr(route, "name", "request")).replace("_", "-"),
                target=None,
                result="denied",
                address=client_address(request),
                message=f"{request.method} {request.url.path}: {e.detail}",
            )
        if isinstance(e.detail, str):
            e = StarletteHTTPException(e.status_code, scrub_request(e.detail), headers=e.headers)
        return await http_exception_handler(request, e)

    @api.exception_handler(GitmoorError)
    async def _gitmoor_error(_: Request, e: GitmoorError) -> JSONResponse:
        return JSONResponse({"detail": scrub_request(str(e))}, status_code=502)

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        if not state.ready:
            raise HTTPException(503, "the Application watch has not listed yet")
        return {"status": "ready"}

    for module in (session, accounts, apps, app_resources, ops, rollouts, crud, stream):
        for route in module.router.routes:
            if not isinstance(route, APIRoute):
                continue
            # A route that names its object in the path answers 404 when there is
            # none, and 400 when the engine refuses the input (UserInputError); a
            # route with a body answers 400 to one that is not JSON.
            if "{" in route.path:
                route.responses.setdefault(
                    404, {"description": "no such object", "content": _DETAIL}
                )
            if "{" in route.path or route.body_field is not None:
                route.responses.setdefault(
                    400, {"description": "invalid input", "content": _DETAIL}
                )
        api.include_router(module.router, prefix=API, responses=_AUTH_ERRORS)
    api.include_router(oidc.router)
    api.include_router(ui.router)
    api.include_router(app_page.router)
    api.include_router(rollout_page.router)
    ui.mount_static(api)
    return api
