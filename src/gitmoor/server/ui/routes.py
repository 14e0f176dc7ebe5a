"""The web UI's pages: login, the application list, settings, user info.

Server-rendered Jinja2 templates with htmx (see README, "Server, web UI and
RBAC"). Every page reads through the same functions as the REST API, with the
same RBAC: the list calls :func:`gitmoor.server.api.apps.list_applications`, so
a user sees in the browser exactly the apps ``GET /api/v1/applications`` gives
them, and a filter means the same in both. The application page
(``/applications/{name}``) is :mod:`gitmoor.server.ui.app_page`.

Live updates: ``static/apps.js`` listens to ``/api/v1/stream/applications``
(server-sent events of app summaries). For an app whose summary differs from
what its row shows (the row's ``data-sig``, built from :data:`SIG_FIELDS` on
both sides), it asks ``/ui/app-rows`` for the rows of the changed apps under
the page's filters and swaps them in place; an app the filters no longer
match, or that is gone, leaves the list. One request per burst of changes, and
none for the snapshot the stream starts with when the page is already current.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from gitmoor.server.api import crud
from gitmoor.server.api.apps import list_applications
from gitmoor.server.api.schemas import AppSummary
from gitmoor.server.auth.sessions import Session
from gitmoor.server.deps import State, session_of
from gitmoor.server.ui.pages import STATIC_DIR, PageSession, render, safe_next

log = logging.getLogger("gitmoor.server.ui")

router = APIRouter(include_in_schema=False)

#: the list's view (table or cards), remembered per browser
VIEW_COOKIE = "gitmoor.view"
VIEWS = ("table", "cards")
#: Argo CD's orders: the badges and the filter choices list them so
SYNC_VALUES = ("Synced", "OutOfSync", "Unknown")
HEALTH_VALUES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
#: the summary fields a row or card shows: a change in any of them redraws it
SIG_FIELDS = (
    "sync",
    "revision",
    "health",
    "healthMessage",
    "operationPhase",
    "operationMessage",
    "operationRequested",
    "targetRevision",
    "automated",
    "suspended",
    "resources",
    "project",
    "cluster",
    "namespace",
    "repoURL",
    "path",
)
#: names one /ui/app-rows request may ask for (apps.js sends bigger sets in parts)
MAX_ROW_NAMES = 200

Text = Annotated[str, Query(max_length=253)]


def signature(s: AppSummary) -> str:
    """What a row shows, as one string; apps.js builds the same from an SSE message."""

    def norm(value: object) -> str:
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(value)

    data = s.model_dump()
    return "\x1f".join(norm(data[f]) for f in SIG_FIELDS)


@dataclass(frozen=True, slots=True)
class Filters:
    """The list's filters, one value each (the API takes several; the form one)."""

    project: str = ""
    sync: str = ""
    health: str = ""
    cluster: str = ""
    namespace: str = ""
    repo: str = ""
    search: str = ""

    def api(self) -> dict[str, Any]:
        """Keyword arguments for :func:`list_applications`."""
        out: dict[str, Any] = {
            k: [v]
            for k, v in (
                ("project", self.project),
                ("sync", self.sync),
                ("health", self.health),
                ("cluster", self.cluster),
                ("namespace", self.namespace),
                ("repo", self.repo),
            )
            if v
        }
        if self.search:
            out["search"] = self.search
        return out

    @property
    def active(self) -> bool:
        return any(
            (
                self.project,
                self.sync,
                self.health,
                self.cluster,
                self.namespace,
                self.repo,
                self.search,
            )
        )


def list_filters(
    project: Text = "",
    sync: Text = "",
    health: Text = "",
    cluster: Text = "",
    namespace: Text = "",
    repo: Annotated[str, Query(max_length=2048)] = "",
    search: Annotated[str, Query(max_length=200)] = "",
) -> Filters:
    return Filters(project, sync, health, cluster, namespace, repo, search.strip())


ListFilters = Annotated[Filters, Depends(list_filters)]


def _view(request: Request, asked: str | None) -> str:
    if asked in VIEWS:
        return asked
    remembered = request.cookies.get(VIEW_COOKIE)
    return remembered if remembered in VIEWS else "table"


def _options(items: list[AppSummary], key: Callable[[AppSummary], str]) -> list[str]:
    return sorted({key(s) for s in items if key(s)})


def _is_fragment(request: Request) -> bool:
    """An htmx swap of the list (not a history restore, which needs the whole page)."""
    return bool(request.headers.get("hx-request")) and not request.headers.get(
        "hx-history-restore-request"
    )


# ---------------------------------------------------------------------------- pages


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/applications", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request,
    state: State,
    next: Annotated[str, Query(max_length=2048)] = "",
) -> Response:
    """The login form. It posts to ``POST /api/v1/session`` (login.js), which sets
    the cookie, then goes to ``next``. Already logged in: straight to ``next``."""
    target = safe_next(next)
    if await session_of(request) is not None:
        return RedirectResponse(target, status_code=303)
    oidc = state.oidc  # None unless oidc.config in gitmoor-cm names a provider
    return render(
        request,
        "login.html",
        None,
        next=target,
        oidc_name=oidc.name if oidc is not None else "",
        oidc_url=oidc.login_path if oidc is not None else "",
    )


@router.get("/applications", response_class=HTMLResponse)
async def applications_page(
    request: Request,
    session: PageSession,
    state: State,
    filters: ListFilters,
    view: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    who = session.principal
    listed = await list_applications(who, state, **filters.api())
    everything = (await list_applications(who, state)).items if filters.active else listed.items
    chosen = _view(request, view)
    response = render(
        request,
        "apps_list.html" if _is_fragment(request) else "apps.html",
        session,
        active="applications",
        headers={"Vary": "HX-Request"},
        items=listed.items,
        counts=listed.counts,
        total=len(everything),
        filters=filters,
        view=chosen,
        signature=signature,
        sig_fields=SIG_FIELDS,
        sync_values=SYNC_VALUES,
        health_values=HEALTH_VALUES,
        options={
            "project": _options(everything, lambda s: s.project),
            "cluster": _options(everything, lambda s: s.cluster),
            "namespace": _options(everything, lambda s: s.namespace),
            "repo": _options(everything, lambda s: s.repoURL),
        },
    )
    if view in VIEWS:
        response.set_cookie(
            VIEW_COOKIE,
            view,
            max_age=365 * 24 * 3600,
            path="/",
            httponly=True,
            samesite="lax",
            secure=state.secure_cookies,
        )
    return response


@router.get("/ui/app-rows", response_class=HTMLResponse)
async def application_rows(
    request: Request,
    session: PageSession,
    state: State,
    filters: ListFilters,
    name: Annotated[list[str] | None, Query()] = None,
    view: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """The rows (or cards) of the named apps that the filters match, and the
    counts: what apps.js swaps into the list when the stream says they changed.
    A name without a row in the answer leaves the list."""
    wanted = set((name or [])[:MAX_ROW_NAMES])
    listed = await list_applications(session.principal, state, **filters.api())
    return render(
        request,
        "apps_rows.html",
        session,
        items=[s for s in listed.items if s.name in wanted],
        counts=listed.counts,
        view=_view(request, view),
        signature=signature,
        sync_values=SYNC_VALUES,
        health_values=HEALTH_VALUES,
    )


def _settings_page(
    request: Request, session: Session, template: str, active: str, **context: Any
) -> Response:
    """A settings page, or just its list (``#settings-list``) for the htmx request
    settings.js makes after a create or delete."""
    return render(
        request,
        "settings_list.html" if _is_fragment(request) else template,
        session,
        active=active,
        headers={"Vary": "HX-Request"},
        list_template=f"{template.removesuffix('.html')}_list.html",
        **context,
    )


@router.get("/settings/repositories", response_class=HTMLResponse)
async def repositories_page(request: Request, session: PageSession, state: State) -> Response:
    repos = await crud.list_repositories(session.principal, state)
    return _settings_page(
        request, session, "settings_repositories.html", "repositories", repos=repos
    )


@router.get("/settings/clusters", response_class=HTMLResponse)
async def clusters_page(request: Request, session: PageSession, state: State) -> Response:
    clusters = await crud.list_cluster_views(session.principal, state)
    return _settings_page(request, session, "settings_clusters.html", "clusters", clusters=clusters)


@router.get("/settings/projects", response_class=HTMLResponse)
async def projects_page(request: Request, session: PageSession, state: State) -> Response:
    projects = await crud.list_project_views(session.principal, state)
    return _settings_page(request, session, "settings_projects.html", "projects", projects=projects)


@router.get("/user", response_class=HTMLResponse)
async def user_page(request: Request, session: PageSession, state: State) -> Response:
    who = session.principal
    return render(
        request,
        "user.html",
        session,
        active="user",
        roles=state.rbac.roles_of(who.subjects),
    )


def mount_static(app: FastAPI) -> None:
    """Serve ``ui/static`` (CSS, scripts, icons, the vendored htmx) at ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
