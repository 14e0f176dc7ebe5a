"""source.push against a real git server over HTTP with Basic auth: a branch read
with the stored credentials, committed and pushed with a lease."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from gitmoor.model import PermanentError, UserInputError
from gitmoor.source import RepoCredentials
from gitmoor.source.push import Author, open_branch
from support.githttp import PASSWORD, USER

if TYPE_CHECKING:
    from pathlib import Path

    from support.githttp import GitHTTPServer
    from support.gitrepo import GitRepo


@pytest.fixture
def creds(git_server: GitHTTPServer) -> RepoCredentials:
    return RepoCredentials(f"http://127.0.0.1:{git_server.port}", USER, PASSWORD)


@pytest.fixture
def pushable(served_repo: GitRepo) -> GitRepo:
    served_repo.git("config", "receive.denyCurrentBranch", "updateInstead")
    return served_repo


def test_commit_and_push_with_author_and_nothing_when_unchanged(
    git_server: GitHTTPServer, pushable: GitRepo, creds: RepoCredentials, tmp_path: Path
) -> None:
    read = pushable.rev("main")
    with open_branch(git_server.url("app"), "main", creds, cache_dir=tmp_path) as work:
        assert work.base == read
        assert work.file("deploy.yaml").read_text() == "kind: Deployment\n"
        assert work.commit_and_push("no change").commit is None
        work.file("deploy.yaml").write_text("kind: StatefulSet\n")
        result = work.commit_and_push("switch", author=Author("robot", "robot@example.invalid"))

    assert result.commit == pushable.rev("main")
    assert pushable.git("rev-parse", "main^") == read
    assert pushable.git("log", "-1", "--format=%an <%ae> %cn %s") == (
        "robot <robot@example.invalid> robot switch"
    )
    assert (pushable.path / "deploy.yaml").read_text() == "kind: StatefulSet\n"


def test_an_empty_repository_gets_its_first_branch(
    git_server: GitHTTPServer, creds: RepoCredentials, tmp_path: Path
) -> None:
    bare = git_server.root / "empty.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    url = git_server.url("empty.git")

    with (
        pytest.raises(UserInputError, match="branch main not found"),
        open_branch(url, "main", creds, cache_dir=tmp_path),
    ):
        pass
    with open_branch(url, "main", creds, cache_dir=tmp_path, create=True) as work:
        assert work.base is None
        work.file("clusters/a/x.yaml").parent.mkdir(parents=True)
        work.file("clusters/a/x.yaml").write_text("a: 1\n")
        result = work.commit_and_push("first")

    shown = subprocess.run(
        ["git", f"--git-dir={bare}", "show", "main:clusters/a/x.yaml"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.commit is not None and shown.stdout == "a: 1\n"


def test_wrong_credentials_fail_without_showing_them(
    git_server: GitHTTPServer, pushable: GitRepo, tmp_path: Path
) -> None:
    wrong = RepoCredentials(f"http://127.0.0.1:{git_server.port}", USER, "not-the-password-123")

    with (
        pytest.raises(PermanentError, match="authentication failed") as refused,
        open_branch(git_server.url("app"), "main", wrong, cache_dir=tmp_path),
    ):
        pass

    assert "not-the-password-123" not in str(refused.value)


def test_writes_through_a_symlink_are_refused(
    git_server: GitHTTPServer, pushable: GitRepo, creds: RepoCredentials, tmp_path: Path
) -> None:
    (pushable.path / "out").symlink_to("/tmp")
    pushable.commit(message="a link out")

    with open_branch(git_server.url("app"), "main", creds, cache_dir=tmp_path) as work:
        with pytest.raises(UserInputError, match="symbolic link"):
            work.file("out/evil.yaml")
        with pytest.raises(UserInputError):
            work.file("../escape.yaml")
