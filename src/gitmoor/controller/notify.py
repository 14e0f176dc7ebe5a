"""Notifications to webhooks when a sync succeeds or fails, or an app turns Degraded.

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

Delivery never holds up reconciliation: :meth:`Notifier.notify` only enqueues
(a full queue drops, and says so), and :meth:`Notifier.run` sends in the
background. Each webhook has its own lane (a queue and a sender), so an endpoint
that hangs or fails delays only its own messages, and each endpoint receives its
messages in order. A failed POST (transport error, timeout, 408, 429, 5xx) is
retried with exponential backoff; other answers are final. That split is
go-retryablehttp's default policy, which Flux's notification-controller uses for
its providers.

Templates take ``{app}``, ``{namespace}``, ``{revision}``, ``{message}``,
``{health}``, ``{sync}`` and ``{trigger}``. They are expanded by a small
substitution, not ``str.format``: ``str.format`` would let a template reach
attributes (``{app.__class__}``) or ask for a width of a billion characters
(``{app:>999999999}``). Anything that is not a bare known name is left as
written, ``{{``/``}}`` give braces, and a value is never expanded again, so a
commit message that contains ``{revision}`` stays as it is.

Secrets: a webhook's headers (and often its URL: a Slack webhook URL is a
credential) are never logged; logs name the webhook and its scheme://host:port.
Configuration errors name the field, never the value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
import yaml

from gitmoor.model import ObjectRef, UserInputError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.controller.notify")

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

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# RFC 9110 field-name (token) and field-value (visible ASCII, space, tab).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
_WEBHOOK_KEYS = frozenset({"name", "url", "format", "on", "headers"})
_RETRY_STATUS = frozenset({408, 429})


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


# ---------------------------------------------------------------------- configuration


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


# ---------------------------------------------------------------------- delivery


class _HideWebhookURLs(logging.Filter):
    """Shows webhook URLs as ``scheme://host:port/…`` in httpx's own request log.

    httpx logs every request at INFO as ``HTTP Request: POST <url> "<status>"``,
    and a Slack (or Teams, or Discord) webhook URL is a credential. Only URLs
    of configured webhooks are touched; other requests log as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}

    def hide(self, webhook: Webhook) -> None:
        self.urls[str(httpx.URL(webhook.url))] = f"{webhook.endpoint}/…"

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2:
            shown = self.urls.get(str(args[1]))
            if shown is not None:
                record.args = (args[0], shown, *args[2:])
        return True


_URL_FILTER = _HideWebhookURLs()
logging.getLogger("httpx").addFilter(_URL_FILTER)


@dataclass(frozen=True, slots=True)
class _Delivery:
    webhook: Webhook  # as configured when the notification was dispatched
    notification: Notification
    body: bytes


class _Lane:
    """One webhook's queue and sender."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[_Delivery] = asyncio.Queue(size)
        self.task: asyncio.Task[None] | None = None


class Notifier:
    """Sends notifications in the background; see the module docstring.

    ``retries`` is the number of attempts after the first (so ``retries=3``
    allows four POSTs), waiting ``backoff``, then twice as long, and so on.
    ``timeout`` bounds each attempt as a whole, not each read, so an endpoint
    that trickles bytes cannot hold its lane longer than a silent one.
    ``queue_size`` bounds the main queue and each webhook's lane.

    ``delivered``, ``failed`` and ``dropped`` count deliveries (one per
    notification and webhook) for metrics and tests. Use one :meth:`run` per
    Notifier, and call :meth:`notify` from its event loop.
    """

    def __init__(
        self,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
        queue_size: int = 1000,
    ) -> None:
        if retries < 0 or backoff < 0 or timeout <= 0 or queue_size < 1:
            raise ValueError("retries, backoff >= 0; timeout > 0; queue_size >= 1")
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.queue_size = queue_size
        self._client = client
        self._config = NotifyConfig()
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(queue_size)
        self._lanes: dict[str, _Lane] = {}
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    @property
    def config(self) -> NotifyConfig:
        return self._config

    def configure(self, config_yaml: str) -> None:
        """Replace the configuration; on an error the previous one stays in force.

        Lanes of webhooks no longer configured are stopped and their queued
        messages dropped: the user took the endpoint out.
        """
        self._config = parse_config(config_yaml)
        for webhook in self._config.webhooks:
            _URL_FILTER.hide(webhook)
        names = {w.name for w in self._config.webhooks}
        for name in [n for n in self._lanes if n not in names]:
            lane = self._lanes.pop(name)
            if lane.task is not None:
                lane.task.cancel()
        log.info(
            "event=notifications_configured webhooks=%s",
            ",".join(w.name for w in self._config.webhooks) or "-",
        )

    async def load(self, kube: KubeClient, namespace: str) -> None:
        """Configure from the ConfigMap ``gitmoor-notifications`` in ``namespace``.

        No ConfigMap (or no ``config.yaml`` in it) means no notifications. A bad
        ``config.yaml`` raises :class:`UserInputError` naming the ConfigMap and
        the field, and the previous configuration stays in force; API errors
        propagate for the caller to retry.
        """
        obj = await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, CONFIGMAP))
        text = ""
        if obj is not None:
            data = obj.get("data") or {}
            text = str(data.get(CONFIG_KEY) or "")
        where = f"ConfigMap {namespace}/{CONFIGMAP}"
        try:
            self.configure(text)
        except UserInputError as e:
            raise UserInputError(f"{where}: {e}", concerns=where) from e

    def notify(self, n: Notification) -> None:
        """Enqueue ``n`` and return at once; dropped (and logged) when the queue is full."""
        if n.trigger not in TRIGGERS:
            log.warning("event=notification_dropped reason=unknown_trigger trigger=%s", n.trigger)
            return
        if not self._config.wants(n.trigger):
            return  # nobody listens: keep the queue for those who do
        try:
            self._queue.put_nowait(n)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "event=notification_dropped reason=queue_full app=%s/%s trigger=%s queue_size=%d",
                n.namespace,
                n.app,
                n.trigger,
                self.queue_size,
            )

    @property
    def pending(self) -> int:
        """Messages waiting (not counting those being sent)."""
        return self._queue.qsize() + sum(lane.queue.qsize() for lane in self._lanes.values())

    async def run(self) -> None:
        """Dispatch queued notifications to their webhooks' lanes until cancelled.

        Never raises: a bug in one dispatch is logged and the loop goes on.
        """
        client = self._client
        if client is None:
            client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        try:
            while True:
                n = await self._queue.get()
                try:
                    self._dispatch(n, client)
                except Exception:
                    log.exception("event=notification_dispatch_failed trigger=%s", n.trigger)
                finally:
                    self._queue.task_done()
        finally:
            lanes = list(self._lanes.values())
            self._lanes.clear()
            tasks = [lane.task for lane in lanes if lane.task is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._client is None:
                await client.aclose()

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - a deadline, not a per-call timeout
        """Wait until everything queued has been delivered or given up, at most ``timeout`` s.

        Needs :meth:`run` to be running. On timeout, logs what is left and returns.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._queue.join()
                for lane in list(self._lanes.values()):
                    await lane.queue.join()
        except TimeoutError:
            log.warning("event=notify_drain_timeout pending=%d", self.pending)

    def _dispatch(self, n: Notification, client: httpx.AsyncClient) -> None:
        cfg = self._config
        for webhook in cfg.webhooks:
            if n.trigger not in webhook.on:
                continue
            text = render(cfg.templates[n.trigger], n)
            body = json.dumps(body_for(webhook, n, text), ensure_ascii=False).encode()
            lane = self._lanes.get(webhook.name)
            if lane is None:
                lane = self._lanes[webhook.name] = _Lane(self.queue_size)
                lane.task = asyncio.create_task(
                    self._send_loop(lane, client), name=f"gitmoor-notify-{webhook.name}"
                )
            try:
                lane.queue.put_nowait(_Delivery(webhook, n, body))
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning(
                    "event=notification_dropped reason=webhook_queue_full webhook=%s app=%s/%s "
                    "trigger=%s",
                    webhook.name,
                    n.namespace,
                    n.app,
                    n.trigger,
                )

    async def _send_loop(self, lane: _Lane, client: httpx.AsyncClient) -> None:
        while True:
            d = await lane.queue.get()
            try:
                await self._deliver(d, client)
            except Exception as e:
                # Only the type: an HTTP library's message may quote a header.
                self.failed += 1
                log.error(
                    "event=notification_failed webhook=%s error=%s",
                    d.webhook.name,
                    type(e).__name__,
                )
            finally:
                lane.queue.task_done()

    async def _deliver(self, d: _Delivery, client: httpx.AsyncClient) -> None:
        webhook, n = d.webhook, d.notification
        headers = {"Content-Type": "application/json", "User-Agent": "gitmoor-notifications"}
        headers.update(webhook.headers)
        attempts = self.retries + 1
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                async with (
                    asyncio.timeout(self.timeout),
                    client.stream(
                        "POST", webhook.url, content=d.body, headers=headers, timeout=self.timeout
                    ) as r,
                ):
                    # The body is never read: nothing in it is needed, and an
                    # endpoint could send a lot of it.
                    status = r.status_code
            except (httpx.HTTPError, TimeoutError) as e:
                error, retryable = type(e).__name__, True
            else:
                if status < 300:
                    self.delivered += 1
                    log.info(
                        "event=notification_sent webhook=%s endpoint=%s trigger=%s app=%s/%s "
                        "attempt=%d status=%d",
                        webhook.name,
                        webhook.endpoint,
                        n.trigger,
                        n.namespace,
                        n.app,
                        attempt,
                        status,
                    )
                    return
                error, retryable = f"http_{status}", status >= 500 or status in _RETRY_STATUS
            if not retryable or attempt == attempts:
                break
            delay = self.backoff * 2 ** (attempt - 1)
            log.info(
                "event=notification_retry webhook=%s endpoint=%s attempt=%d error=%s retry_in=%.2f",
                webhook.name,
                webhook.endpoint,
                attempt,
                error,
                delay,
            )
            await asyncio.sleep(delay)
        self.failed += 1
        log.warning(
            "event=notification_failed webhook=%s endpoint=%s trigger=%s app=%s/%s attempts=%d "
            "error=%s",
            webhook.name,
            webhook.endpoint,
            n.trigger,
            n.namespace,
            n.app,
            attempt,
            error,
        )


__all__ = [
    "CONFIGMAP",
    "CONFIG_KEY",
    "DEFAULT_TEMPLATES",
    "HEALTH_DEGRADED",
    "SYNC_FAILED",
    "SYNC_SUCCEEDED",
    "TRIGGERS",
    "Notification",
    "Notifier",
    "NotifyConfig",
    "Webhook",
    "body_for",
    "parse_config",
    "render",
]
