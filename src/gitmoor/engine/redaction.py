"""The Redactor of an app: the one place the engine (and, through its re-export,
every driver) gets the masks of an app's outputs from.

An app's redactions are its own ``spec.redactions`` plus its project's (both
apply, as a project's ``ignoreDifferences``-like policy would in Argo CD; a
project cannot be escaped by an app). Secret values are masked whatever the
rules (:mod:`gitmoor.secrets.redact`).

One Redactor is kept per app identity and rule set, so the values it learned
while masking one diff (a Secret's plaintext from the render) are still known
when a later message of the same app (a kube error of a sync) has to be scrubbed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from gitmoor.secrets.redact import Redactor
from gitmoor.secrets.redact import scrub as scrub_any

if TYPE_CHECKING:
    from gitmoor.model.application import Application
    from gitmoor.model.project import AppProject
    from gitmoor.model.redaction import RedactRule

#: Redactors kept (one per app and rule set); the oldest is dropped past this
_KEEP = 4096
_redactors: OrderedDict[tuple[str, tuple[RedactRule, ...]], Redactor] = OrderedDict()


def app_identity(app: Application) -> str:
    """``namespace/name/uid``: what keys the app's masks. The uid makes an app
    deleted and created again under the same name a different app."""
    return f"{app.namespace}/{app.name}/{app.uid}"


def redaction_rules(app: Application, project: AppProject | None) -> tuple[RedactRule, ...]:
    own = tuple(app.spec.redactions)
    return own + tuple(project.redactions) if project is not None else own


def redactor_for(app: Application, project: AppProject | None = None) -> Redactor:
    """The Redactor of ``app`` under ``project`` (``Desired.project``; None: the app's
    own rules only, for a caller that has no project at hand)."""
    key = (app_identity(app), redaction_rules(app, project))
    found = _redactors.get(key)
    if found is not None:
        _redactors.move_to_end(key)
        return found
    made = _redactors[key] = Redactor(key[0], key[1])
    while len(_redactors) > _KEEP:
        _redactors.popitem(last=False)
    return made


def scrub_message(app: Application, text: str, project: AppProject | None = None) -> str:
    """``text`` (an error about ``app``: git, render, sops, kube) with every value
    the app's Redactor learned replaced by the app's mask, then any value another
    Redactor of the process learned (an error may come before this app's objects
    were ever masked: a render that failed)."""
    return scrub_any(redactor_for(app, project).scrub(text))


__all__ = ["app_identity", "redaction_rules", "redactor_for", "scrub_message"]
