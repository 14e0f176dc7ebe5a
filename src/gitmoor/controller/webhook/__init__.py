"""Git push webhooks: ``POST /api/webhook`` turns a forge's push into app refreshes.

Polling every ``interval`` is the floor; a webhook makes a push visible in
seconds. The handler follows Argo CD's ``util/webhook/webhook.go`` (which
wraps go-playground/webhooks) so that a forge set up for Argo CD works
unchanged against gitmoor, and says in each module where it departs and why.

One job per module, in the order a request meets them::

    providers  who is speaking (the event headers) and the push each forge's
               payload describes, as a PushEvent; pure, no I/O
    auth       the provider's signature or token, checked before any parser
               reads the body (parse_push); the secrets from the gitmoor Secret
    match      which apps a push touches (repository, then revision through
               gitmoor.source.match) and the repository key of the rate limit
    http       the FastAPI route: size cap, per-repository rate limit, status codes

Only a verified push (``PushEvent.verified``: its provider has a secret and
the request proved it) may use the priority lane, where apps whose files the
push changed (:func:`path_changed`) go before the others; an unsigned push
refreshes its apps in plain FIFO order.

Logs (one logger, ``gitmoor.controller.webhook``) are ``key=value`` and never
contain a secret, a signature, the query string (which may carry
``?secret=``) or request headers.
"""

from gitmoor.controller.webhook.auth import WebhookSecrets, load_secrets_from_secret, parse_push
from gitmoor.controller.webhook.http import DEFAULT_MAX_BODY, WEBHOOK_PATH, webhook_router
from gitmoor.controller.webhook.match import path_changed, repo_key, repo_keys, touches
from gitmoor.controller.webhook.providers import PushEvent, WebhookRejected
from gitmoor.source.match import RefKind

__all__ = [
    "DEFAULT_MAX_BODY",
    "WEBHOOK_PATH",
    "PushEvent",
    "RefKind",
    "WebhookRejected",
    "WebhookSecrets",
    "load_secrets_from_secret",
    "parse_push",
    "path_changed",
    "repo_key",
    "repo_keys",
    "touches",
    "webhook_router",
]
