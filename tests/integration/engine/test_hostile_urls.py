"""Repository URLs a shared cluster must refuse: ``file://`` outside the allowed
roots (or into the checkout cache) and credentials in the URL. Each ends in one
sentence on the sync result and on the app's status, no git process reaches
the repository, and the cluster keeps what it had."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine.sync import Phase, SyncOptions
from gitmoor.source.policy import ENV_ALLOW_FILE_REPOS
from support.apps import configmap, dump
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.engine.app import Engine
    from support.apps import AppEnv


def engine_cache_mirror(git_cache: Path) -> Path:
    return next(git_cache.glob("*/mirror.git"))


async def _synced_app(env: AppEnv) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("kept", {"v": "1"}))})
    await env.create("victim")
    assert (await env.sync("victim")).ok


async def _point_at(env: AppEnv, url: str) -> None:
    await env.kube.merge_patch(env.app_ref("victim"), {"spec": {"source": {"repoURL": url}}})


async def _refused(env: AppEnv, *expect: str, hidden: tuple[str, ...] = ()) -> None:
    """Sync and refresh both end in one sentence naming ``expect``; nothing changed."""
    before = await env.snapshot()
    result = await env.sync("victim", SyncOptions(prune=True, timeout=60))
    assert result.phase is Phase.FAILED, result
    assert result.resources == ()
    app, comparison = await env.refresh("victim")
    assert comparison is None
    (condition,) = app.status["conditions"]
    assert condition["type"] == "ComparisonError"
    for message in (result.message, condition["message"]):
        assert "\n" not in message and "Traceback" not in message
        for text in expect:
            assert text in message, message
        for text in hidden:
            assert text not in message, message
    assert app.status["operationState"]["phase"] == "Failed"
    assert await env.snapshot() == before
    assert ((await env.get(env.cm("kept"))) or {})["data"] == {"v": "1"}


async def test_file_repository_outside_the_allowed_roots_is_refused(
    env: AppEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _synced_app(env)
    other = GitRepo(tmp_path / "elsewhere" / "secret-repo")
    other.commit({"cm.yaml": dump(configmap("kept", {"v": "stolen"}))})
    # The operator allows the app's own repository only.
    monkeypatch.setenv(ENV_ALLOW_FILE_REPOS, str(env.repo.path))
    await _point_at(env, other.url)
    await _refused(env, other.url, "outside the allowed roots", "--allow-file-repos")


async def test_file_url_into_the_checkout_cache_is_refused(
    env: AppEnv, engine: Engine, git_cache: Path
) -> None:
    """Another app's mirror is never a repository, even under an allowed root."""
    await _synced_app(env)
    mirror = engine_cache_mirror(git_cache)
    await _point_at(env, mirror.as_uri())
    await _refused(env, mirror.as_uri(), "checkout cache")


@pytest.mark.parametrize(
    "userinfo", ["ghp_Tok3nValue@", "deploy:Tok3nValue@", "Tok3nValue:x-oauth-basic@"]
)
async def test_credentials_in_the_url_are_refused_before_any_request(
    env: AppEnv, userinfo: str
) -> None:
    await _synced_app(env)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        await _point_at(env, f"https://{userinfo}127.0.0.1:{port}/org/repo.git")
        await _refused(env, "gitmoor repo add", f"127.0.0.1:{port}/org/repo.git", hidden=("Tok3n",))
        server.settimeout(0.05)
        with pytest.raises(TimeoutError):
            server.accept()  # git never connected
