"""Is the webhook from the forge? Each provider's signature or token, and the secrets.

Authentication, checked before the body is parsed, compared with
:func:`hmac.compare_digest` on bytes (a ``str`` compare raises on non-ASCII
header text, which would turn a forged header into a 500):

- GitHub: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body.
  The legacy SHA-1 ``X-Hub-Signature`` alone is refused.
- Gitea/Forgejo: ``X-Forgejo-Signature`` / ``X-Gitea-Signature`` /
  ``X-Gogs-Signature``, hex HMAC-SHA256 without prefix.
- GitLab: ``X-Gitlab-Token`` is the shared secret itself.
- Bitbucket: Cloud signs nothing unless a secret is set on the webhook. Argo
  CD compares ``X-Hook-UUID`` with ``webhook.bitbucket.uuid``; that UUID is
  sent in clear in every delivery and shown to every repository admin, so it
  is accepted for compatibility but the stronger forms are preferred: ``X-Hub-Signature: sha256=<hex>`` (a
  Cloud webhook with a secret, and Bitbucket Server) or ``?secret=<secret>``
  in the webhook URL. Any one of the three is enough. A secret in the query
  is written into the access log of every proxy on the way, and uvicorn's
  own unless its access log is off: prefer the signature where the forge
  can send one.

When no secret is configured for a provider, its requests are refused with
401 and a reason that says how to configure one. Argo CD accepts them unsigned
instead; here that needs ``--webhook-allow-unsigned`` (then a warning is
logged once per provider and process), because an unused provider with no
secret is a door anyone can knock on: forged pushes naming chosen files could
otherwise hold chosen apps at the head of the work queue.

Logs never contain a secret, a signature, the query string (which may carry
``?secret=``) or request headers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from gitmoor.controller.webhook.providers import (
    WebhookRejected,
    as_str,
    detect,
    parse_event,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gitmoor.controller.webhook.providers import PushEvent

# One logger for the whole webhook package, the name it has always had.
log = logging.getLogger("gitmoor.controller.webhook")

_EMPTY: Mapping[str, str] = MappingProxyType({})

# Providers already warned about accepting unsigned requests (once per process).
_warned_unsigned: set[str] = set()


@dataclass(frozen=True, repr=False)
class WebhookSecrets:
    """The shared secret per provider; ``""`` means none configured (accept unsigned).

    ``repr`` names the configured providers only, so that logging the object
    cannot leak a secret.
    """

    github: str = ""
    gitlab: str = ""
    gitea: str = ""
    bitbucket: str = ""

    def for_provider(self, provider: str) -> str:
        return {
            "github": self.github,
            "gitlab": self.gitlab,
            "gitea": self.gitea,
            "bitbucket": self.bitbucket,
        }.get(provider, "")

    def __repr__(self) -> str:
        configured = [p for p in ("github", "gitlab", "gitea", "bitbucket") if self.for_provider(p)]
        return f"WebhookSecrets(configured={configured})"


def parse_push(
    headers: Mapping[str, str],
    body: bytes,
    secrets: WebhookSecrets,
    *,
    query: Mapping[str, str] = _EMPTY,
    allow_unsigned: bool = False,
) -> PushEvent | None:
    """The push ``body`` describes, verified; None for a valid event that is not a push.

    Raises :class:`WebhookRejected`: 400 unknown provider, 401 missing or wrong
    signature (or, unless ``allow_unsigned``, no secret configured for the
    provider), 400 a body that is not JSON or a push without ref or repository.
    The signature is checked before the body is parsed, so nothing an
    unauthenticated sender writes reaches the JSON parser.
    """
    h = {k.lower(): v for k, v in headers.items()}
    provider, event = detect(h)
    verified = authenticate(
        provider, h, body, secrets.for_provider(provider), query, allow_unsigned
    )
    pushed = parse_event(provider, event, h, body)
    return dataclasses.replace(pushed, verified=verified) if pushed is not None else None


def authenticate(
    provider: str,
    h: Mapping[str, str],
    body: bytes,
    secret: str,
    query: Mapping[str, str],
    allow_unsigned: bool,
) -> bool:
    """True when the request proved the secret, False when accepted unsigned; else 401."""
    if not secret:
        if not allow_unsigned:
            raise WebhookRejected(
                401,
                f"no webhook secret is configured for {provider}: set webhook.{provider}.secret "
                "in the gitmoor-secret Secret (and the same secret on the forge's webhook), "
                "or start the controller with --webhook-allow-unsigned",
            )
        if provider not in _warned_unsigned:
            _warned_unsigned.add(provider)
            log.warning(
                "event=webhook_unsigned provider=%s reason=no-secret-configured "
                "hint=set webhook.%s.secret so that requests must be signed",
                provider,
                provider,
            )
        return False
    if provider == "github":
        given = h.get("x-hub-signature-256")
        if given is None:
            raise WebhookRejected(401, "missing X-Hub-Signature-256 signature")
        if not _prefixed_hmac_ok(secret, body, given):
            raise WebhookRejected(401, "signature mismatch")
    elif provider == "gitea":
        given = next(
            (
                h[name]
                for name in ("x-forgejo-signature", "x-gitea-signature", "x-gogs-signature")
                if name in h
            ),
            None,
        )
        if given is None:
            raise WebhookRejected(401, "missing X-Gitea-Signature or X-Forgejo-Signature")
        if not _hmac_ok(secret, body, given):
            raise WebhookRejected(401, "signature mismatch")
    elif provider == "gitlab":
        given = h.get("x-gitlab-token")
        if given is None:
            raise WebhookRejected(401, "missing X-Gitlab-Token")
        if not _same(given, secret):
            raise WebhookRejected(401, "token mismatch")
    else:
        _authenticate_bitbucket(h, body, secret, query)
    return True


def _authenticate_bitbucket(
    h: Mapping[str, str], body: bytes, secret: str, query: Mapping[str, str]
) -> None:
    signature, in_query, hook_uuid = (
        h.get("x-hub-signature"),
        query.get("secret"),
        h.get("x-hook-uuid"),
    )
    if signature is None and in_query is None and hook_uuid is None:
        raise WebhookRejected(
            401, "missing X-Hub-Signature, ?secret= or X-Hook-UUID for the configured secret"
        )
    # Any one form is enough: Cloud always sends its own X-Hook-UUID, which equals the
    # configured value only when that value is the UUID (Argo CD's webhook.bitbucket.uuid).
    # Every form presented is compared, so the time taken does not say which one matched.
    results = [
        signature is not None and _prefixed_hmac_ok(secret, body, signature),
        in_query is not None and _same(in_query, secret),
        hook_uuid is not None and _same(hook_uuid, secret),
    ]
    if not any(results):
        raise WebhookRejected(401, "signature mismatch")


def _same(given: str, expected: str) -> bool:
    # Bytes, not str: compare_digest raises TypeError on non-ASCII str.
    return hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), expected.encode("utf-8", "replace")
    )


def _hmac_ok(secret: str, body: bytes, given_hex: str) -> bool:
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _same(given_hex.strip().lower(), expected)


def _prefixed_hmac_ok(secret: str, body: bytes, given: str) -> bool:
    algo, _, hexdigest = given.strip().partition("=")
    # Evaluate the HMAC even for a wrong prefix, so the time taken says nothing.
    return _hmac_ok(secret, body, hexdigest) & (algo.lower() == "sha256")


# Argo CD's argocd-secret keys; the first non-empty of each tuple wins.
_SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "github": ("webhook.github.secret",),
    "gitlab": ("webhook.gitlab.secret",),
    # Argo CD serves Gitea through its Gogs handler, hence webhook.gogs.secret.
    "gitea": ("webhook.gitea.secret", "webhook.gogs.secret"),
    "bitbucket": (
        "webhook.bitbucket.secret",
        "webhook.bitbucket.uuid",
        "webhook.bitbucketserver.secret",
    ),
}


def load_secrets_from_secret(data: Mapping[str, str]) -> WebhookSecrets:
    """:class:`WebhookSecrets` from a Secret's (already base64-decoded) data, Argo CD's keys.

    ``webhook.github.secret``, ``webhook.gitlab.secret``, ``webhook.gitea.secret``
    (else Argo CD's ``webhook.gogs.secret``) and, for Bitbucket,
    ``webhook.bitbucket.secret``, else Argo CD's ``webhook.bitbucket.uuid``,
    else ``webhook.bitbucketserver.secret``. Values are stripped of surrounding
    whitespace: ``kubectl create secret --from-file`` keeps the file's final
    newline, which no forge's secret field contains.
    """
    found: dict[str, str] = {}
    for provider, keys in _SECRET_KEYS.items():
        present = [k for k in keys if as_str(data.get(k)).strip()]
        found[provider] = as_str(data.get(present[0])).strip() if present else ""
        values = {as_str(data.get(k)).strip() for k in present}
        if len(values) > 1:
            log.warning(
                "event=webhook_secret_conflict provider=%s used=%s ignored=%s",
                provider,
                present[0],
                ",".join(present[1:]),
            )
    return WebhookSecrets(**found)
