"""resolve() and checkout() over HTTP with Basic auth, against `git http-backend`."""

from __future__ import annotations

import base64
import logging
import subprocess
from typing import TYPE_CHECKING

import pytest

from gitmoor.model import PermanentError, UserInputError
from gitmoor.source import GitCache, RepoCredentials, match_credentials

if TYPE_CHECKING:
    from support.githttp import GitHTTPServer
    from support.gitrepo import GitRepo

from support.githttp import PASSWORD, USER


def test_correct_credentials_fetch(
    git_server: GitHTTPServer, served_repo: GitRepo, cache: GitCache
) -> None:
    url = git_server.url("app")
    creds = match_credentials(
        url,
        [
            RepoCredentials(f"http://127.0.0.1:{git_server.port}", USER, PASSWORD),
            RepoCredentials("http://127.0.0.1:1", USER, "other"),
        ],
    )
    assert creds is not None and creds.password == PASSWORD
    first = served_repo.git("rev-parse", "HEAD")
    served_repo.git("tag", "-a", "-m", "r", "v1.0.0")

    assert cache.resolve(url, "main", creds) == first
    assert cache.resolve(url, "^1.0", creds) == first
    tree = cache.checkout(url, first, creds)
    assert (tree / "deploy.yaml").read_text() == "kind: Deployment\n"
    assert not (tree / ".git").exists()

    second = served_repo.commit({"deploy.yaml": "kind: StatefulSet\n"})
    assert cache.resolve(url, "main", creds) == second
    assert (cache.checkout(url, second, creds) / "deploy.yaml").read_text() == "kind: StatefulSet\n"
    assert cache.checkout(url, first, creds) == tree
    assert cache.stats.fetches == 2


@pytest.mark.parametrize("password", [None, "wr0ng-Passw0rd-zz"])
def test_wrong_or_missing_credentials_are_permanent_and_never_shown(
    git_server: GitHTTPServer,
    served_repo: GitRepo,
    cache: GitCache,
    password: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gitmoor")
    url = git_server.url("app")
    creds = RepoCredentials(url, USER, password) if password else None
    commit = served_repo.git("rev-parse", "HEAD")

    with pytest.raises(PermanentError, match="authentication failed") as err:
        cache.resolve(url, "main", creds)
    with pytest.raises(PermanentError, match="authentication failed") as err2:
        cache.checkout(url, commit, creds)

    for e in (err.value, err2.value):
        text = f"{e} {e!r} {e.concerns}"
        assert url in text
        if password:
            assert password not in text
            assert base64.b64encode(f"{USER}:{password}".encode()).decode() not in text
    if password:
        assert password not in caplog.text
    # only 401s: the server never served anything
    assert {code for _, _, code in git_server.requests} == {401}


def test_username_in_url_is_refused_and_password_never_in_process_args(
    git_server: GitHTTPServer,
    served_repo: GitRepo,
    cache: GitCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []
    real = subprocess.Popen

    def spy(args: list[str], *a: object, **kw: object) -> subprocess.Popen[bytes]:
        seen.append(list(args))
        proc: subprocess.Popen[bytes] = real(args, *a, **kw)  # type: ignore[call-overload]
        return proc

    monkeypatch.setattr(subprocess, "Popen", spy)
    url = git_server.url("app")
    creds = RepoCredentials(url, USER, PASSWORD)
    commit = cache.resolve(url, "main", creds)
    cache.checkout(url, commit, creds)
    git_args = [a for args in seen for a in args]
    assert git_args
    assert not any(PASSWORD in a for a in git_args)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert not any(token in a for a in git_args)

    # A user in the URL belongs in the stored credentials: refused, unnamed, no git run.
    seen.clear()
    requests = len(git_server.requests)
    with_user = f"http://robot@127.0.0.1:{git_server.port}/app"
    with pytest.raises(UserInputError, match="gitmoor repo add") as err:
        cache.resolve(with_user, "main", creds)
    assert "robot" not in str(err.value)
    assert seen == []
    assert len(git_server.requests) == requests


def test_v0_server_that_refuses_unadvertised_commits_gets_a_full_fetch(
    git_server: GitHTTPServer, served_repo: GitRepo, cache: GitCache
) -> None:
    git_server.protocol_v2 = False
    url = git_server.url("app")
    creds = RepoCredentials(url, USER, PASSWORD)
    old = served_repo.git("rev-parse", "HEAD")
    served_repo.commit({"deploy.yaml": "kind: Job\n"})
    # `old` is no longer the tip of any ref: a v0 server will not send it alone
    tree = cache.checkout(url, old, creds)
    assert (tree / "deploy.yaml").read_text() == "kind: Deployment\n"
    assert cache.stats.fetches == 2
    # the full fetch left the new tip in the mirror too: no fetch for it
    new = cache.resolve(url, "main", creds)
    cache.checkout(url, new, creds)
    assert cache.stats.fetches == 2
