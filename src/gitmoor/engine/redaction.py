"""The Redactor of an app: the one place the engine (and, through its re-export,
every driver) gets the masks of an app's outputs from.

An app's redactions are its own ``spec.redactions`` plus its project's (both
apply, as a project's ``ignoreDifferences``-like policy would in Argo CD; a
project cannot be escaped by an app). Secret values are masked whatever the
rules (:mod:`gitmoor.secrets.redact`).

One Redactor is kept per app identity and rule set, so the values it learned
while masking one diff (a Secret's plaintext from the render) are still known
when a later message of the same app (a kube error of a sync) has to be scrubbed.

Text about an app (a condition, an Event, a notification, a pod's log shown by
the server) is scrubbed with that app's Redactors only, never with every value
the process learned: a scrub across apps would tell a tenant, through their own
app's outputs, which strings are other apps' Secret values (and the mask would
say which app). The process-wide scrub is for the operator's own log lines
(``gitmoor.secrets.redact.install_log_filter``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from gitmoor.secrets.redact import Redactor

if TYPE_CHECKING:
    from gitmoor.model.application import Application
    from gitmoor.model.project import AppProject
    from gitmoor.model.redaction import RedactRule

#: Redactors kept (one per app and rule set); the oldest is dropped past this
_KEEP = 4096
_redactors: OrderedDict[tuple[str, tuple[RedactRule, ...]], Redactor] = OrderedDict()
# The same Redactors by app identity: an app's text is scrubbed by every Redactor
# of that app (its rules, or its project's, may have changed since one learned).
_by_identity: dict[str, list[Redactor]] = {}


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
    _by_identity.setdefault(key[0], []).append(made)
    while len(_redactors) > _KEEP:
        (identity, _), old = _redactors.popitem(last=False)
        rest = [r for r in _by_identity.get(identity, ()) if r is not old]
        if rest:
            _by_identity[identity] = rest
        else:
            _by_identity.pop(identity, None)
    return made


def scrub_identity(identity: str, text: str) -> str:
    """``text`` scrubbed by every Redactor of the app ``identity``
    (``app_identity``), and by no other app's."""
    if not text:
        return text
    for redactor in _by_identity.get(identity, ()):
        text = redactor.scrub(text)
    return text


def scrub_message(app: Application, text: str, project: AppProject | None = None) -> str:
    """``text`` (an error about ``app``: git, render, sops, kube, or a status
    message shown to its users) with every value the app's Redactors learned
    replaced by the app's mask. Only this app's values: see the module docstring
    for why never another app's. ``project``: the app's, when at hand (its
    Redactor is then the one the engine masked with). Without it no Redactor is
    made: a view of 10,000 apps (the server's list) must not push the Redactors
    that learned values out of the cache."""
    if project is not None:
        text = redactor_for(app, project).scrub(text)
    return scrub_identity(app_identity(app), text)


__all__ = ["app_identity", "redaction_rules", "redactor_for", "scrub_identity", "scrub_message"]
