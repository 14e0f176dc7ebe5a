"""The notification configuration: the ``gitmoor-notifications`` ConfigMap's ``config.yaml``.

Configured like Argo CD's notifications (triggers, templates, services in the
``argocd-notifications-cm`` ConfigMap) but kept to what most teams use: a
ConfigMap ``gitmoor-notifications`` in the Applications' namespace whose
``config.yaml`` lists webhooks (a generic JSON POST, or Slack's incoming-webhook
``{"text": ...}``), which triggers each wants, and one message template per
trigger::

    webhooks:
    - name: ops
      url: https://hooks.example.com/gitmoor
      format: json                  # or slack
      on: [sync-succeeded, sync-failed, health-degraded]
      headers: {Authorization: "Bearer ..."}
    templates:
      sync-failed: "{app} sync FAILED at {revision}: {message}"

Configuration errors name the field, never the value: a header's value, and
often the URL (a Slack webhook URL is a credential), is a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import yaml

from gitmoor.model import UserInputError

if TYPE_CHECKING:
    from collections.abc import Mapping

CONFIGMAP = "gitmoor-notifications"
CONFIG_KEY = "config.yaml"

SYNC_SUCCEEDED = "sync-succeeded"
SYNC_FAILED = "sync-failed"
HEALTH_DEGRADED = "health-degraded"
TRIGGERS = (SYNC_SUCCEEDED, SYNC_FAILED, HEALTH_DEGRADED)

DEFAULT_TEMPLATES: Mapping[str, str] = MappingProxyType(
    {
        SYNC_SUCCEEDED: "{app} synced to {revision} ({message})",
        SYNC_FAILED: "{app} sync FAILED at {revision}: {message}",
        HEALTH_DEGRADED: "{app} is Degraded: {message}",
    }
)

Format = Literal["json", "slack"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# RFC 9110 field-name (token) and field-value (visible ASCII, space, tab).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
_WEBHOOK_KEYS = frozenset({"name", "url", "format", "on", "headers"})


@dataclass(frozen=True, slots=True)
class Webhook:
    """One endpoint. ``url`` and ``headers`` stay out of ``repr`` (they hold credentials)."""

    name: str
    url: str = field(repr=False)
    format: Format = "json"
    on: frozenset[str] = frozenset(TRIGGERS)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def endpoint(self) -> str:
        """``scheme://host[:port]``: what logs may say about where it points."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    webhooks: tuple[Webhook, ...] = ()
    templates: Mapping[str, str] = field(default_factory=lambda: DEFAULT_TEMPLATES, hash=False)

    def wants(self, trigger: str) -> bool:
        return any(trigger in w.on for w in self.webhooks)


def _bad(where: str, problem: str) -> UserInputError:
    return UserInputError(f"{where} {problem}", concerns=where)


def _parse_webhook(raw: Any, where: str) -> Webhook:
    if not isinstance(raw, dict):
        raise _bad(where, "must be a mapping")
    # PyYAML reads YAML 1.1, where a bare `on` key is the boolean True (the
    # GitHub Actions pitfall); the documented spelling must work.
    if True in raw:
        if "on" in raw:
            raise _bad(f"{where}.on", "is given twice")
        raw = {("on" if k is True else k): v for k, v in raw.items()}
    for key in raw:
        if key not in _WEBHOOK_KEYS:
            raise _bad(
                f"{where}.{key}",
                f"is not a known field (known: {', '.join(sorted(_WEBHOOK_KEYS))})",
            )
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _bad(f"{where}.name", "is required: letters, digits, '.', '_', '-' (at most 63)")
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}.url", "is required")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        raise _bad(f"{where}.url", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", url):
        raise _bad(f"{where}.url", "must be an http:// or https:// URL with a host")
    fmt = raw.get("format", "json")
    if fmt not in ("json", "slack"):
        raise _bad(f"{where}.format", "must be 'json' or 'slack'")
    on = raw.get("on", list(TRIGGERS))
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or not on:
        raise _bad(f"{where}.on", f"must be a non-empty list of triggers ({', '.join(TRIGGERS)})")
    for i, trigger in enumerate(on):
        if trigger not in TRIGGERS:
            raise _bad(f"{where}.on[{i}]", f"is not a trigger (known: {', '.join(TRIGGERS)})")
    headers_raw = raw.get("headers")
    if headers_raw is None:
        headers_raw = {}
    if not isinstance(headers_raw, dict):
        raise _bad(f"{where}.headers", "must be a mapping of header name to value")
    headers: list[tuple[str, str]] = []
    for hname, hvalue in headers_raw.items():
        if not isinstance(hname, str) or not _HEADER_NAME.match(hname):
            raise _bad(f"{where}.headers", "has a header name that is not a valid HTTP token")
        # The value is a credential more often than not: name the header, never the value.
        if not isinstance(hvalue, str) or not _HEADER_VALUE.match(hvalue):
            raise _bad(f"{where}.headers.{hname}", "must be a string of printable ASCII characters")
        headers.append((hname, hvalue))
    return Webhook(
        name=name,
        url=url,
        format="slack" if fmt == "slack" else "json",
        on=frozenset(on),
        headers=tuple(headers),
    )


def parse_config(text: str) -> NotifyConfig:
    """Validate a ``config.yaml``; :class:`UserInputError` naming the field if it is wrong.

    Empty text is a configuration with no webhooks. Unknown fields are errors,
    so that a misspelt ``headrs`` is reported instead of silently ignored.
    """
    try:
        doc = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        # Only the position: YAML's own message quotes the text around the
        # error, which may be a header's token.
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserInputError(f"{CONFIG_KEY} is not valid YAML{at}", concerns=CONFIG_KEY) from None
    if doc is None:
        return NotifyConfig()
    if not isinstance(doc, dict):
        raise _bad(CONFIG_KEY, "must be a mapping with 'webhooks' and 'templates'")
    for key in doc:
        if key not in ("webhooks", "templates"):
            raise _bad(str(key), "is not a known field (known: templates, webhooks)")
    hooks_raw = doc.get("webhooks")
    if hooks_raw is None:
        hooks_raw = []
    if not isinstance(hooks_raw, list):
        raise _bad("webhooks", "must be a list")
    webhooks = tuple(_parse_webhook(h, f"webhooks[{i}]") for i, h in enumerate(hooks_raw))
    seen: set[str] = set()
    for i, w in enumerate(webhooks):
        if w.name in seen:
            raise _bad(f"webhooks[{i}].name", f"{w.name!r} is used by an earlier webhook")
        seen.add(w.name)
    templates = dict(DEFAULT_TEMPLATES)
    templates_raw = doc.get("templates")
    if templates_raw is None:
        templates_raw = {}
    if not isinstance(templates_raw, dict):
        raise _bad("templates", "must be a mapping of trigger to template")
    for trigger, template in templates_raw.items():
        if trigger not in TRIGGERS:
            raise _bad(f"templates.{trigger}", f"is not a trigger (known: {', '.join(TRIGGERS)})")
        if not isinstance(template, str):
            raise _bad(f"templates.{trigger}", "must be a string")
        templates[trigger] = template
    return NotifyConfig(webhooks, MappingProxyType(templates))
