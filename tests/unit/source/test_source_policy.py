"""Which URLs gitmoor fetches: file:// roots, userinfo, and ssh without the operator's keys."""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import TYPE_CHECKING

import pytest

from gitmoor.model import UserInputError
from gitmoor.source import GitCache, allow_file_repos, check_fetchable, parse_repo_url
from gitmoor.source.creds import RepoCredentials, git_auth
from gitmoor.source.git import Git
from gitmoor.source.policy import ENV_ALLOW_FILE_REPOS, reset_file_repo_roots

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from support.gitrepo import GitRepo


@pytest.fixture
def no_roots(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No allowed root at all: neither the tests' env nor a flag."""
    monkeypatch.delenv(ENV_ALLOW_FILE_REPOS, raising=False)
    reset_file_repo_roots()
    yield
    reset_file_repo_roots()


def _no_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PATH without git: a refusal must come before any process starts."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))


# --- file:// roots ---------------------------------------------------------------


@pytest.mark.usefixtures("no_roots")
def test_file_url_is_refused_without_an_allowed_root(
    repo: GitRepo, cache: GitCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_git(monkeypatch, tmp_path)
    for call in (
        lambda: cache.resolve(repo.url, "main"),
        lambda: cache.checkout(repo.url, "a" * 40),
    ):
        with pytest.raises(UserInputError) as err:
            call()
        text = str(err.value)
        assert repo.url in text
        assert "--allow-file-repos" in text and ENV_ALLOW_FILE_REPOS in text
        assert "\n" not in text


@pytest.mark.usefixtures("no_roots")
def test_file_url_under_a_root_from_the_env_or_a_flag_is_fetched(
    repo: GitRepo, cache: GitCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ALLOW_FILE_REPOS, f"/nonexistent{os.pathsep}{repo.path.parent}")
    assert cache.resolve(repo.url, "main") == repo.rev("main")
    monkeypatch.delenv(ENV_ALLOW_FILE_REPOS)
    with pytest.raises(UserInputError):
        cache.resolve(repo.url, "main")
    allow_file_repos([repo.path])
    assert cache.resolve(repo.url, "main") == repo.rev("main")


@pytest.mark.usefixtures("no_roots")
def test_file_url_outside_the_roots_is_refused_naming_them(
    repo: GitRepo, cache: GitCache, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    allow_file_repos([allowed])
    with pytest.raises(UserInputError, match="outside the allowed roots") as err:
        cache.resolve(repo.url, "main")
    assert str(allowed.resolve()) in str(err.value)


@pytest.mark.usefixtures("no_roots")
def test_symlinks_are_resolved_on_both_sides(
    repo: GitRepo, cache: GitCache, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    # A link inside the allowed root that leads out of it does not make the repo allowed.
    (allowed / "link").symlink_to(repo.path)
    allow_file_repos([allowed])
    with pytest.raises(UserInputError, match="outside the allowed roots"):
        cache.resolve((allowed / "link").as_uri(), "main")
    # A root given through a symlink allows what lies under its target.
    reset_file_repo_roots()
    (tmp_path / "root-link").symlink_to(repo.path.parent)
    allow_file_repos([tmp_path / "root-link"])
    assert cache.resolve(repo.url, "main") == repo.rev("main")


@pytest.mark.usefixtures("no_roots")
def test_percent_encoded_dot_dot_cannot_leave_the_root(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "x").mkdir(parents=True)
    allow_file_repos([allowed])
    url = f"file://{allowed}/x/%2e%2e/%2e%2e/outside"
    with pytest.raises(UserInputError, match=r"'\.' or '\.\.' path segment"):
        check_fetchable(url)


@pytest.mark.usefixtures("no_roots")
def test_symlink_loop_is_a_sentence(tmp_path: Path) -> None:
    allow_file_repos([tmp_path])
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(UserInputError, match="cannot be resolved"):
        check_fetchable((tmp_path / "a").as_uri())


def test_the_checkout_cache_is_never_a_file_repository(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another app's mirror (maybe a private repository fetched with credentials)
    is out of reach even though the whole tmp tree is an allowed root."""
    cache = GitCache(tmp_path / "cache")
    commit = cache.resolve(repo.url, "main")
    cache.checkout(repo.url, commit)
    mirror = cache.repo_dir(repo.url) / "mirror.git"
    assert (mirror / "HEAD").is_file()
    monkeypatch.setenv(ENV_ALLOW_FILE_REPOS, str(tmp_path))
    _no_git(monkeypatch, tmp_path)
    with pytest.raises(UserInputError, match="checkout cache") as err:
        cache.resolve(mirror.as_uri(), "HEAD")
    assert mirror.as_uri() in str(err.value)
    # Through a symlink placed beside it, too.
    (tmp_path / "innocent").symlink_to(mirror)
    with pytest.raises(UserInputError, match="checkout cache"):
        cache.checkout((tmp_path / "innocent").as_uri(), commit)


# --- userinfo ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://ghp_s3cr3t@github.com/org/repo.git",
        "https://user:s3cr3t@github.com/org/repo.git",
        "https://oauth2:s3cr3t@gitlab.com/org/repo.git",
        "ssh://s3cr3t@github.com/org/repo.git",
        "s3cr3t@github.com:org/repo.git",
    ],
)
def test_userinfo_is_refused_with_a_pointer_to_repo_add(url: str) -> None:
    with pytest.raises(UserInputError, match="gitmoor repo add") as err:
        check_fetchable(url)
    assert "s3cr3t" not in str(err.value)
    assert "s3cr3t" not in (err.value.concerns or "")


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:org/repo.git",
        "ssh://git@github.com/org/repo.git",
        "https://github.com/org/repo.git",
    ],
)
def test_git_user_and_no_user_are_accepted(url: str) -> None:
    assert check_fetchable(url).normalized == parse_repo_url(url).normalized


# --- ssh without the operator's agent and keys ----------------------------------------


def _ssh_effective_config(cmd: str, host: str) -> dict[str, list[str]]:
    """What the real ssh would use for ``cmd`` (``ssh -G``: parse, never connect)."""
    out = subprocess.run(
        [*shlex.split(cmd), "-G", host],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    config: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        config.setdefault(key, []).append(value)
    return config


@pytest.mark.skipif(
    subprocess.run(["which", "ssh"], capture_output=True, check=False).returncode != 0,
    reason="needs the ssh client",
)
def test_ssh_without_credentials_uses_no_agent_key_or_known_hosts_of_the_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "operator"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n  IdentityFile ~/.ssh/operator_key\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    repo = parse_repo_url("git@github.com:org/private.git")
    with git_auth(repo, None) as auth:
        cmd = auth.env["GIT_SSH_COMMAND"]
        cfg = _ssh_effective_config(cmd, "github.com")
        known = cfg["userknownhostsfile"][0]
        assert os.path.getsize(known) == 0
    assert cfg["identityagent"] == ["none"]
    assert cfg["identityfile"] == ["none"]  # no ~/.ssh/id_*, no operator_key from the config
    assert cfg["identitiesonly"] == ["yes"]
    assert cfg["batchmode"] == ["yes"]
    assert cfg["stricthostkeychecking"] == ["true"]
    assert cfg["globalknownhostsfile"] == [os.devnull]
    env = Git(tmp_path / "githome").environment(repo, auth)
    assert "SSH_AUTH_SOCK" not in env
    assert env["GIT_SSH_COMMAND"] == cmd


def test_ssh_with_a_stored_key_offers_only_that_key(tmp_path: Path) -> None:
    creds = RepoCredentials("git@h.example:o", ssh_private_key="KEY", known_hosts="h ssh-ed25519 A")
    with git_auth(parse_repo_url("git@h.example:o/r"), creds) as auth:
        cfg = _ssh_effective_config(auth.env["GIT_SSH_COMMAND"], "h.example")
        key = cfg["identityfile"]
    assert len(key) == 1 and key[0].endswith("/id")
    assert cfg["identityagent"] == ["none"]
    assert cfg["identitiesonly"] == ["yes"]


def test_git_process_environment_drops_the_agent_and_ssh_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i /home/op/.ssh/id_ed25519")
    monkeypatch.setenv("GIT_SSH", "/usr/bin/evil")
    env = Git(tmp_path / "h").environment(parse_repo_url("https://h.example/r"))
    assert not {"SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "GIT_SSH"} & set(env)


@pytest.mark.usefixtures("no_roots")
@pytest.mark.parametrize("tail", ["x?/../../secret", "x%3F/y", "x#frag"])
def test_file_url_query_cannot_smuggle_a_path(tmp_path: Path, tail: str) -> None:
    # git url-decodes a file:// URL and uses all of it as the path, query included,
    # while a URL parser would check only the part before '?'.
    allowed = tmp_path / "allowed"
    (allowed / "x?").mkdir(parents=True)
    allow_file_repos([allowed])
    with pytest.raises(UserInputError):
        check_fetchable(f"file://{allowed}/{tail}")


@pytest.mark.usefixtures("no_roots")
def test_a_relative_flag_root_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repos").mkdir()
    monkeypatch.chdir(tmp_path)
    allow_file_repos(["repos"])
    from gitmoor.source.policy import allowed_file_roots

    assert (tmp_path / "repos").resolve() in allowed_file_roots()
