"""Push webhooks: verification, payload parsing per forge, app matching, the HTTP route.

Payloads in ``testdata/webhook`` have the shape each forge sends (GitHub,
GitLab, Gitea, Bitbucket Cloud and Server); variants (a deleted branch, a
tag) are derived from them in the tests that need them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI

from gitmoor.controller.webhook import (
    PushEvent,
    WebhookRejected,
    WebhookSecrets,
    load_secrets_from_secret,
    parse_push,
    touches,
    webhook_router,
)
from gitmoor.controller.webhook import auth as webhook_auth
from gitmoor.model.application import Application, ApplicationSpec, AppSource, Destination

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

TESTDATA = Path(__file__).parent / "testdata" / "webhook"

GH, GL, GT, BB = "gh-s3cret-Zq8", "gl-t0ken-Xv2", "gt-s3cret-Pw5", "bb-s3cret-Kd7"
SECRETS = WebhookSecrets(github=GH, gitlab=GL, gitea=GT, bitbucket=BB)

GITHUB_URLS = frozenset(
    {"https://github.com/Gitmoor-Demo/guestbook", "ssh://github.com/Gitmoor-Demo/guestbook"}
)
GITHUB_AFTER = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"


def load(name: str) -> bytes:
    return (TESTDATA / name).read_bytes()


def load_json(name: str) -> dict[str, Any]:
    data = json.loads(load(name))
    assert isinstance(data, dict)
    return data


def hexsig(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(body: bytes, event: str = "push", secret: str = GH) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": "sha256=" + hexsig(body, secret),
        "User-Agent": "GitHub-Hookshot/044aadd",
    }


def gitlab_headers(event: str = "Push Hook", token: str = GL) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Instance": "https://gitlab.example.com",
    }


def gitea_headers(body: bytes, event: str = "push", secret: str = GT) -> dict[str, str]:
    # What Gitea really sends: its own headers plus GitHub- and Gogs-compatible ones.
    return {
        "Content-Type": "application/json",
        "X-Gitea-Event": event,
        "X-Gitea-Signature": hexsig(body, secret),
        "X-Gogs-Event": event,
        "X-GitHub-Event": event,
    }


def bitbucket_headers(event: str = "repo:push", **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Event-Key": event,
        "X-Hook-UUID": "4d1f6a92-0c3a-4b0e-9f3e-5b8a2c6d7e81",
        "X-Request-UUID": "9b3c2f10-1a2b-4c5d-8e9f-0a1b2c3d4e5f",
        "User-Agent": "Bitbucket-Webhooks/2.0",
        **extra,
    }


def make_app(repo_url: str, revision: str = "HEAD") -> Application:
    return Application(
        name="guestbook",
        namespace="gitmoor",
        spec=ApplicationSpec(
            source=AppSource(repo_url=repo_url, path="overlays/prod", target_revision=revision),
            destination=Destination(namespace="guestbook"),
        ),
    )


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh process would: no provider warned about yet."""
    monkeypatch.setattr(webhook_auth, "_warned_unsigned", set())


# --- parsing, one forge at a time ------------------------------------------------------


def test_github_push() -> None:
    body = load("github_push.json")
    event = parse_push(github_headers(body), body, SECRETS)
    assert event == PushEvent(
        provider="github",
        verified=True,
        repo_urls=GITHUB_URLS,
        ref_kind="branch",
        ref="main",
        default_branch="main",
        after=GITHUB_AFTER,
        paths=frozenset({"overlays/prod/replicas.yaml"}),
    )


def test_github_tag_push_reports_the_commit_not_the_tag_object() -> None:
    body = load("github_tag_push.json")
    event = parse_push(github_headers(body), body, SECRETS)
    assert event is not None
    assert (event.ref_kind, event.ref) == ("tag", "v1.2.0")
    # ``after`` is the annotated tag object; head_commit is what gets deployed.
    assert event.after == GITHUB_AFTER


def test_github_branch_deletion_has_no_after() -> None:
    data = load_json("github_push.json")
    data.update(after="0" * 40, deleted=True, head_commit=None, commits=[])
    body = json.dumps(data).encode()
    event = parse_push(github_headers(body), body, SECRETS)
    assert event is not None
    assert (event.ref, event.after) == ("main", "")


def test_github_form_encoded_payload() -> None:
    body = urlencode({"payload": load("github_push.json").decode()}).encode()
    headers = github_headers(body) | {"Content-Type": "application/x-www-form-urlencoded"}
    event = parse_push(headers, body, SECRETS)
    assert event is not None
    assert event.repo_urls == GITHUB_URLS


def test_headers_are_matched_without_regard_to_case() -> None:
    body = load("github_push.json")
    headers = {k.lower(): v for k, v in github_headers(body).items()}
    assert parse_push(headers, body, SECRETS) is not None
    headers = {k.upper(): v for k, v in github_headers(body).items()}
    assert parse_push(headers, body, SECRETS) is not None


def test_gitlab_push() -> None:
    body = load("gitlab_push.json")
    event = parse_push(gitlab_headers(), body, SECRETS)
    assert event == PushEvent(
        provider="gitlab",
        verified=True,
        repo_urls=frozenset(
            {
                "https://gitlab.example.com/platform/deploy/guestbook",
                "ssh://gitlab.example.com/platform/deploy/guestbook",
            }
        ),
        ref_kind="branch",
        ref="release/2024.05",
        default_branch="main",
        after="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        paths=frozenset({"base/frontend.yaml"}),
    )


def test_gitlab_tag_push() -> None:
    body = load("gitlab_tag_push.json")
    event = parse_push(gitlab_headers("Tag Push Hook"), body, SECRETS)
    assert event is not None
    assert (event.ref_kind, event.ref) == ("tag", "v1.3.0")
    assert event.after == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"  # checkout_sha
    assert "ssh://gitlab.example.com:2222/platform/deploy/guestbook" in event.repo_urls


def test_gitlab_system_hook_push_and_other_system_events() -> None:
    body = load("gitlab_push.json")
    event = parse_push(gitlab_headers("System Hook"), body, SECRETS)
    assert event is not None and event.ref == "release/2024.05"
    other = json.dumps({"event_name": "project_create", "object_kind": "project_create"})
    assert parse_push(gitlab_headers("System Hook"), other.encode(), SECRETS) is None


def test_gitea_push_is_not_mistaken_for_github() -> None:
    """Gitea sends X-GitHub-Event too; with GitHub's rules this request would be a 401."""
    body = load("gitea_push.json")
    event = parse_push(gitea_headers(body), body, SECRETS)
    assert event == PushEvent(
        provider="gitea",
        verified=True,
        repo_urls=frozenset(
            {"https://git.example.org/ops/guestbook", "ssh://git.example.org:2222/ops/guestbook"}
        ),
        ref_kind="branch",
        ref="main",
        default_branch="main",
        after="67b56589a45103f891bdee7c0546e5d40bc02001",
        paths=frozenset({"overlays/prod/kustomization.yaml"}),
    )


def test_forgejo_push() -> None:
    body = load("gitea_push.json")
    headers = {"X-Forgejo-Event": "push", "X-Forgejo-Signature": hexsig(body, GT)}
    event = parse_push(headers, body, SECRETS)
    assert event is not None and event.provider == "gitea"


@pytest.mark.parametrize(
    "headers,query",
    [
        pytest.param(
            {"X-Hub-Signature": "sha256=" + hexsig(load("bitbucket_push.json"), BB)},
            {},
            id="x-hub-signature",
        ),
        pytest.param({}, {"secret": BB}, id="query-secret"),
        pytest.param({"X-Hook-UUID": BB}, {}, id="hook-uuid-argocd"),
    ],
)
def test_bitbucket_cloud_push(headers: dict[str, str], query: dict[str, str]) -> None:
    body = load("bitbucket_push.json")
    event = parse_push(bitbucket_headers(**headers), body, SECRETS, query=query)
    assert event == PushEvent(
        provider="bitbucket",
        verified=True,
        repo_urls=frozenset(
            {"https://bitbucket.org/moorings/guestbook", "ssh://bitbucket.org/moorings/guestbook"}
        ),
        ref_kind="branch",
        ref="main",
        default_branch="",
        after="709d658dc5b6d6afcd46049c2f332ee3f515a67d",
    )


def test_bitbucket_cloud_deleted_branch_and_tag() -> None:
    data = load_json("bitbucket_push.json")
    change = data["push"]["changes"][0]
    change["new"] = None
    body = json.dumps(data).encode()
    event = parse_push(bitbucket_headers(), body, SECRETS, query={"secret": BB})
    assert event is not None
    assert (event.ref_kind, event.ref, event.after) == ("branch", "main", "")

    change["new"] = change["old"] | {"type": "tag", "name": "v2.0.0"}
    body = json.dumps(data).encode()
    event = parse_push(bitbucket_headers(), body, SECRETS, query={"secret": BB})
    assert event is not None
    assert (event.ref_kind, event.ref) == ("tag", "v2.0.0")


def test_bitbucket_server_refs_changed() -> None:
    body = load("bitbucket_server_refs_changed.json")
    headers = {
        "X-Event-Key": "repo:refs_changed",
        "X-Request-Id": "d7a6b0a4-6f43-4b3a-9d6b-4c2f7a1e0b9c",
        "X-Hub-Signature": "sha256=" + hexsig(body, BB),
    }
    event = parse_push(headers, body, SECRETS)
    assert event == PushEvent(
        provider="bitbucket-server",
        verified=True,
        repo_urls=frozenset(
            {
                "ssh://bitbucket.example.com:7999/ops/guestbook",
                "https://bitbucket.example.com/scm/ops/guestbook",
            }
        ),
        ref_kind="branch",
        ref="main",
        default_branch="",
        after="178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
    )


@pytest.mark.parametrize(
    "name,headers_for",
    [
        ("github_ping.json", lambda b: github_headers(b, "ping")),
        ("github_push.json", lambda b: github_headers(b, "issues")),
        ("gitea_push.json", lambda b: gitea_headers(b, "create")),
        ("gitlab_push.json", lambda b: gitlab_headers("Merge Request Hook")),
        (
            "bitbucket_push.json",
            lambda b: bitbucket_headers("pullrequest:created", **{"X-Hook-UUID": BB}),
        ),
        (
            "bitbucket_server_refs_changed.json",
            lambda b: {
                "X-Event-Key": "diagnostics:ping",
                "X-Hub-Signature": "sha256=" + hexsig(b, BB),
            },
        ),
    ],
)
def test_valid_events_that_are_not_pushes_give_none(
    name: str, headers_for: Callable[[bytes], dict[str, str]]
) -> None:
    body = load(name)
    assert parse_push(headers_for(body), body, SECRETS) is None


def test_push_to_a_ref_no_app_can_track_gives_none() -> None:
    data = load_json("github_push.json") | {"ref": "refs/notes/commits"}
    body = json.dumps(data).encode()
    assert parse_push(github_headers(body), body, SECRETS) is None


# --- rejections ---------------------------------------------------------------------------


def _github(**change: str | None) -> tuple[dict[str, str], bytes]:
    body = load("github_push.json")
    headers = github_headers(body)
    for key, value in change.items():
        name = key.replace("_", "-")
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    return headers, body


REJECTIONS: list[Any] = [
    pytest.param(*_github(**{"X_Hub_Signature_256": "sha256=" + "0" * 64}), 401, id="gh-wrong"),
    pytest.param(*_github(**{"X_Hub_Signature_256": None}), 401, id="gh-missing"),
    pytest.param(
        *_github(
            **{
                "X_Hub_Signature_256": None,
                "X_Hub_Signature": "sha1="
                + hmac.new(GH.encode(), load("github_push.json"), hashlib.sha1).hexdigest(),
            }
        ),
        401,
        id="gh-sha1-only",
    ),
    pytest.param(
        *_github(
            **{"X_Hub_Signature_256": "sha1=" + hexsig(load("github_push.json"), GH)},
        ),
        401,
        id="gh-wrong-algorithm-prefix",
    ),
    pytest.param(
        *_github(**{"X_Hub_Signature_256": "sha256=" + hexsig(load("github_push.json"), "guess")}),
        401,
        id="gh-other-secret",
    ),
    pytest.param(*_github(**{"X_Hub_Signature_256": "sha256=ünïcødé"}), 401, id="gh-non-ascii"),
    pytest.param(
        github_headers(load("github_push.json")),
        load("github_push.json").replace(b'"main"', b'"prod"'),
        401,
        id="gh-tampered-body",
    ),
    pytest.param(
        github_headers(b"{}", "ping", secret="wrong"), b"{}", 401, id="gh-ping-wrong-signature"
    ),
    pytest.param(
        gitea_headers(load("gitea_push.json"), secret="wrong"),
        load("gitea_push.json"),
        401,
        id="gitea-wrong",
    ),
    pytest.param(
        {"X-Gitea-Event": "push", "X-GitHub-Event": "push"},
        load("gitea_push.json"),
        401,
        id="gitea-missing",
    ),
    pytest.param(gitlab_headers(token="wrong"), load("gitlab_push.json"), 401, id="gitlab-wrong"),
    pytest.param(
        {"X-Gitlab-Event": "Push Hook"}, load("gitlab_push.json"), 401, id="gitlab-missing"
    ),
    pytest.param(
        {"X-Event-Key": "repo:push"}, load("bitbucket_push.json"), 401, id="bitbucket-missing"
    ),
    pytest.param(
        bitbucket_headers(), load("bitbucket_push.json"), 401, id="bitbucket-foreign-uuid"
    ),
    pytest.param(
        bitbucket_headers(**{"X-Hub-Signature": "sha256=" + "f" * 64}),
        load("bitbucket_push.json"),
        401,
        id="bitbucket-wrong-signature",
    ),
    pytest.param(
        {"Content-Type": "application/json"}, load("github_push.json"), 400, id="unknown-provider"
    ),
    pytest.param(github_headers(b"{not json"), b"{not json", 400, id="invalid-json"),
    pytest.param(github_headers(b"[1, 2]"), b"[1, 2]", 400, id="not-an-object"),
    pytest.param(
        github_headers(b"[" * 100_000), b"[" * 100_000, 400, id="nested-beyond-recursion-limit"
    ),
    pytest.param(
        github_headers(b"{not json", secret="wrong"), b"{not json", 401, id="auth-before-json"
    ),
    pytest.param(
        github_headers(b'{"repository": {}}'), b'{"repository": {}}', 400, id="push-without-ref"
    ),
    pytest.param(
        github_headers(b'{"ref": "refs/heads/main"}'),
        b'{"ref": "refs/heads/main"}',
        400,
        id="push-without-repository",
    ),
]


@pytest.mark.parametrize("headers,body,status", REJECTIONS)
def test_rejections(headers: dict[str, str], body: bytes, status: int) -> None:
    with pytest.raises(WebhookRejected) as info:
        parse_push(headers, body, SECRETS)
    assert info.value.status_code == status
    assert info.value.reason


def test_bitbucket_wrong_query_secret_is_rejected() -> None:
    body = load("bitbucket_push.json")
    with pytest.raises(WebhookRejected) as info:
        parse_push(bitbucket_headers(), body, SECRETS, query={"secret": BB + "x"})
    assert info.value.status_code == 401


@pytest.mark.parametrize("ref", ["refs/heads/-upload-pack", "refs/heads/a..b", "refs/tags/v1\n2"])
def test_refs_that_are_not_revisions_are_rejected(ref: str) -> None:
    data = load_json("github_push.json") | {"ref": ref}
    body = json.dumps(data).encode()
    with pytest.raises(WebhookRejected) as info:
        parse_push(github_headers(body), body, SECRETS)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "headers,body",
    [
        ({"X-GitHub-Event": "push"}, "github_push.json"),
        ({"X-Gitea-Event": "push"}, "gitea_push.json"),
        ({"X-Gitlab-Event": "Push Hook"}, "gitlab_push.json"),
        ({"X-Event-Key": "repo:push"}, "bitbucket_push.json"),
    ],
    ids=["github", "gitea", "gitlab", "bitbucket"],
)
def test_unsigned_refused_when_the_provider_has_no_secret(
    headers: dict[str, str], body: str
) -> None:
    """Unlike Argo CD, no secret configured means no request accepted: an unused
    provider must not be a door anyone can knock on."""
    with pytest.raises(WebhookRejected) as info:
        parse_push(headers, load(body), WebhookSecrets())
    assert info.value.status_code == 401
    assert "--webhook-allow-unsigned" in info.value.reason
    assert "secret" in info.value.reason


def test_unsigned_accepted_with_allow_unsigned_unverified_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """--webhook-allow-unsigned restores Argo CD's rule: no secret, no verification."""
    body = load("github_push.json")
    headers = {"X-GitHub-Event": "push"}
    with caplog.at_level(logging.WARNING, logger="gitmoor.controller.webhook"):
        for _ in range(3):
            event = parse_push(headers, body, WebhookSecrets(gitlab=GL), allow_unsigned=True)
            assert event is not None
            assert not event.verified
        gitea = parse_push(
            {"X-Gitea-Event": "push"},
            load("gitea_push.json"),
            WebhookSecrets(),
            allow_unsigned=True,
        )
        assert gitea is not None and not gitea.verified
    warnings = [r.getMessage() for r in caplog.records if "webhook_unsigned" in r.getMessage()]
    assert len(warnings) == 2
    assert "provider=github" in warnings[0] and "provider=gitea" in warnings[1]


def test_allow_unsigned_does_not_weaken_a_configured_secret() -> None:
    body = load("github_push.json")
    forged = github_headers(body, secret="attacker")
    with pytest.raises(WebhookRejected) as info:
        parse_push(forged, body, SECRETS, allow_unsigned=True)
    assert info.value.status_code == 401
    unsigned = {"X-GitHub-Event": "push"}
    with pytest.raises(WebhookRejected):
        parse_push(unsigned, body, SECRETS, allow_unsigned=True)


def test_a_secret_for_one_provider_does_not_sign_another() -> None:
    body = load("gitlab_push.json")
    with pytest.raises(WebhookRejected):
        parse_push(gitlab_headers(token=GH), body, SECRETS)


# --- which apps a push touches --------------------------------------------------------------

EVENT_MAIN = PushEvent("github", GITHUB_URLS, "branch", "main", "main", GITHUB_AFTER)
EVENT_FEATURE = PushEvent("github", GITHUB_URLS, "branch", "feature/x", "main", GITHUB_AFTER)
EVENT_NO_DEFAULT = PushEvent("bitbucket", GITHUB_URLS, "branch", "feature/x", "", GITHUB_AFTER)
EVENT_TAG = PushEvent("github", GITHUB_URLS, "tag", "v1.2.0", "main", GITHUB_AFTER)
EVENT_ODD_TAG = PushEvent("github", GITHUB_URLS, "tag", "nightly", "main", GITHUB_AFTER)


@pytest.mark.parametrize(
    "repo_url,expected",
    [
        ("https://github.com/Gitmoor-Demo/guestbook.git", True),
        ("https://github.com/Gitmoor-Demo/guestbook", True),
        ("https://github.com/Gitmoor-Demo/guestbook/", True),
        ("https://GitHub.COM/Gitmoor-Demo/guestbook.git", True),
        ("https://github.com:443/Gitmoor-Demo/guestbook", True),
        ("http://github.com/Gitmoor-Demo/guestbook", True),
        ("git@github.com:Gitmoor-Demo/guestbook.git", True),
        ("git@GITHUB.com:Gitmoor-Demo/guestbook", True),
        ("ssh://git@github.com/Gitmoor-Demo/guestbook.git", True),
        ("ssh://git@ssh.github.com:443/Gitmoor-Demo/guestbook.git", True),
        ("https://github.com/gitmoor-demo/GUESTBOOK", True),
        ("https://github.com/Gitmoor-Demo/guestbook-config", False),
        ("https://github.com/Gitmoor-Demo/guestbook/charts", False),
        ("https://github.com/Gitmoor-Demo", False),
        ("https://github.com/Someone-Else/guestbook", False),
        ("https://gitlab.com/Gitmoor-Demo/guestbook", False),
        ("https://github.com.evil.example/Gitmoor-Demo/guestbook", False),
        ("file:///srv/git/Gitmoor-Demo/guestbook", False),
        ("not a repository url", False),
    ],
)
def test_touches_repository_url_forms(repo_url: str, expected: bool) -> None:
    assert touches(make_app(repo_url, "main"), EVENT_MAIN) is expected


def test_touches_ssh_port_form_given_by_the_payload() -> None:
    body = load("gitlab_tag_push.json")
    event = parse_push(gitlab_headers("Tag Push Hook"), body, SECRETS)
    assert event is not None
    app = make_app("ssh://git@gitlab.example.com:2222/platform/deploy/guestbook.git", "v1.3.0")
    assert touches(app, event)
    assert not touches(
        make_app("https://gitlab.example.com/platform/deploy/other", "v1.3.0"), event
    )


@pytest.mark.parametrize(
    "revision,event,expected",
    [
        # HEAD follows the default branch when the payload names it, any branch otherwise.
        ("HEAD", EVENT_MAIN, True),
        ("", EVENT_MAIN, True),
        ("HEAD", EVENT_FEATURE, False),
        ("HEAD", EVENT_NO_DEFAULT, True),
        ("HEAD", EVENT_TAG, False),
        # Branch names, bare and qualified.
        ("main", EVENT_MAIN, True),
        ("main", EVENT_FEATURE, False),
        ("feature/x", EVENT_FEATURE, True),
        ("refs/heads/feature/x", EVENT_FEATURE, True),
        ("refs/heads/main", EVENT_FEATURE, False),
        ("refs/tags/feature/x", EVENT_FEATURE, False),
        # Tags, bare and qualified.
        ("v1.2.0", EVENT_TAG, True),
        ("refs/tags/v1.2.0", EVENT_TAG, True),
        ("refs/heads/v1.2.0", EVENT_TAG, False),
        ("v1.2.1", EVENT_TAG, False),
        # Semver constraints: a tag push whose version is in range.
        (">=1.0.0 <2.0.0", EVENT_TAG, True),
        ("^1.2", EVENT_TAG, True),
        ("1.2.*", EVENT_TAG, True),
        ("~1.1", EVENT_TAG, False),
        (">=2.0.0", EVENT_TAG, False),
        (">=1.0.0", EVENT_MAIN, False),
        (">=1.0.0", EVENT_ODD_TAG, False),
        # A commit never moves.
        (GITHUB_AFTER, EVENT_MAIN, False),
        ("6113728f27ae82c7b1a177c8d03f9e96e0adf246", EVENT_MAIN, False),
        ("refs/pull/1/head", EVENT_MAIN, False),
    ],
)
def test_touches_revisions(revision: str, event: PushEvent, expected: bool) -> None:
    app = make_app("git@github.com:Gitmoor-Demo/guestbook.git", revision)
    assert touches(app, event) is expected


def test_touches_needs_both_repository_and_revision() -> None:
    assert not touches(make_app("https://github.com/Someone-Else/guestbook", "HEAD"), EVENT_MAIN)
    assert not touches(make_app("https://github.com/Gitmoor-Demo/guestbook", "dev"), EVENT_MAIN)


def test_touches_bitbucket_derived_clone_forms() -> None:
    body = load("bitbucket_push.json")
    event = parse_push(bitbucket_headers(), body, SECRETS, query={"secret": BB})
    assert event is not None
    for url in (
        "git@bitbucket.org:moorings/guestbook.git",
        "https://emma@bitbucket.org/moorings/guestbook.git",
        "ssh://git@altssh.bitbucket.org:443/moorings/guestbook.git",
    ):
        assert touches(make_app(url, "HEAD"), event), url


# --- the HTTP route ----------------------------------------------------------------------


class Recorder:
    """An ``on_push`` that records what it was given."""

    def __init__(self, result: int = 3, error: Exception | None = None) -> None:
        self.events: list[PushEvent] = []
        self.result, self.error = result, error

    async def __call__(self, event: PushEvent) -> int:
        self.events.append(event)
        if self.error is not None:
            raise self.error
        return self.result


def client_for(
    on_push: Recorder,
    secrets: WebhookSecrets | Callable[[], Awaitable[WebhookSecrets]] = SECRETS,
    **kwargs: Any,
) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(webhook_router(on_push, secrets, **kwargs))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 40000)),
        base_url="http://gitmoor.test",
    )


async def test_route_push_calls_back_and_reports_the_count() -> None:
    on_push = Recorder(result=2)
    body = load("github_push.json")
    async with client_for(on_push) as client:
        r = await client.post("/api/webhook", content=body, headers=github_headers(body))
    assert (r.status_code, r.json()) == (200, {"refreshed": 2})
    assert [e.ref for e in on_push.events] == ["main"]
    assert on_push.events[0].repo_urls == GITHUB_URLS


@pytest.mark.parametrize(
    "headers_change,status",
    [({"X-Hub-Signature-256": "sha256=" + "a" * 64}, 401), ({"X-Hub-Signature-256": None}, 401)],
    ids=["wrong-signature", "missing-signature"],
)
async def test_route_rejects_bad_signatures_without_calling_back(
    headers_change: dict[str, str | None], status: int
) -> None:
    on_push = Recorder()
    body = load("github_push.json")
    headers: dict[str, str] = {}
    for k, v in (github_headers(body) | headers_change).items():
        if v is not None:
            headers[k] = v
    async with client_for(on_push) as client:
        r = await client.post("/api/webhook", content=body, headers=headers)
    assert r.status_code == status
    assert "error" in r.json()
    assert on_push.events == []


async def test_route_ping_is_a_no_op() -> None:
    on_push = Recorder()
    body = load("github_ping.json")
    async with client_for(on_push) as client:
        r = await client.post("/api/webhook", content=body, headers=github_headers(body, "ping"))
    assert (r.status_code, r.json()) == (200, {"ignored": "ping"})
    assert on_push.events == []


@pytest.mark.parametrize(
    "headers,body",
    [
        ({"Content-Type": "application/json"}, b"{}"),
        (github_headers(b"{oops"), b"{oops"),
    ],
    ids=["unknown-provider", "invalid-json"],
)
async def test_route_bad_requests(headers: dict[str, str], body: bytes) -> None:
    on_push = Recorder()
    async with client_for(on_push) as client:
        r = await client.post("/api/webhook", content=body, headers=headers)
    assert r.status_code == 400
    assert set(r.json()) == {"error"}
    assert on_push.events == []


class Chunks:
    """A request body of ``count`` chunks that records how many were pulled."""

    def __init__(self, count: int, size: int = 64 * 1024) -> None:
        self.count, self.size, self.pulled = count, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.pulled += 1
            yield b" " * self.size


async def test_route_oversized_declared_body_is_refused_before_reading() -> None:
    on_push = Recorder()
    body = Chunks(32)  # 2 MiB
    headers = github_headers(b"") | {"Content-Length": str(2 << 20)}
    async with client_for(on_push) as client:
        r = await client.post("/api/webhook", content=body, headers=headers)
    assert r.status_code == 413
    assert "error" in r.json()
    assert body.pulled == 0
    assert on_push.events == []


async def test_route_oversized_chunked_body_is_cut_off_at_the_cap() -> None:
    on_push = Recorder()
    body = Chunks(32)  # 2 MiB, no Content-Length
    async with client_for(on_push) as client:
        r = await client.post("/api/webhook", content=body, headers=github_headers(b""))
    assert r.status_code == 413
    # 16 chunks reach the 1 MiB cap, the 17th passes it; the other 15 are never read.
    assert body.pulled == 17
    assert on_push.events == []


async def test_route_max_body_boundary() -> None:
    body = load("github_push.json")
    on_push = Recorder()
    async with client_for(on_push, max_body=len(body)) as client:
        r = await client.post("/api/webhook", content=body, headers=github_headers(body))
    assert r.status_code == 200
    async with client_for(on_push, max_body=len(body) - 1) as client:
        r = await client.post("/api/webhook", content=body, headers=github_headers(body))
    assert r.status_code == 413
    assert len(on_push.events) == 1


async def test_route_reads_secrets_on_every_request() -> None:
    """A rotated Secret applies to the next request, without a restart."""
    current = {"secret": "first"}
    calls = 0

    async def secrets() -> WebhookSecrets:
        nonlocal calls
        calls += 1
        return WebhookSecrets(github=current["secret"])

    on_push = Recorder()
    body = load("github_push.json")
    headers = github_headers(body, secret="first")
    async with client_for(on_push, secrets) as client:
        first = await client.post("/api/webhook", content=body, headers=headers)
        current["secret"] = "second"
        second = await client.post("/api/webhook", content=body, headers=headers)
    assert (first.status_code, second.status_code) == (200, 401)
    assert calls == 2
    assert len(on_push.events) == 1


async def test_route_secrets_unavailable_is_503_without_calling_back() -> None:
    async def secrets() -> WebhookSecrets:
        raise RuntimeError("secret gitmoor/gitmoor-secret: connection refused")

    on_push = Recorder()
    body = load("github_push.json")
    async with client_for(on_push, secrets) as client:
        r = await client.post("/api/webhook", content=body, headers=github_headers(body))
    assert (r.status_code, r.json()) == (503, {"error": "webhook secrets unavailable"})
    assert on_push.events == []


async def test_route_callback_failure_is_500_and_hides_the_cause() -> None:
    on_push = Recorder(error=RuntimeError("apiserver https://10.0.0.1 said no"))
    body = load("github_push.json")
    async with client_for(on_push) as client:
        r = await client.post("/api/webhook", content=body, headers=github_headers(body))
    assert (r.status_code, r.json()) == (500, {"error": "refresh failed"})


async def test_route_bitbucket_secret_in_query() -> None:
    on_push = Recorder(result=1)
    body = load("bitbucket_push.json")
    async with client_for(on_push) as client:
        ok = await client.post(
            "/api/webhook", params={"secret": BB}, content=body, headers=bitbucket_headers()
        )
        bad = await client.post(
            "/api/webhook", params={"secret": "nope"}, content=body, headers=bitbucket_headers()
        )
    assert (ok.status_code, bad.status_code) == (200, 401)
    assert [e.provider for e in on_push.events] == ["bitbucket"]


async def test_route_only_accepts_post() -> None:
    async with client_for(Recorder()) as client:
        r = await client.get("/api/webhook")
    assert r.status_code == 405


async def test_route_is_documented_in_openapi() -> None:
    async with client_for(Recorder()) as client:
        spec = (await client.get("/openapi.json")).json()
    op = spec["paths"]["/api/webhook"]["post"]
    assert op["summary"] == "Receive a Git push webhook"
    assert "X-Hub-Signature-256" in op["description"]
    assert {"200", "400", "401", "413"} <= set(op["responses"])
    assert "application/json" in op["requestBody"]["content"]


async def test_logs_never_contain_secrets_or_signatures(caplog: pytest.LogCaptureFixture) -> None:
    body = load("github_push.json")
    good = github_headers(body)
    forged_signature = "sha256=" + hexsig(body, "attacker")
    bb_body = load("bitbucket_push.json")
    with caplog.at_level(logging.DEBUG):
        async with client_for(Recorder()) as client:
            await client.post("/api/webhook", content=body, headers=good)
            await client.post(
                "/api/webhook",
                content=body,
                headers=good | {"X-Hub-Signature-256": forged_signature},
            )
            await client.post(
                "/api/webhook", params={"secret": BB}, content=bb_body, headers=bitbucket_headers()
            )
            await client.post(
                "/api/webhook",
                params={"secret": "n0t-" + BB},
                content=bb_body,
                headers=bitbucket_headers(),
            )
    # Only gitmoor's records: the test's own httpx client logs the URL it sent. (In a
    # deployment, uvicorn's access log prints the query string the same way.)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("gitmoor"))
    assert "event=webhook_push" in text and "event=webhook_rejected" in text
    for leaked in (GH, BB, good["X-Hub-Signature-256"][7:], forged_signature[7:]):
        assert leaked not in text


# --- secrets from the Kubernetes Secret -------------------------------------------------


def test_load_secrets_uses_argocd_keys() -> None:
    secrets = load_secrets_from_secret(
        {
            "webhook.github.secret": "gh\n",
            "webhook.gitlab.secret": " gl ",
            "webhook.gitea.secret": "gt",
            "webhook.bitbucket.uuid": "{4d1f6a92-0c3a-4b0e-9f3e-5b8a2c6d7e81}",
            "admin.password": "ignored",
        }
    )
    assert secrets == WebhookSecrets(
        github="gh", gitlab="gl", gitea="gt", bitbucket="{4d1f6a92-0c3a-4b0e-9f3e-5b8a2c6d7e81}"
    )


def test_load_secrets_fallbacks_and_precedence(caplog: pytest.LogCaptureFixture) -> None:
    assert load_secrets_from_secret({"webhook.gogs.secret": "gogs"}).gitea == "gogs"
    assert load_secrets_from_secret({"webhook.bitbucketserver.secret": "bbs"}).bitbucket == "bbs"
    with caplog.at_level(logging.WARNING, logger="gitmoor.controller.webhook"):
        both = load_secrets_from_secret(
            {"webhook.bitbucket.secret": "cloud", "webhook.bitbucketserver.secret": "server"}
        )
    assert both.bitbucket == "cloud"
    assert "ignored=webhook.bitbucketserver.secret" in caplog.text
    assert "cloud" not in caplog.text and "server\n" not in caplog.text
    assert load_secrets_from_secret({}) == WebhookSecrets()


def test_secrets_repr_names_providers_not_values() -> None:
    text = repr(SECRETS) + str(WebhookSecrets(gitlab=GL))
    assert "github" in text and "gitlab" in text
    for value in (GH, GL, GT, BB):
        assert value not in text


def test_changed_paths_pick_the_apps_to_refresh_first() -> None:
    from gitmoor.controller.webhook import path_changed
    from gitmoor.model.application import parse_application

    body = load("github_push.json")
    event = parse_push(github_headers(body), body, SECRETS)
    assert event is not None

    def app(path: str) -> object:
        return parse_application(
            {
                "metadata": {"name": "a", "namespace": "gitmoor"},
                "spec": {
                    "source": {"repoURL": "https://github.com/x/y", "path": path},
                    "destination": {"namespace": "d"},
                },
            }
        )

    assert path_changed(app("overlays/prod"), event)  # type: ignore[arg-type]
    assert not path_changed(app("overlays/dev"), event)  # type: ignore[arg-type]
    assert not path_changed(app("overlays/pro"), event), "a prefix of a name is not its folder"  # type: ignore[arg-type]
    assert path_changed(app("."), event)  # type: ignore[arg-type]
