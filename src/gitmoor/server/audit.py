"""The audit trail: who did what, to which object, from where, and how it ended.

Every state-changing call of the API leaves two records:

- a structured log line ``event=audit who=... action=... target=... address=...
  result=...`` (one line, key=value, message quoted), for log pipelines;
- a Kubernetes Event on the object acted on (``kubectl describe application web``
  shows it next to the controller's Events), reason ``Audit<Action>`` — Argo CD's
  server records ``ResourceUpdated``/``OperationStarted`` Events with the user
  in the message the same way.

Nothing here raises: an Event the API server refuses (quota, RBAC) is logged and
dropped, and the request it records still succeeds. Messages are the caller's;
no object content goes into them. A refusal's message can quote the API
server, which may echo a value it refused, so each message goes through the
one redaction policy (issue 13: the Redactors of the apps the request touched,
:func:`gitmoor.server.redaction.scrub_request`) before it is logged or written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from typing import TYPE_CHECKING, Any

from gitmoor.model import GitmoorError, ObjectRef
from gitmoor.server.redaction import scrub_request

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.server.audit")

COMPONENT = "gitmoor-server"
_MESSAGE_LIMIT = 1000  # the API server's limit is 1024 bytes


def _quote(text: str) -> str:
    return (
        '"'
        + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")
        + '"'
    )


def _word(text: str) -> str:
    """A key=value value from outside (a user name from an OIDC claim): quoted when
    it holds a space, a quote, ``=`` or a line break, so it cannot forge a second
    key or a second line."""
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    return _quote(text)


class Audit:
    def __init__(self, kube: KubeClient, namespace: str, *, timeout: float = 5.0) -> None:
        self.kube = kube
        self.namespace = namespace
        self.timeout = timeout

    async def record(
        self,
        *,
        who: str,
        action: str,
        target: ObjectRef | None,
        result: str,
        address: str,
        message: str = "",
        uid: str | None = None,
    ) -> None:
        """``uid``: the target's, when the caller holds the object; otherwise it is
        read, since ``kubectl describe`` finds an object's Events by its uid."""
        where = str(target) if target is not None else "-"
        message = scrub_request(message)
        log.info(
            "event=audit who=%s action=%s target=%s address=%s result=%s message=%s",
            _word(who or "-"),
            action,
            where.replace(" ", "_"),
            address,
            result,
            _quote(message),
        )
        if target is None:
            return
        try:
            await asyncio.wait_for(
                self._event(who, action, target, result, address, message, uid), self.timeout
            )
        except (GitmoorError, TimeoutError) as e:
            log.warning("event=audit_event_failed target=%s error=%s", where, e)

    async def _event(
        self,
        who: str,
        action: str,
        target: ObjectRef,
        result: str,
        address: str,
        message: str,
        uid: str | None,
    ) -> None:
        if uid is None:
            live = await self.kube.get(target)
            uid = str(((live or {}).get("metadata") or {}).get("uid") or "")
        now = dt.datetime.now(dt.UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"{who} {action} ({result}) from {address}" + (f": {message}" if message else "")
        namespace = target.namespace or self.namespace
        ok = result in ("accepted", "ok", "success", "created", "updated", "deleted")
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{target.name[:200]}.{secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": target.api_version,
                "kind": target.kind,
                "namespace": target.namespace,
                "name": target.name,
                **({"uid": uid} if uid else {}),
            },
            "reason": "Audit" + "".join(p.capitalize() for p in action.replace("-", " ").split()),
            "message": text.encode()[:_MESSAGE_LIMIT].decode(errors="ignore"),
            "type": "Normal" if ok else "Warning",
            "source": {"component": COMPONENT},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self.kube.create(event)
