"""resolve() and checkout() against real repositories over file:// URLs."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import threading
from typing import TYPE_CHECKING

import pytest

import gitmoor.source as source
from gitmoor.model import PermanentError, RetryableError, UserInputError
from gitmoor.source import GitCache, default_cache_dir

if TYPE_CHECKING:
    from pathlib import Path

    from support.gitrepo import GitRepo


def test_resolve_branch_tag_annotated_tag_head_and_sha(repo: GitRepo, cache: GitCache) -> None:
    first = repo.rev("HEAD")
    repo.tag("light")
    repo.tag("v1.0.0", annotated=True)
    repo.git("checkout", "--quiet", "-b", "feature")
    second = repo.commit({"a.txt": "a"})
    repo.git("checkout", "--quiet", "main")

    assert cache.resolve(repo.url, "main") == first
    assert cache.resolve(repo.url, "HEAD") == first
    assert cache.resolve(repo.url, "") == first
    assert cache.resolve(repo.url, "feature") == second
    assert cache.resolve(repo.url, "light") == first
    # the annotated tag resolves to its commit, not to the tag object
    assert repo.git("rev-parse", "v1.0.0") != first
    assert cache.resolve(repo.url, "v1.0.0") == first
    assert cache.resolve(repo.url, "refs/tags/v1.0.0") == first
    # a full SHA is taken as is, without asking the server
    before = cache.stats.ls_remotes
    assert cache.resolve(repo.url, second.upper()) == second
    assert cache.stats.ls_remotes == before


def test_semver_constraint_picks_highest_matching_tag(repo: GitRepo, cache: GitCache) -> None:
    commits = {}
    for version in ("v1.0.0", "v1.2.0", "1.2.5", "v1.9.1", "v2.0.0", "v1.10.0-rc.1"):
        commits[version] = repo.commit({"VERSION": version})
        repo.tag(version, annotated=version.endswith("1"))
    assert cache.resolve(repo.url, ">=1.2.0 <2.0.0") == commits["v1.9.1"]
    assert cache.resolve(repo.url, "1.2.*") == commits["1.2.5"]
    assert cache.resolve(repo.url, "~1.2") == commits["1.2.5"]
    assert cache.resolve(repo.url, "^1.2") == commits["v1.9.1"]
    assert cache.resolve(repo.url, "^2") == commits["v2.0.0"]
    assert cache.resolve(repo.url, ">=1.10.0-0 <1.11.0") == commits["v1.10.0-rc.1"]


def test_unknown_revision_is_a_user_error_naming_repo_and_revision(
    repo: GitRepo, cache: GitCache
) -> None:
    with pytest.raises(UserInputError) as err:
        cache.resolve(repo.url, "no-such-branch")
    assert "no-such-branch" in str(err.value)
    assert repo.url in str(err.value)
    assert err.value.concerns == repo.url
    with pytest.raises(UserInputError, match="no tag satisfies"):
        cache.resolve(repo.url, ">=9.0.0")


def test_new_commit_on_branch_resolves_to_new_sha(repo: GitRepo, cache: GitCache) -> None:
    old = cache.resolve(repo.url, "main")
    new = repo.commit({"app.yaml": "v: 2\n"})
    assert new != old
    assert cache.resolve(repo.url, "main") == new
    assert (cache.checkout(repo.url, new) / "app.yaml").read_text() == "v: 2\n"
    assert not (cache.checkout(repo.url, old) / "app.yaml").exists()


def test_checkout_holds_exactly_the_commit_and_no_git_dir(repo: GitRepo, cache: GitCache) -> None:
    first = repo.commit(
        {"apps/base/deploy.yaml": "kind: Deployment\n", "apps/run.sh": "#!/bin/sh\n"}, "add"
    )
    (repo.path / "apps" / "run.sh").chmod(0o755)
    repo.git("update-index", "--chmod=+x", "apps/run.sh")
    (repo.path / "link").symlink_to("apps/base")
    second = repo.commit(message="exec bit and in-tree link")
    repo.git("rm", "--quiet", "apps/base/deploy.yaml")
    repo.commit(message="remove")

    tree = cache.checkout(repo.url, second)
    assert tree.name == second
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    assert files == [
        "README.md",
        "apps",
        "apps/base",
        "apps/base/deploy.yaml",
        "apps/run.sh",
        "link",
    ]
    assert not (tree / ".git").exists()
    assert (tree / "link").is_symlink()
    assert (tree / "link" / "deploy.yaml").read_text() == "kind: Deployment\n"
    assert os.access(tree / "apps" / "run.sh", os.X_OK)
    # read-only: no write bit anywhere
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            assert stat.S_IMODE(path.lstat().st_mode) & 0o222 == 0, path
    # an older commit is still reachable by SHA
    assert (cache.checkout(repo.url, first) / "apps" / "base" / "deploy.yaml").exists()
    assert not any(p.name.startswith(".tmp") for p in tree.parent.iterdir())


def test_two_checkouts_of_one_commit_fetch_once(repo: GitRepo, cache: GitCache) -> None:
    commit = cache.resolve(repo.url, "main")
    a = cache.checkout(repo.url, commit)
    # another spelling of the same repository shares the cache
    b = cache.checkout(repo.url + "/", commit)
    c = cache.checkout(repo.url.removesuffix("/repo") + "/repo/", commit)
    assert a == b == c
    assert cache.stats.fetches == 1
    assert cache.stats.exports == 1
    assert cache.stats.hits == 2


def test_a_commit_already_in_the_mirror_is_not_fetched_again(
    repo: GitRepo, cache: GitCache
) -> None:
    commit = cache.resolve(repo.url, "main")
    tree = cache.checkout(repo.url, commit)
    tree.chmod(0o700)
    for path in tree.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700)
    shutil.rmtree(tree)
    assert cache.checkout(repo.url, commit) == tree
    assert cache.stats.fetches == 1
    assert cache.stats.exports == 2


def test_concurrent_checkouts_fetch_once(repo: GitRepo, cache: GitCache) -> None:
    commit = cache.resolve(repo.url, "main")
    results: list[Path] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(cache.checkout(repo.url, commit))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert cache.stats.fetches == 1
    assert cache.stats.exports == 1


async def test_async_wrappers_fetch_once(repo: GitRepo, cache: GitCache) -> None:
    commit = await cache.resolve_async(repo.url, "main")
    trees = await asyncio.gather(*(cache.checkout_async(repo.url, commit) for _ in range(10)))
    assert len(set(trees)) == 1
    assert (trees[0] / "README.md").read_text() == "hello\n"
    assert cache.stats.fetches == 1


def test_unknown_commit_is_a_user_error(repo: GitRepo, cache: GitCache) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(UserInputError, match=missing) as err:
        cache.checkout(repo.url, missing)
    assert repo.url in str(err.value)
    assert not (cache.repo_dir(repo.url) / missing).exists()


def test_deleted_repository_is_retryable(repo: GitRepo, cache: GitCache) -> None:
    commit = cache.resolve(repo.url, "main")
    shutil.rmtree(repo.path)
    with pytest.raises(RetryableError) as err:
        cache.resolve(repo.url, "main")
    assert repo.url in str(err.value)
    with pytest.raises(RetryableError):
        cache.checkout(repo.url, commit)


def test_closed_port_is_retryable(cache: GitCache) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/org/repo.git"
    with pytest.raises(RetryableError, match="unreachable") as err:
        cache.resolve(url, "main")
    assert url in str(err.value)
    assert err.value.concerns == url
    with pytest.raises(RetryableError):
        cache.checkout(url, "a" * 40)


@pytest.mark.parametrize(
    "url",
    [
        "http://deploy-bot@127.0.0.1:{port}/r.git",
        "https://ghp_TOKEN123@127.0.0.1:{port}/r.git",
        "ssh://deploy-bot@127.0.0.1:{port}/r.git",
        "deploy-bot@127.0.0.1:r.git",
    ],
)
def test_url_username_is_refused_before_git_and_never_shown(
    cache: GitCache, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token or user in the URL belongs in `gitmoor repo add`; no git runs for it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        url = url.format(port=port)
        # No git at all: the refusal must come before any process starts.
        monkeypatch.setenv("PATH", str(tmp_path / "no-git"))
        for call in (lambda: cache.resolve(url, "main"), lambda: cache.checkout(url, "a" * 40)):
            with pytest.raises(UserInputError, match="gitmoor repo add") as err:
                call()
            assert "deploy-bot" not in str(err.value)
            assert "TOKEN" not in str(err.value)
        s.settimeout(0.1)
        with pytest.raises(TimeoutError):
            s.accept()  # nobody connected


def test_symlink_out_of_the_repository_is_refused(repo: GitRepo, cache: GitCache) -> None:
    (repo.path / "d").symlink_to(".")
    (repo.path / "escape").symlink_to("d/../etc-passwd")
    (repo.path / "abs").symlink_to("/etc/passwd")
    commit = repo.commit(message="links out")
    with pytest.raises(UserInputError, match="outside the repository") as err:
        cache.checkout(repo.url, commit)
    assert commit in str(err.value)
    repo_dir = cache.repo_dir(repo.url)
    assert not (repo_dir / commit).exists()
    assert not any(p.name.startswith(".tmp") for p in repo_dir.iterdir())


def test_timeout_is_retryable_and_kills_git(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `git` that hangs: a script first on PATH
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "git").write_text("#!/bin/sh\nexec sleep 30\n")
    (bindir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    cache = GitCache(tmp_path / "slow", timeout=0.5)
    with pytest.raises(RetryableError, match="timed out"):
        cache.resolve(repo.url, "main")


def test_missing_git_binary_is_permanent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cache = GitCache(tmp_path / "c")
    with pytest.raises(PermanentError, match="not installed"):
        cache.resolve("https://example.invalid/r", "main")


def test_user_git_config_does_not_apply(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's ~/.gitconfig rewriting URLs must not redirect gitmoor's fetches."""
    home = tmp_path / "userhome"
    home.mkdir()
    (home / ".gitconfig").write_text(
        f'[url "file:///nonexistent/"]\n\tinsteadOf = {repo.path.parent.as_uri()}/\n'
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    cache = GitCache(tmp_path / "c")
    assert cache.resolve(repo.url, "main") == repo.rev("main")


def test_git_run_from_inside_a_hostile_repository_ignores_its_config(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`git ls-remote` discovers the repository around its working directory;
    the cache's git must not, or a checked-out repo's .git/config could steer it."""
    hostile = tmp_path / "hostile"
    subprocess.run(["git", "init", "--quiet", str(hostile)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(hostile),
            "config",
            "url.file:///nonexistent/.insteadOf",
            repo.path.parent.as_uri() + "/",
        ],
        check=True,
    )
    monkeypatch.chdir(hostile)
    cache = GitCache(hostile / "cache")  # even a cache inside that repository
    assert cache.resolve(repo.url, "main") == repo.rev("main")


def test_module_level_api_uses_env_cache_dir(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITMOOR_CACHE_DIR", str(tmp_path / "gm"))
    assert default_cache_dir() == tmp_path / "gm" / "git"
    commit = source.resolve(repo.url, "main")
    tree = source.checkout(repo.url, commit)
    assert tree.is_relative_to(tmp_path / "gm" / "git")
    assert source.get_cache() is source.get_cache(tmp_path / "gm" / "git")
    other = source.checkout(repo.url, commit, cache_dir=tmp_path / "other")
    assert other.is_relative_to(tmp_path / "other")


async def test_module_level_async_api(repo: GitRepo, tmp_path: Path) -> None:
    commit = await source.resolve_async(repo.url, "main", cache_dir=tmp_path / "c")
    tree = await source.checkout_async(repo.url, commit, cache_dir=tmp_path / "c")
    assert (tree / "README.md").exists()


def test_default_cache_dir_without_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITMOOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "gitmoor" / "git"


def test_relative_cache_root(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cache = GitCache("rel-cache")
    tree = cache.checkout(repo.url, cache.resolve(repo.url, "main"))
    assert tree.is_absolute()
    assert tree.is_relative_to(tmp_path / "rel-cache")
    assert (tree / "README.md").exists()
