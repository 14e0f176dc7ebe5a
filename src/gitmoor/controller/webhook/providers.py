"""Who sent a webhook, and the push it describes: one :class:`PushEvent` per forge payload.

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

Nothing here checks a signature: :func:`gitmoor.controller.webhook.auth.parse_push`
runs :func:`detect`, then the provider's check, and only then
:func:`parse_event`, so that nothing an unauthenticated sender writes reaches
the JSON parser. The parsers are pure functions of the headers and the body.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from gitmoor.model import UserInputError
from gitmoor.source import normalize_repo_url, validate_revision
from gitmoor.source.match import RefKind, split_ref
from gitmoor.source.revisions import is_full_sha

if TYPE_CHECKING:
    from collections.abc import Mapping

_ZERO_SHA = frozenset({"0" * 40, "0" * 64})
_FORM = "application/x-www-form-urlencoded"


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
    #: apps in the priority lane (see :mod:`gitmoor.controller.webhook`)
    verified: bool = False


class WebhookRejected(Exception):
    """A request refused before any side effect; ``status_code`` is what the forge sees."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(f"{status_code} {reason}")
        self.status_code = status_code
        self.reason = reason


def parse_event(provider: str, event: str, h: Mapping[str, str], body: bytes) -> PushEvent | None:
    """The push of ``provider``'s ``event``, not yet verified; None for an event that is not a push."""
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


def event_name(headers: Mapping[str, str]) -> str:
    """The event the provider's header names (``push``, ``ping``, ``Push Hook``…), or ``""``."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        return detect(h)[1]
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


def detect(h: Mapping[str, str]) -> tuple[str, str]:
    """``(provider, event)`` from the first event header present (lowercase keys); else 400."""
    for header, provider in _EVENT_HEADERS:
        value = h.get(header, "").strip()
        if value:
            return provider, value
    raise WebhookRejected(
        400,
        "unknown webhook provider: expected an X-GitHub-Event, X-Gitlab-Event, "
        "X-Gitea-Event, X-Forgejo-Event or X-Event-Key header",
    )


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


def as_str(value: Any) -> str:
    """``value`` if it is a string, else ``""``: payload fields are whatever the sender wrote."""
    return value if isinstance(value, str) else ""


def _sha(*candidates: Any) -> str:
    """The first full, non-zero SHA among ``candidates`` (lowercase), else ``""``."""
    for c in candidates:
        text = as_str(c).strip().lower()
        if is_full_sha(text) and text not in _ZERO_SHA:
            return text
    return ""


def _normalized(urls: list[Any]) -> frozenset[str]:
    out: set[str] = set()
    for url in urls:
        text = as_str(url).strip()
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
        default_branch=as_str(default_branch).strip(),
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
    ref = as_str(data.get("ref"))
    if not ref:
        raise WebhookRejected(400, "payload has no ref")
    return split_ref(ref)


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
        kind = as_str(data.get("event_name")) or as_str(data.get("object_kind"))
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
    html = as_str(_get(data, "repository", "links", "html", "href")).strip()
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
    kind, name = as_str(_get(target, "type")), as_str(_get(target, "name"))
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
    ref_id = as_str(_get(change, "ref", "id")) or as_str(change.get("refId"))
    if not ref_id:
        raise WebhookRejected(400, "payload has no ref")
    after = "" if change.get("type") == "DELETE" else _sha(change.get("toHash"))
    return _event("bitbucket-server", urls, split_ref(ref_id), "", after)
