"""The server's side of the one redaction policy (issue 13).

Every route and page that shows an object of an app masks it with the app's
``Redactor`` (``gitmoor.engine.redactor_for``: Secret ``data``/``stringData``
and the fields of the app's and its project's ``spec.redactions``), and every
free text that may quote one (a condition, an Event, the API server's error,
a pod's log) is scrubbed of the values that app's Redactors learned, and of no
other app's: a scrub over every value of the process would be an oracle (a
tenant's pod printing a guess would see in its own logs whether it is another
app's Secret value, and the mask would link the two apps). An error answer,
where no app is at hand in the handler, is scrubbed by the Redactors of the apps
the request touched (``visible_app`` notes each: ``note_app``). The masks are
the engine's own (``<redacted:` + 8 hex + `>``, keyed per app), so the server's
views and the controller's diffs show the same value the same way within one
process, and a changed value as changed.

``showSecrets`` (the rendered manifests with their values) is for a caller who
may read the Secrets themselves, not for whoever may ``get`` the app: Argo CD's
``applications, get`` shows Secrets masked only, and its fine-grained policy
names an object of an app as ``ACTION/GROUP/KIND/NAMESPACE/NAME`` (``update``
and ``delete`` in Argo CD 3; ``p, role:ops, applications, delete//Pod/*/*,
default/*, allow``). The server takes the same form for reading an object's
hidden values: ``applications, get/GROUP/KIND/NAMESPACE/NAME, PROJECT/APP``
(core group empty: ``get//Secret/prod/db``). ``role:readonly``'s ``get`` does
not match it; ``role:admin``'s ``*`` does.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from gitmoor.engine import redactor_for, scrub_identity, scrub_message
from gitmoor.kube import UnknownKindError
from gitmoor.model import GitmoorError
from gitmoor.model.project import DEFAULT_PROJECT
from gitmoor.settings import get_project

if TYPE_CHECKING:
    from collections.abc import Sequence

    from starlette.types import ASGIApp, Receive, Scope, Send

    from gitmoor.model import JSONDict, ObjectRef
    from gitmoor.model.application import Application
    from gitmoor.model.status import ResourceEntry
    from gitmoor.secrets.redact import Redactor
    from gitmoor.server.state import ServerState

log = logging.getLogger("gitmoor.server")

#: objects read per app version to learn their values (an app's Secrets are few)
LEARN_CAP = 64
#: app versions whose live values were learned, remembered (the oldest goes first)
_LEARNED_KEPT = 4096
_learned: OrderedDict[tuple[str, str], None] = OrderedDict()


async def app_redactor(state: ServerState, app: Application) -> Redactor:
    """The app's Redactor under its project's rules as they are now. The project is
    read from the API server: a project that cannot be read is an error (a 502),
    never a view without its rules."""
    project = await get_project(state.kube, app.spec.project or DEFAULT_PROJECT, state.namespace)
    return redactor_for(app, project)


def scrubbed(redactor: Redactor, text: str) -> str:
    """``text`` scrubbed of the values the app's Redactors learned (with the app's
    masks): ``redactor`` and the app's others (other rule sets), no other app's."""
    return scrub_identity(redactor.app, redactor.scrub(text)) if text else text


# The apps the current request touched (set per request by ``RequestApps``).
_request_apps: contextvars.ContextVar[list[Application] | None] = contextvars.ContextVar(
    "gitmoor_request_apps", default=None
)


def note_app(app: Application) -> None:
    """Remember that the current request concerns ``app`` (``visible_app`` calls
    it), so that an error it ends with is scrubbed by the app's Redactors."""
    apps = _request_apps.get()
    if apps is not None and not any(a.uid == app.uid and a.name == app.name for a in apps):
        apps.append(app)


def scrub_request(text: str) -> str:
    """``text`` (an error detail, an audit message) scrubbed by the Redactors of
    the apps the current request touched, and no other. A request that touched no
    app has no app values to hide from its caller."""
    for app in _request_apps.get() or ():
        text = scrub_message(app, text)
    return text


class RequestApps:
    """ASGI middleware: a fresh list of touched apps per request. A list, not a
    value set later, so what a route notes is seen by the error handlers that run
    outside it (Starlette's exception middleware sits inside this one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _request_apps.set([])
        try:
            await self.app(scope, receive, send)
        finally:
            _request_apps.reset(token)


def secret_read_action(ref: ObjectRef) -> str:
    """The RBAC action that lets a caller see ``ref``'s hidden values (see above)."""
    return f"get/{ref.group}/{ref.kind}/{ref.namespace}/{ref.name}"


async def learn_live(
    state: ServerState, app: Application, entries: Sequence[ResourceEntry]
) -> None:
    """Learn the values the app's live Secrets and redacted objects hold, once per
    version of the app, so that its status text is scrubbed by this process too.

    The controller scrubs what it writes with what it learned; a status written
    by an older controller, or by hand, or a server that has not yet shown any of
    the app's objects, would otherwise leave a quoted value in the app's JSON, the
    list and the SSE stream. Best effort: an object that cannot be read is left
    out (and logged), since the status is shown either way."""
    key = (app.uid, app.resource_version)
    if key in _learned:
        return
    redactor = await app_redactor(state, app)
    refs = [
        e.ref
        for e in entries
        if redactor.covers({"apiVersion": e.ref.api_version, "kind": e.ref.kind})
    ][:LEARN_CAP]
    if refs:
        kube = await state.engine.dest(app)

        async def one(ref: ObjectRef) -> JSONDict | None:
            try:
                return await kube.get(ref)
            except UnknownKindError:
                return None
            except GitmoorError as e:
                log.info(
                    "event=learn_skipped app=%s/%s ref=%s error=%s", app.namespace, app.name, ref, e
                )
                return None

        for obj in await asyncio.gather(*(one(r) for r in refs)):
            redactor.learn(obj)
    _learned[key] = None
    while len(_learned) > _LEARNED_KEPT:
        _learned.popitem(last=False)
