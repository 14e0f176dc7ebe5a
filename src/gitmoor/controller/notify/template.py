"""Message text and bodies: the templates, expanded for one notification.

Templates take ``{app}``, ``{namespace}``, ``{revision}``, ``{message}``,
``{health}``, ``{sync}`` and ``{trigger}``. They are expanded by a small
substitution, not ``str.format``: ``str.format`` would let a template reach
attributes (``{app.__class__}``) or ask for a width of a billion characters
(``{app:>999999999}``). Anything that is not a bare known name is left as
written, ``{{``/``}}`` give braces, and a value is never expanded again, so a
commit message that contains ``{revision}`` stays as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitmoor.controller.notify.config import Webhook

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Notification:
    """What happened to which app; the values the templates can use."""

    trigger: str
    app: str
    namespace: str
    revision: str
    message: str
    health: str
    sync: str
    #: the app's redaction identity (``gitmoor.engine.app_identity``): the fields
    #: are scrubbed by that app's Redactors only when the body is built. Never sent.
    app_key: str = field(default="", repr=False)


def render(template: str, n: Notification) -> str:
    """Expand the known ``{name}`` placeholders of ``template`` (see the module docstring)."""
    values = {
        "app": n.app,
        "namespace": n.namespace,
        "revision": n.revision,
        "message": n.message,
        "health": n.health,
        "sync": n.sync,
        "trigger": n.trigger,
    }

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values.get(m.group(1), token)

    return _PLACEHOLDER.sub(sub, template)


def body_for(webhook: Webhook, n: Notification, text: str) -> dict[str, str]:
    """The JSON body: Slack's ``{"text": ...}``, or every field plus the rendered text."""
    if webhook.format == "slack":
        return {"text": text}
    return {
        "trigger": n.trigger,
        "app": n.app,
        "namespace": n.namespace,
        "revision": n.revision,
        "message": n.message,
        "health": n.health,
        "sync": n.sync,
        "text": text,
    }
