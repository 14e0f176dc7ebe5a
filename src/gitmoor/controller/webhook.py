"""Git push webhooks: ``POST /api/webhook`` turns a forge's push into app refreshes.

Polling every ``interval`` is the floor; a webhook makes a push visible in
seconds. The handler follows Argo CD's ``util/webhook/webhook.go`` (which
wraps go-playground/webhooks) so that a forge set up for Argo CD works
unchanged against gitmoor, and says below where it departs and why.

Who is speaking (the first matching header wins)::

    X-Forgejo-Event / X-Gitea-Event / X-Gogs-Event  gitea      push
    X-GitHub-Event                                  github     push, ping
    X-Gitlab-Event                                  gitlab     Push Hook, Tag Push Hook,
                                                               System Hook (push, tag_push)
    X-Event-Key                                     bitbucket  repo:push (Cloud),
                                                               repo:refs_changed,
                                                               diagnostics:ping (Server)

Gitea and Forgejo also send ``X-GitHub-Event`` for compatibility, so they are
recognised first (Argo CD checks ``X-Gogs-Event`` before GitHub for the same
reason); they are verified with the ``gitea`` secret, not GitHub's.

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

Only a verified push (``PushEvent.verified``: its provider has a secret and
the request proved it) may use the priority lane, where apps whose files the
push changed go before the others; an unsigned push refreshes its apps in
plain FIFO order.

Refreshes are rate-limited per repository (:mod:`~gitmoor.controller.ratelimit`,
a token bucket: ``burst`` at once, then one per ``interval`` seconds; 5 and
10 s by default). A push over the limit is not dropped: it is answered 202
``{"deferred": <seconds>}`` and refreshes its apps when the next token is
due, coalesced with every other push to that repository until then (one
refresh per ref, the latest push's data). 202 rather than 429: forges count
a 429 as a failed delivery and GitHub does not redeliver it, while the push
will be acted on.

Which apps a push touches (:func:`touches`), after Argo CD's
``GetWebURLRegex`` and ``sourceRevisionHasChanged``:

- the repository: the payload's clone and web URLs against the app's
  ``repoURL``, each through :func:`~gitmoor.source.normalize_repo_url`, then
  compared on host and path only, as Argo CD's regex does (any of http,
  https, ssh and scp-like; user and port ignored; ``.git`` optional; an app
  URL may add an ``ssh.`` or ``altssh.`` host prefix, GitHub's and
  Bitbucket's SSH-over-443 hosts). The path is compared case-insensitively
  (Argo CD's regex is ``(?i)``): GitHub, GitLab, Gitea and Bitbucket all
  refuse two repositories whose paths differ only in case, so this finds no
  false match and avoids missing ``github.com/Org/Repo`` written lowercase;
- the revision: ``HEAD`` (or empty) is touched by a push to the default
  branch when the payload names it (GitHub, GitLab, Gitea) and by a push to
  any branch when it does not (Bitbucket; Argo CD sets ``touchedHead`` to
  true there too); a branch or tag name by a push of that name
  (``refs/heads/x`` and ``refs/tags/x`` only by that kind); a semver
  constraint by a push of a tag whose version satisfies it (Argo CD's
  ``compareRevisions``; a tag outside the range cannot change what the
  constraint selects); a full commit SHA never.

Status codes: 200 ``{"refreshed": n}`` for a push, 202 ``{"deferred": s}`` for a
push over the repository's rate limit, 200 ``{"ignored": event}``
for a valid event that is not a push (Argo CD answers 400 "event not defined
to be parsed" there, which forges show as a failed delivery for an event the
user merely left ticked), 400 for an unknown provider, invalid JSON or a
payload without a ref or repository, 401 for a missing or wrong signature
(or no secret configured for the provider),
413 for a body over ``max_body`` (1 MiB by default; Argo CD's
``webhook.maxPayloadSizeMB`` defaults to 50), 503 when the secrets cannot be
read. Every rejection happens before ``on_push`` is called.

Logs are ``key=value`` and never contain a secret, a signature, the query
string (which may carry ``?secret=``) or request headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from gitmoor.controller.ratelimit import RefreshLimits, RepoRateLimiter
from gitmoor.model import UserInputError
from gitmoor.source import SemverConstraint, normalize_repo_url, validate_revision
from gitmoor.source.revisions import is_full_sha, tag_version

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from gitmoor.model.application import Application

log = logging.getLogger("gitmoor.controller.webhook")

DEFAULT_MAX_BODY = 1 << 20
WEBHOOK_PATH = "/api/webhook"

RefKind = Literal["branch", "tag"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ZERO_SHA = frozenset({"0" * 40, "0" * 64})
# Argo CD's optional SSH-over-443 host prefixes (``ssh.github.com``, ``altssh.bitbucket.org``).
_SSH_HOST_PREFIXES = ("ssh.", "altssh.")
_FORM = "application/x-www-form-urlencoded"

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


@dataclass(frozen=True)
class PushEvent:
    """One pushed ref, from any provider.

    ``provider`` is ``github``, ``gitlab``, ``gitea`` (Forgejo and Gogs too),
    ``bitbucket`` (Cloud) or ``bitbucket-server``. ``repo_urls`` are the
    repository's URLs from the payload through :func:`normalize_repo_url`,
    https and ssh forms both. ``default_branch`` is ``""`` when the payload
    does not say (Bitbucket). ``after`` is the full SHA the ref now points to
    (the commit, not an annotated tag object, where the payload tells them
    apart), ``""`` for a deleted ref.
    """

    provider: str
    repo_urls: frozenset[str]
    ref_kind: RefKind
    ref: str
    default_branch: str
    after: str
    #: files the pushed commits added, modified or removed (GitHub, GitLab,
    #: Gitea); empty when the payload does not list them (Bitbucket) or caps the
    #: list — then no app can be told apart and all are refreshed alike
    paths: frozenset[str] = frozenset()
    #: the request proved the provider's secret; only then may ``paths`` put
    #: apps in the priority lane (see the module docstring)
    verified: bool = False


class WebhookRejected(Exception):
    """A request refused before any side effect; ``status_code`` is what the forge sees."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(f"{status_code} {reason}")
        self.status_code = status_code
        self.reason = reason


# --- parsing ----------------------------------------------------------------------------


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
    provider, event = _detect(h)
    verified = _authenticate(
        provider, h, body, secrets.for_provider(provider), query, allow_unsigned
    )
    pushed = _parse_event(provider, event, h, body)
    return dataclasses.replace(pushed, verified=verified) if pushed is not None else None


def _parse_event(provider: str, event: str, h: Mapping[str, str], body: bytes) -> PushEvent | None:
    if provider == "github":
        if event != "push":
            return None
        return _github_like("github", _payload(body, h))
    if provider == "gitea":
        if event != "push":
            return None
        return _github_like("gitea", _payload(body, h))
    if provider == "gitlab":
        return _gitlab(event, _payload(body, h))
    if event == "repo:push":
        return _bitbucket_cloud(_payload(body, h))
    if event == "repo:refs_changed":
        return _bitbucket_server(_payload(body, h))
    return None


def _event_name(headers: Mapping[str, str]) -> str:
    """The event the provider's header names (``push``, ``ping``, ``Push Hook``…), or ``""``."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        return _detect(h)[1]
    except WebhookRejected:
        return ""


_EVENT_HEADERS = (
    ("x-forgejo-event", "gitea"),
    ("x-gitea-event", "gitea"),
    ("x-gogs-event", "gitea"),
    ("x-github-event", "github"),
    ("x-gitlab-event", "gitlab"),
    ("x-event-key", "bitbucket"),
)


def _detect(h: Mapping[str, str]) -> tuple[str, str]:
    for header, provider in _EVENT_HEADERS:
        value = h.get(header, "").strip()
        if value:
            return provider, value
    raise WebhookRejected(
        400,
        "unknown webhook provider: expected an X-GitHub-Event, X-Gitlab-Event, "
        "X-Gitea-Event, X-Forgejo-Event or X-Event-Key header",
    )


def _authenticate(
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


def _payload(body: bytes, h: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object in ``body``; GitHub and Gitea may send it form-encoded as ``payload=``."""
    raw: str | bytes = body
    if h.get("content-type", "").split(";")[0].strip().lower() == _FORM:
        try:
            form = parse_qs(body.decode("utf-8"), max_num_fields=64)
        except ValueError as err:
            raise WebhookRejected(400, "form body is not valid") from err
        raw = (form.get("payload") or [""])[0]
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise WebhookRejected(400, "body is not valid JSON") from err
    if not isinstance(data, dict):
        raise WebhookRejected(400, "body is not a JSON object")
    return data


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _sha(*candidates: Any) -> str:
    """The first full, non-zero SHA among ``candidates`` (lowercase), else ``""``."""
    for c in candidates:
        text = _str(c).strip().lower()
        if is_full_sha(text) and text not in _ZERO_SHA:
            return text
    return ""


def _split_ref(ref: str) -> tuple[RefKind, str] | None:
    if ref.startswith("refs/heads/"):
        return "branch", ref[len("refs/heads/") :]
    if ref.startswith("refs/tags/"):
        return "tag", ref[len("refs/tags/") :]
    return None


def _normalized(urls: list[Any]) -> frozenset[str]:
    out: set[str] = set()
    for url in urls:
        text = _str(url).strip()
        if not text:
            continue
        try:
            out.add(normalize_repo_url(text))
        except UserInputError:
            continue  # git://, an API URL with a query, …: not a way apps name the repo
    return frozenset(out)


def _event(
    provider: str,
    urls: list[Any],
    ref: tuple[RefKind, str] | None,
    default_branch: Any,
    after: str,
) -> PushEvent | None:
    repo_urls = _normalized(urls)
    if not repo_urls:
        raise WebhookRejected(400, "payload names no repository URL")
    if ref is None:
        return None  # refs/notes/…, refs/merge-requests/…: nothing an app tracks
    kind, name = ref
    try:
        name = validate_revision(name, sorted(repo_urls)[0])
    except UserInputError as err:
        raise WebhookRejected(400, f"payload ref is not valid: {err.message}") from err
    if not name:
        raise WebhookRejected(400, "payload ref is empty")
    return PushEvent(
        provider=provider,
        repo_urls=repo_urls,
        ref_kind=kind,
        ref=name,
        default_branch=_str(default_branch).strip(),
        after=after,
    )


def _changed_paths(data: dict[str, Any]) -> frozenset[str]:
    """Files touched by the push's commits, as GitHub, GitLab and Gitea list them.

    GitHub lists at most 20 commits (GitLab 20 too): when the list may be
    capped, say nothing rather than something partial.
    """
    commits = data.get("commits")
    if not isinstance(commits, list) or not commits or len(commits) >= 20:
        return frozenset()
    total = data.get("total_commits_count")
    if isinstance(total, int) and total > len(commits):
        return frozenset()
    out: set[str] = set()
    for c in commits:
        if not isinstance(c, dict):
            return frozenset()
        for key in ("added", "modified", "removed"):
            files = c.get(key) or []
            if not isinstance(files, list):
                return frozenset()
            out.update(str(f).strip("/") for f in files if isinstance(f, str))
    return frozenset(out)


def _full_ref(data: dict[str, Any]) -> tuple[RefKind, str] | None:
    ref = _str(data.get("ref"))
    if not ref:
        raise WebhookRejected(400, "payload has no ref")
    return _split_ref(ref)


def _github_like(provider: str, data: dict[str, Any]) -> PushEvent | None:
    """GitHub and Gitea/Forgejo/Gogs share the push payload's shape."""
    repo = data.get("repository")
    ref = _full_ref(data)
    urls = [_get(repo, k) for k in ("clone_url", "ssh_url", "html_url")]
    # head_commit is the commit even when ``after`` is an annotated tag object.
    after = _sha(_get(data, "head_commit", "id"), data.get("after"))
    pushed = _event(provider, urls, ref, _get(repo, "default_branch"), after)
    return dataclasses.replace(pushed, paths=_changed_paths(data)) if pushed else None


def _gitlab(event: str, data: dict[str, Any]) -> PushEvent | None:
    if event == "System Hook":
        # GitLab's system hooks carry the project hook's payload; Argo CD parses
        # gitlab.SystemHookEvents for push and tag_push alike.
        kind = _str(data.get("event_name")) or _str(data.get("object_kind"))
        if kind not in ("push", "tag_push"):
            return None
    elif event not in ("Push Hook", "Tag Push Hook"):
        return None
    ref = _full_ref(data)
    project, repo = data.get("project"), data.get("repository")
    urls = [_get(project, k) for k in ("git_http_url", "git_ssh_url", "web_url")]
    urls += [_get(repo, k) for k in ("git_http_url", "git_ssh_url", "homepage")]
    after = _sha(data.get("checkout_sha"), data.get("after"))
    pushed = _event("gitlab", urls, ref, _get(project, "default_branch"), after)
    return dataclasses.replace(pushed, paths=_changed_paths(data)) if pushed else None


def _bitbucket_cloud(data: dict[str, Any]) -> PushEvent | None:
    """Only the first change of ``push.changes`` is read, as Argo CD does.

    The payload gives no clone URL, only ``links.html.href``; the https and
    ssh clone URLs are that host and path, which is how Bitbucket names them.
    """
    html = _str(_get(data, "repository", "links", "html", "href")).strip()
    urls: list[Any] = [html]
    if html:
        parts = urlsplit(html)
        path = parts.path.strip("/")
        if parts.hostname and path:
            urls += [f"https://{parts.hostname}/{path}.git", f"git@{parts.hostname}:{path}.git"]
    changes = _get(data, "push", "changes")
    if not isinstance(changes, list) or not changes or not isinstance(changes[0], dict):
        raise WebhookRejected(400, "payload has no push.changes")
    new, old = changes[0].get("new"), changes[0].get("old")
    target = new if isinstance(new, dict) else old  # ``new`` is null for a deleted ref
    kind, name = _str(_get(target, "type")), _str(_get(target, "name"))
    if not name:
        raise WebhookRejected(400, "payload has no ref")
    ref: tuple[RefKind, str] | None = None
    if kind == "branch":
        ref = ("branch", name)
    elif kind == "tag":
        ref = ("tag", name)
    after = _sha(_get(new, "target", "hash"))
    default = _get(data, "repository", "mainbranch", "name")
    return _event("bitbucket", urls, ref, default, after)


def _bitbucket_server(data: dict[str, Any]) -> PushEvent | None:
    """Bitbucket Server/Data Center ``repo:refs_changed``; first change only, like Argo CD."""
    clone = _get(data, "repository", "links", "clone")
    urls = [c.get("href") for c in clone if isinstance(c, dict)] if isinstance(clone, list) else []
    changes = data.get("changes")
    if not isinstance(changes, list) or not changes or not isinstance(changes[0], dict):
        raise WebhookRejected(400, "payload has no changes")
    change = changes[0]
    ref_id = _str(_get(change, "ref", "id")) or _str(change.get("refId"))
    if not ref_id:
        raise WebhookRejected(400, "payload has no ref")
    after = "" if change.get("type") == "DELETE" else _sha(change.get("toHash"))
    return _event("bitbucket-server", urls, _split_ref(ref_id), "", after)


# --- matching ---------------------------------------------------------------------------


def path_changed(app: Application, event: PushEvent) -> bool:
    """Did the push change a file under the app's path? (Argo CD's
    manifest-generate-paths idea, used here to refresh such apps first.)"""
    root = app.spec.source.path.strip("/")
    if root in ("", "."):
        return bool(event.paths)
    return any(p == root or p.startswith(root + "/") for p in event.paths)


def touches(app: Application, event: PushEvent) -> bool:
    """Whether ``event`` may change what ``app`` deploys (see the module docstring)."""
    source = app.spec.source
    if _app_keys(source.repo_url).isdisjoint(_event_keys(event.repo_urls)):
        return False
    return _revision_touched(source.target_revision, event)


def _revision_touched(target_revision: str, event: PushEvent) -> bool:
    rev = target_revision.strip() or "HEAD"
    if rev == "HEAD":
        if event.ref_kind != "branch":
            return False
        return not event.default_branch or event.ref == event.default_branch
    if is_full_sha(rev):
        return False
    split = _split_ref(rev)
    if split is not None:
        return split == (event.ref_kind, event.ref)
    if rev.startswith("refs/"):
        return False
    # A bare name is looked up as a branch, then as a tag (source.revisions):
    # a push of either kind with that name may change it.
    if rev == event.ref:
        return True
    if event.ref_kind != "tag":
        return False
    constraint = SemverConstraint.parse(rev)
    version = tag_version(event.ref)
    return constraint is not None and version is not None and constraint.matches(version)


def _key(url: str) -> tuple[str, str] | None:
    try:
        normalized = normalize_repo_url(url)
    except UserInputError:
        return None
    parts = urlsplit(normalized)
    return (parts.hostname or "", parts.path.rstrip("/").lower())


@functools.lru_cache(maxsize=4096)
def _app_keys(repo_url: str) -> frozenset[tuple[str, str]]:
    key = _key(repo_url)
    if key is None:
        return frozenset()
    host, path = key
    keys = {key}
    for prefix in _SSH_HOST_PREFIXES:
        if host.startswith(prefix):
            keys.add((host[len(prefix) :], path))
    return frozenset(keys)


@functools.lru_cache(maxsize=256)
def _event_keys(repo_urls: frozenset[str]) -> frozenset[tuple[str, str]]:
    return frozenset(k for k in map(_key, repo_urls) if k is not None)


# --- secrets ----------------------------------------------------------------------------

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
        present = [k for k in keys if _str(data.get(k)).strip()]
        found[provider] = _str(data.get(present[0])).strip() if present else ""
        values = {_str(data.get(k)).strip() for k in present}
        if len(values) > 1:
            log.warning(
                "event=webhook_secret_conflict provider=%s used=%s ignored=%s",
                provider,
                present[0],
                ",".join(present[1:]),
            )
    return WebhookSecrets(**found)


# --- HTTP -------------------------------------------------------------------------------

_DESCRIPTION = """\
Push webhooks from GitHub, GitLab, Gitea/Forgejo and Bitbucket (Cloud and Server).
Point the forge's webhook at this URL with content type `application/json` and the
push event. The request is authenticated with the provider's secret when one is
configured (`webhook.<provider>.secret` in the gitmoor secret, Argo CD's keys):
GitHub `X-Hub-Signature-256`, Gitea/Forgejo `X-Gitea-Signature`/`X-Forgejo-Signature`,
GitLab `X-Gitlab-Token`, Bitbucket `X-Hub-Signature`, `?secret=` or `X-Hook-UUID`.
A provider with no secret is refused (401) unless the controller runs with
`--webhook-allow-unsigned`.
Applications whose `repoURL` names the pushed repository and whose `targetRevision`
is the pushed branch or tag (or `HEAD`, or a semver range the tag satisfies) are
refreshed at once instead of at the next poll. Refreshes are rate-limited per
repository: a push over the limit is answered 202 and refreshes its apps when the
limit allows, together with the other pushes to that repository until then.
"""


def _error(example: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"example": {"error": example}}},
    }


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": 'A push: `{"refreshed": <apps>}`; another event: `{"ignored": <event>}`.',
        "content": {"application/json": {"example": {"refreshed": 2}}},
    },
    202: {
        "description": "A push over the repository's rate limit: its refresh runs in "
        '`{"deferred": <seconds>}`, coalesced with other pushes to that repository.',
        "content": {"application/json": {"example": {"deferred": 7.5}}},
    },
    400: _error("body is not valid JSON", "Unknown provider, invalid JSON or payload."),
    401: _error(
        "signature mismatch", "Missing or wrong signature or token, or no secret configured."
    ),
    413: _error("body larger than 1048576 bytes", "Body over the size limit."),
    500: _error("refresh failed", "The refresh could not be requested."),
    503: _error("webhook secrets unavailable", "The secrets could not be read."),
}


def repo_key(event: PushEvent) -> str:
    """The rate limiter's key: the pushed repository as host and path, so that the
    https and ssh spellings of one repository in one payload share a bucket."""
    keys = sorted(_event_keys(event.repo_urls))
    if keys:
        host, path = keys[0]
        return f"{host}{path}"
    return min(event.repo_urls, default="")


def repo_keys(event: PushEvent) -> list[str]:
    """Every repository (host and path) a push names, each spelling once."""
    keys = sorted({f"{host}{path}" for host, path in _event_keys(event.repo_urls)})
    return keys or [repo_key(event)]


class _Deferred:
    """Pushes over a repository's limit, one per ref, refreshed together when due."""

    #: distinct refs held per repository; more are dropped (logged): a forged
    #: flood of invented branch names cannot grow memory without bound
    MAX_REFS = 32

    def __init__(
        self, on_push: Callable[[PushEvent], Awaitable[int]], limiter: RepoRateLimiter
    ) -> None:
        self.on_push, self.limiter = on_push, limiter
        self.pending: dict[str, dict[tuple[str, str], PushEvent]] = {}
        self.due: dict[str, float] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def remaining(self, key: str) -> float:
        return max(0.0, self.due.get(key, 0.0) - asyncio.get_running_loop().time())

    def add(self, key: str, event: PushEvent, wait: float) -> None:
        refs = self.pending.get(key)
        if refs is None:
            refs = self.pending[key] = {}
            loop = asyncio.get_running_loop()
            self.due[key] = loop.time() + wait
            task = loop.create_task(self._fire(key, wait))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        ref = (event.ref_kind, event.ref)
        before = refs.get(ref)
        if before is None and len(refs) >= self.MAX_REFS:
            log.warning("event=webhook_deferred_dropped repo=%s ref=%s:%s", key, *ref)
            return
        if before is not None:
            # The latest push wins (its ``after``); a path list is kept only when
            # both list theirs, and the lane only when both were verified.
            paths = before.paths | event.paths if before.paths and event.paths else frozenset()
            event = dataclasses.replace(
                event, paths=paths, verified=before.verified and event.verified
            )
        refs[ref] = event

    async def _fire(self, key: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self.limiter.take(key, force=True)
        events = self.pending.pop(key, {})
        self.due.pop(key, None)
        total = 0
        for event in events.values():
            try:
                total += await self.on_push(event)
            except Exception:
                log.exception("event=webhook_refresh_failed repo=%s ref=%s", key, event.ref)
        log.info(
            "event=webhook_deferred_refresh repo=%s refs=%d refreshed=%d", key, len(events), total
        )


def webhook_router(
    on_push: Callable[[PushEvent], Awaitable[int]],
    secrets: Callable[[], Awaitable[WebhookSecrets]] | WebhookSecrets,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    allow_unsigned: bool = False,
    limits: RefreshLimits | None = None,
    limiter: RepoRateLimiter | None = None,
) -> APIRouter:
    """A router serving ``POST /api/webhook``.

    ``on_push`` gets each verified push and returns how many apps it
    refreshed; it runs before the response is sent and forges give up after
    about 10 s (GitHub), so it should enqueue refreshes, not run syncs.
    ``secrets`` may be a coroutine function, awaited on every request, so a
    rotated Secret takes effect without a restart (Argo CD re-reads
    argocd-secret the same way). The body is read as a stream and the request
    refused as soon as it passes ``max_body`` bytes, so an oversized body is
    never held in memory.

    ``allow_unsigned`` accepts requests of providers with no secret (see the
    module docstring); ``limits`` (or a ready ``limiter``, for tests with a
    clock of their own) sets the per-repository rate limit.
    """
    if max_body <= 0:
        raise ValueError("max_body must be positive")
    router = APIRouter(tags=["webhooks"])
    rate = limiter if limiter is not None else RepoRateLimiter(limits or RefreshLimits())
    deferred = _Deferred(on_push, rate)

    async def current_secrets() -> WebhookSecrets:
        if isinstance(secrets, WebhookSecrets):
            return secrets
        return await secrets()

    @router.post(
        WEBHOOK_PATH,
        summary="Receive a Git push webhook",
        description=_DESCRIPTION,
        responses=_RESPONSES,
        response_class=JSONResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "description": "The forge's push payload."}
                    }
                },
            }
        },
    )
    async def receive_webhook(request: Request) -> JSONResponse:
        remote = request.client.host if request.client else "-"
        try:
            body = await _read_capped(request, max_body)
            try:
                configured = await current_secrets()
            except Exception:
                log.exception("event=webhook_secrets_unavailable remote=%s", remote)
                return JSONResponse({"error": "webhook secrets unavailable"}, status_code=503)
            event = parse_push(
                request.headers,
                body,
                configured,
                query=request.query_params,
                allow_unsigned=allow_unsigned,
            )
        except WebhookRejected as err:
            log.warning(
                "event=webhook_rejected status=%d reason=%r event_type=%r remote=%s",
                err.status_code,
                err.reason,
                _event_name(request.headers),
                remote,
            )
            return JSONResponse({"error": err.reason}, status_code=err.status_code)
        if event is None:
            name = _event_name(request.headers)
            log.info("event=webhook_ignored event_type=%r remote=%s", name, remote)
            return JSONResponse({"ignored": name})
        key = repo_key(event)
        # A deferred refresh already waiting for this repository is joined even if
        # a token came back meanwhile, so a later push never overtakes an earlier one.
        joining = key in deferred.pending
        # Every repository the payload names pays a token, not only the first: a
        # forged payload that adds an invented URL beside the real one would
        # otherwise get a fresh bucket at each push while refreshing the real one.
        wait = (
            deferred.remaining(key)
            if joining
            else max([rate.take(k) for k in repo_keys(event)], default=0.0)
        )
        if joining or wait > 0:
            deferred.add(key, event, wait)
            log.info(
                "event=webhook_deferred provider=%s repo=%s ref=%s:%s verified=%s remote=%s",
                event.provider,
                key,
                event.ref_kind,
                event.ref,
                event.verified,
                remote,
            )
            return JSONResponse({"deferred": round(max(wait, 0.0), 1)}, status_code=202)
        try:
            refreshed = await on_push(event)
        except Exception:
            log.exception(
                "event=webhook_refresh_failed provider=%s ref=%s:%s",
                event.provider,
                event.ref_kind,
                event.ref,
            )
            # The cause stays in the log: the caller may be anyone.
            return JSONResponse({"error": "refresh failed"}, status_code=500)
        log.info(
            "event=webhook_push provider=%s repo=%s ref=%s:%s after=%s verified=%s refreshed=%d "
            "remote=%s",
            event.provider,
            ",".join(sorted(event.repo_urls)),
            event.ref_kind,
            event.ref,
            event.after or "-",
            event.verified,
            refreshed,
            remote,
        )
        return JSONResponse({"refreshed": refreshed})

    return router


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``limit`` bytes.

    ``Content-Length`` is checked first (no byte is read for a declared
    oversize), then the stream itself, since a chunked body declares nothing.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise WebhookRejected(400, "invalid Content-Length")
        if int(declared) > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise WebhookRejected(413, f"body larger than {limit} bytes")
    except ClientDisconnect as err:
        raise WebhookRejected(400, "client disconnected before the body was complete") from err
    return bytes(body)
