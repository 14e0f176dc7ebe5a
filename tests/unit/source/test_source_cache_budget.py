"""The checkout cache's disk budget: LRU eviction of unused checkouts and mirrors, size caps."""

from __future__ import annotations

import base64
import os
import time
from typing import TYPE_CHECKING

import pytest

from gitmoor.model import UserInputError
from gitmoor.source import GitCache
from gitmoor.source.cache import DEFAULT_MAX_BYTES, ENV_CACHE_MAX_BYTES, default_max_bytes
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

KIB = 1024


def _commit_of_size(repo: GitRepo, name: str, size: int) -> str:
    """A commit whose tree holds ``size`` bytes that compress to almost nothing,
    so the mirror stays small and the budget is about checkouts."""
    return repo.commit({"blob.bin": (name * size)[:size]}, name)


def _random_commit(repo: GitRepo, name: str, size: int) -> str:
    """A commit of ``size`` bytes that compress badly (base64 of random bytes)."""
    return repo.commit({"blob.bin": base64.b64encode(os.urandom(size))[:size].decode()}, name)


def _age(path: Path, seconds: float) -> None:
    """Pretend ``path`` was last handed out ``seconds`` ago."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_budget_evicts_least_recently_used_checkouts_first(repo: GitRepo, tmp_path: Path) -> None:
    cache = GitCache(tmp_path / "cache", max_bytes=260 * KIB, min_age=60)
    commits = [_commit_of_size(repo, f"c{i}", 100 * KIB) for i in range(3)]
    paths = []
    for age, commit in zip((300, 200), commits[:2], strict=True):
        paths.append(cache.checkout(repo.url, commit))
        _age(paths[-1], age)
    # c0 is used again (a refresh of the app that deploys it): now the most recent.
    assert cache.checkout(repo.url, commits[0]) == paths[0]
    third = cache.checkout(repo.url, commits[2])  # over budget: c1 goes, c0 stays

    assert paths[0].is_dir()
    assert not paths[1].exists()
    assert not paths[1].with_name(paths[1].name + ".size").exists()
    assert third.is_dir()
    assert cache.stats.evicted == 1
    assert cache.usage() <= cache.max_bytes
    # An evicted checkout comes back from the mirror, without a new fetch.
    fetches = cache.stats.fetches
    again = cache.checkout(repo.url, commits[1])
    assert (again / "blob.bin").stat().st_size == 100 * KIB
    assert cache.stats.fetches == fetches


def test_recently_used_checkouts_are_kept_even_over_budget(
    repo: GitRepo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkout handed out within min_age may be being rendered: never pulled away."""
    cache = GitCache(tmp_path / "cache", max_bytes=150 * KIB, min_age=3600)
    a = cache.checkout(repo.url, _commit_of_size(repo, "a", 100 * KIB))
    with caplog.at_level("WARNING", logger="gitmoor.source.cache"):
        b = cache.checkout(repo.url, _commit_of_size(repo, "b", 100 * KIB))
    assert a.is_dir() and b.is_dir()
    assert cache.stats.evicted == 0
    assert "over budget" in caplog.text


def test_mirror_of_a_repository_no_app_uses_is_evicted_too(tmp_path: Path) -> None:
    old = GitRepo(tmp_path / "old")
    new = GitRepo(tmp_path / "new")
    cache = GitCache(tmp_path / "cache", max_bytes=150 * KIB, min_age=60)
    # A mirror of about 75 KiB: the cache is still over budget once its checkout is gone.
    old_tree = cache.checkout(old.url, _random_commit(old, "o", 100 * KIB))
    old_dir = cache.repo_dir(old.url)
    _age(old_tree, 600)
    _age(old_dir / "mirror.git", 600)

    new_tree = cache.checkout(new.url, _commit_of_size(new, "n", 100 * KIB))

    assert not old_tree.exists()
    assert not (old_dir / "mirror.git").exists()
    assert new_tree.is_dir()
    assert (cache.repo_dir(new.url) / "mirror.git").is_dir()
    assert cache.usage() <= cache.max_bytes


def test_a_tree_larger_than_the_budget_is_refused_before_it_is_written(
    repo: GitRepo, tmp_path: Path
) -> None:
    cache = GitCache(tmp_path / "cache", max_bytes=64 * KIB)
    # Compressible: the fetched pack is small, the tree is 1 MiB.
    commit = repo.commit({"big.txt": "a" * (1 << 20)}, "big")
    with pytest.raises(UserInputError) as err:
        cache.checkout(repo.url, commit)
    text = str(err.value)
    assert repo.url in text and commit in text
    assert "1.0 MiB" in text and ENV_CACHE_MAX_BYTES in text
    repo_dir = cache.repo_dir(repo.url)
    assert not (repo_dir / commit).exists()
    assert not any(p.name.startswith(".tmp") for p in repo_dir.iterdir())


def test_a_fetch_larger_than_the_budget_is_refused_and_dropped(
    repo: GitRepo, tmp_path: Path
) -> None:
    cache = GitCache(tmp_path / "cache", max_bytes=64 * KIB)
    commit = _random_commit(repo, "random", 200 * KIB)  # the pack is large too
    with pytest.raises(UserInputError, match="fetched") as err:
        cache.checkout(repo.url, commit)
    assert ENV_CACHE_MAX_BYTES in str(err.value)
    assert not (cache.repo_dir(repo.url) / "mirror.git").exists()


def test_budget_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_CACHE_MAX_BYTES, "512M")
    assert default_max_bytes() == 512 << 20
    assert GitCache(tmp_path / "c").max_bytes == 512 << 20
    monkeypatch.setenv(ENV_CACHE_MAX_BYTES, "12345")
    assert default_max_bytes() == 12345
    monkeypatch.setenv(ENV_CACHE_MAX_BYTES, "lots")
    assert default_max_bytes() == DEFAULT_MAX_BYTES
    monkeypatch.delenv(ENV_CACHE_MAX_BYTES)
    assert default_max_bytes() == 2 << 30
