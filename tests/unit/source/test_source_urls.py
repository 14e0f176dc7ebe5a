"""URL and revision validation: what may reach git at all."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from gitmoor.model import UserInputError
from gitmoor.source import (
    GitCache,
    normalize_repo_url,
    parse_repo_url,
    redact_url,
    validate_revision,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def no_git(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Fail the test if any process is started; the list records attempts."""
    calls: list[list[str]] = []

    def refuse(args: list[str], *a: object, **kw: object) -> None:
        calls.append(list(args))
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)
    return calls


@pytest.mark.parametrize(
    "url,transport,host,path",
    [
        ("https://github.com/org/repo.git", "https", "github.com", "/org/repo.git"),
        ("http://127.0.0.1:8080/repo", "http", "127.0.0.1", "/repo"),
        ("ssh://git@github.com/org/repo.git", "ssh", "github.com", "/org/repo.git"),
        ("ssh://git@[::1]:2222/org/repo", "ssh", "[::1]", "/org/repo"),
        ("git@github.com:org/repo.git", "ssh", "github.com", "org/repo.git"),
        ("gitlab.example.com:group/sub/repo", "ssh", "gitlab.example.com", "group/sub/repo"),
        ("file:///srv/git/repo.git", "file", "", "/srv/git/repo.git"),
    ],
)
def test_accepted_urls(url: str, transport: str, host: str, path: str) -> None:
    parsed = parse_repo_url(url)
    assert (parsed.transport, parsed.host, parsed.path) == (transport, host, path)
    assert parsed.raw == url


@pytest.mark.parametrize(
    "url,reason",
    [
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::ssh://host/x", "remote helper"),
        ("fd::17", "remote helper"),
        ("git-remote-ext::x", "remote helper"),
        ("-oProxyCommand=touch /tmp/x", "whitespace"),
        ("--upload-pack=touch.x", "starts with '-'"),
        ("ssh://-oProxyCommand=x/repo", "invalid host"),
        ("git@-oProxyCommand=x:repo", "invalid host"),
        ("-oProxyCommand=x:repo", "starts with '-'"),
        ("ftp://host/repo", "transport 'ftp'"),
        ("git://host/repo", "transport 'git'"),
        ("rsync://host/repo", "transport 'rsync'"),
        ("/srv/git/repo", "not a URL"),
        ("./repo", "not a URL"),
        ("file://otherhost/srv/repo", "names a host"),
        ("https://user:hunter2@github.com/org/repo", "embeds a password"),
        ("https://github.com/org/repo\n", "control"),
        ("https://github.com/org/repo\x00", "control"),
        ("", "empty"),
    ],
)
def test_rejected_urls_never_start_git(url: str, reason: str, no_git: list[list[str]]) -> None:
    with pytest.raises(UserInputError, match=reason) as err:
        parse_repo_url(url)
    assert "hunter2" not in str(err.value)
    assert no_git == []


@pytest.mark.parametrize(
    "url",
    ["ext::sh -c id", "fd::3", "--upload-pack=id", "ftp://h/r", "-oProxyCommand=id:repo"],
)
def test_resolve_and_checkout_refuse_bad_urls_before_any_process(
    url: str, tmp_path: Path, no_git: list[list[str]]
) -> None:
    cache = GitCache(tmp_path / "cache")
    with pytest.raises(UserInputError):
        cache.resolve(url, "main")
    with pytest.raises(UserInputError):
        cache.checkout(url, "a" * 40)
    assert no_git == []


@pytest.mark.parametrize(
    "revision",
    ["-x", "--upload-pack=id", "main..evil", "a\nb", "tab\there", "x" * 300, "HEAD\x7f"],
)
def test_rejected_revisions_never_start_git(
    revision: str, tmp_path: Path, no_git: list[list[str]]
) -> None:
    cache = GitCache(tmp_path / "cache")
    with pytest.raises(UserInputError, match="not allowed") as err:
        cache.resolve("https://example.com/org/repo.git", revision)
    assert "https://example.com/org/repo.git" in str(err.value)
    assert cache.stats.ls_remotes == 0
    assert no_git == []


def test_checkout_needs_a_full_sha_and_says_so(tmp_path: Path, no_git: list[list[str]]) -> None:
    cache = GitCache(tmp_path / "cache")
    for commit in ("main", "abc1234", "-" + "a" * 39, "g" * 40):
        with pytest.raises(UserInputError, match="full commit SHA") as err:
            cache.checkout("https://example.com/org/repo", commit)
        assert "https://example.com/org/repo" in str(err.value)
    assert no_git == []


@pytest.mark.parametrize("revision", ["main", "v1.2.3", ">=1.2.0 <2.0.0", "^1.2", "~1.2", "1.2.*"])
def test_accepted_revisions(revision: str) -> None:
    assert validate_revision(f" {revision} ", "https://h/r") == revision


@pytest.mark.parametrize(
    "a,b",
    [
        ("https://GitHub.com/org/repo.git", "https://github.com/org/repo"),
        ("https://github.com/org/repo/", "https://github.com/org/repo"),
        ("https://github.com:443/org/repo", "https://github.com/org/repo"),
        ("https://bot@github.com/org/repo", "https://github.com/org/repo"),
        ("git@GitHub.com:org/repo.git", "ssh://github.com/org/repo"),
        ("ssh://git@github.com:22/org/repo.git/", "ssh://github.com/org/repo"),
        ("ssh://git@github.com:2222/org/repo", "ssh://github.com:2222/org/repo"),
        ("file:///srv/Repo.git/", "file:///srv/Repo"),
        ("http://127.0.0.1:8080/Org/Repo.git", "http://127.0.0.1:8080/Org/Repo"),
    ],
)
def test_normalize_repo_url(a: str, b: str) -> None:
    assert normalize_repo_url(a) == b


def test_redact_strips_userinfo_everywhere() -> None:
    text = "fatal: unable to access 'https://bot:tok3n@h.example/r.git/': 403; see http://u@x/y"
    assert (
        redact_url(text)
        == "fatal: unable to access 'https://h.example/r.git/': 403; see http://x/y"
    )
    assert parse_repo_url("https://bot@h.example/r").redacted == "https://h.example/r"


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.org/team-a/../team-b/secret",
        "https://git.example.org/team-a/%2e%2e/team-b/secret",
        "https://git.example.org/team-a/./x",
        "git@git.example.org:team-a/../team-b/secret",
        "https://git.example.org/team-a%2fteam-b",
    ],
)
def test_dot_segments_and_encoded_slashes_are_refused(url: str) -> None:
    # curl folds '..' before sending, so the repository fetched would not be the
    # one that sourceRepos, credential prefixes and caches matched.
    with pytest.raises(UserInputError):
        parse_repo_url(url)


def test_scp_user_that_may_be_a_token_is_redacted() -> None:
    assert "ghp_secret" not in redact_url("ghp_secret@github.com:org/repo")
    assert redact_url("git@github.com:org/repo") == "git@github.com:org/repo"
