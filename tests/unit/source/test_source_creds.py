"""Credential matching, and how credentials reach git (environment, files), never args."""

from __future__ import annotations

import base64
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gitmoor.source import GitCache, RepoCredentials, match_credentials, parse_repo_url
from gitmoor.source.creds import git_auth
from gitmoor.source.git import Git

if TYPE_CHECKING:
    from support.gitrepo import GitRepo

ORG = RepoCredentials("https://github.com/org", username="bot", password="org-token")
REPO = RepoCredentials("https://github.com/org/app.git", username="bot", password="app-token")
SSH = RepoCredentials(
    "git@github.com:org", ssh_private_key="KEY", known_hosts="github.com ssh-ed25519 AAAA"
)
HOST = RepoCredentials("https://git.example.com", password="host-token")
ALL = [ORG, REPO, SSH, HOST]


@pytest.mark.parametrize(
    "url,expected",
    [
        ("https://github.com/org/app", REPO),
        ("https://github.com/org/app.git", REPO),
        ("https://GITHUB.com/org/app/", REPO),
        ("https://github.com/org/other.git", ORG),
        ("https://github.com/organisation/app", None),  # whole path segments only
        ("https://github.com/other/app", None),
        ("git@github.com:org/app.git", SSH),  # ssh credentials for the ssh form
        ("ssh://git@github.com/org/app", SSH),
        ("ssh://github.com:22/org/app", SSH),
        ("https://git.example.com/a/b", HOST),
        ("https://git.example.com.evil.io/a/b", None),  # a prefix is not a host prefix
        ("http://git.example.com/a/b", None),  # no https token over another transport
    ],
)
def test_match_credentials_longest_prefix(url: str, expected: RepoCredentials | None) -> None:
    assert match_credentials(url, ALL) is expected


def test_match_skips_unparseable_prefix() -> None:
    bad = RepoCredentials("ext::sh", password="x")
    assert match_credentials("https://github.com/org/app", [bad, ORG]) is ORG


def test_repr_hides_secrets() -> None:
    creds = RepoCredentials("https://h", "u", "p4ssw0rd", "-----BEGIN KEY-----")
    assert "p4ssw0rd" not in repr(creds)
    assert "BEGIN KEY" not in repr(creds)


def test_https_credentials_go_to_env_config_not_args(tmp_path: Path) -> None:
    repo = parse_repo_url("https://github.com/org/app.git")
    git = Git(tmp_path / "home")
    with git_auth(repo, RepoCredentials("https://github.com", "bot", "t0ken")) as auth:
        env = git.environment(repo, auth)
    header = "Authorization: Basic " + base64.b64encode(b"bot:t0ken").decode()
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert (env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == ("http.extraHeader", header)
    assert "t0ken" in auth.secrets


def test_environment_isolates_git_from_user_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_ASKPASS", "/bin/evil")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.sshcommand'='evil'")
    monkeypatch.setenv("GIT_TRACE_CURL", "1")
    git = Git(tmp_path / "home")
    env = git.environment(parse_repo_url("https://h.example/r"))
    assert env["HOME"] == str(tmp_path / "home")
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_PROTOCOL_FROM_USER"] == "0"
    assert env["GIT_ALLOW_PROTOCOL"] == "https"
    for leaked in ("GIT_ASKPASS", "GIT_CONFIG_PARAMETERS", "GIT_TRACE_CURL", "GIT_CONFIG_COUNT"):
        assert leaked not in env
    # file:// is allowed only for file:// URLs, and then explicitly
    fenv = git.environment(parse_repo_url("file:///srv/r"))
    assert fenv["GIT_ALLOW_PROTOCOL"] == "file"
    assert (
        fenv["GIT_CONFIG_KEY_0"],
        fenv["GIT_CONFIG_VALUE_0"],
    ) == ("protocol.file.allow", "always")
    assert (
        git.environment(parse_repo_url("http://127.0.0.1/r"))["GIT_ALLOW_PROTOCOL"] == "http:https"
    )
    assert git.environment(parse_repo_url("git@h.example:r"))["GIT_ALLOW_PROTOCOL"] == "ssh"


def test_ssh_key_file_is_private_and_removed_afterwards() -> None:
    repo = parse_repo_url("git@github.com:org/app.git")
    with git_auth(repo, SSH) as auth:
        cmd = shlex.split(auth.env["GIT_SSH_COMMAND"])
        key = Path(cmd[cmd.index("-i") + 1])
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
        assert key.read_text() == "KEY\n"
        assert "IdentitiesOnly=yes" in cmd
        assert "StrictHostKeyChecking=yes" in cmd
        known = next(a.split("=", 1)[1] for a in cmd if a.startswith("UserKnownHostsFile="))
        assert Path(known).read_text() == "github.com ssh-ed25519 AAAA\n"
    assert not key.exists()
    assert not key.parent.exists()


def test_ssh_insecure_ignores_host_keys() -> None:
    creds = RepoCredentials("git@h:o", ssh_private_key="K", insecure_ignore_host_key=True)
    with git_auth(parse_repo_url("git@h:o/r"), creds) as auth:
        cmd = auth.env["GIT_SSH_COMMAND"]
    assert "StrictHostKeyChecking=no" in cmd
    assert f"UserKnownHostsFile={os.devnull}" in cmd


FAKE_SSH = """#!{python}
# Stands in for ssh: records its arguments, checks the key file, runs the remote
# command (git-upload-pack '<path>') locally.
import os, stat, subprocess, sys
args = sys.argv[1:]
key = args[args.index("-i") + 1]
mode = stat.S_IMODE(os.stat(key).st_mode)
with open({log!r}, "a") as fh:
    fh.write(repr((args, oct(mode), open(key).read())) + "\\n")
sys.exit(subprocess.call(["sh", "-c", args[-1]]))
"""


def test_ssh_fetch_through_git_ssh_command(
    repo: GitRepo, cache: GitCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end over ssh without sshd: a fake `ssh` on PATH runs upload-pack locally."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "ssh.log"
    fake = bindir / "ssh"
    fake.write_text(FAKE_SSH.format(python=sys.executable, log=str(log)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    url = f"ssh://git@example.invalid{repo.path}"
    creds = RepoCredentials("ssh://example.invalid", ssh_private_key="PRIVATE", known_hosts="kh")

    commit = cache.resolve(url, "main", creds)
    tree = cache.checkout(url, commit, creds)

    assert commit == repo.rev("main")
    assert (tree / "README.md").read_text() == "hello\n"
    calls = [eval(line) for line in log.read_text().splitlines()]
    assert len(calls) == 2  # ls-remote and fetch
    for args, mode, key_text in calls:
        assert mode == "0o600"
        assert key_text == "PRIVATE\n"
        assert "BatchMode=yes" in args and "StrictHostKeyChecking=yes" in args
        assert "git@example.invalid" in args
        assert not any("PRIVATE" in a for a in args)
    key_file = Path(calls[0][0][calls[0][0].index("-i") + 1])
    assert not key_file.exists()
