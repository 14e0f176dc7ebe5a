"""Sending: one lane per webhook, retries with backoff, URLs and headers kept out of logs.

Delivery never holds up reconciliation: :meth:`Notifier.notify` only enqueues
(a full queue drops, and says so), and :meth:`Notifier.run` sends in the
background. Each webhook has its own lane (a queue and a sender), so an endpoint
that hangs or fails delays only its own messages, and each endpoint receives its
messages in order. A failed POST (transport error, timeout, 408, 429, 5xx) is
retried with exponential backoff; other answers are final. That split is
go-retryablehttp's default policy, which Flux's notification-controller uses for
its providers.

Secrets: a webhook's headers (and often its URL: a Slack webhook URL is a
credential) are never logged; logs name the webhook and its scheme://host:port.
And no Secret value leaves in a message: each notification's fields and the
text its template expands to go through the one redaction policy (the app's
Redactors, :func:`gitmoor.engine.scrub_identity`, never another app's: a scrub
over every app's values would tell whoever reads the channel which strings are
other apps' Secret values) when the body is built, the last moment before it
leaves, so a value the controller learned while the notification waited in the
queue is scrubbed too. A sync's message can quote the API
server's refusal of a value (``Invalid value: "..."``); Argo CD's notifications
send such text as it is, issue 13 wants none of it to leave.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from gitmoor.controller.notify.config import (
    CONFIG_KEY,
    CONFIGMAP,
    TRIGGERS,
    NotifyConfig,
    parse_config,
)
from gitmoor.controller.notify.template import body_for, render
from gitmoor.engine import scrub_identity
from gitmoor.model import ObjectRef, UserInputError

if TYPE_CHECKING:
    from gitmoor.controller.notify.config import Webhook
    from gitmoor.controller.notify.template import Notification
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.controller.notify")

_RETRY_STATUS = frozenset({408, 429})


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


def scrubbed(n: Notification) -> Notification:
    """``n`` with every field scrubbed of the values its app's Redactors learned."""
    return dataclasses.replace(
        n,
        **{
            f.name: scrub_identity(n.app_key, value)
            for f in dataclasses.fields(n)
            if f.name != "app_key" and isinstance(value := getattr(n, f.name), str)
        },
    )


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
        n = scrubbed(n)
        for webhook in cfg.webhooks:
            if n.trigger not in webhook.on:
                continue
            # The template is the operator's, but two expanded fields side by side
            # can spell a value neither field holds alone: the text is scrubbed too.
            text = scrub_identity(n.app_key, render(cfg.templates[n.trigger], n))
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
