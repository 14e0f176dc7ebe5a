"""Fixtures for project tests: the CRDs once per session, and per test an apps
namespace, a git repository, an Engine, ``team-a-*`` namespaces (the names the
``team-a`` project permits) and a real git server over HTTP with Basic auth."""

from __future__ import annotations

import secrets
import threading
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine.app import Engine
from gitmoor.model import ObjectRef
from support.apps import AppEnv, create_namespace, delete_namespace, install_application_crd
from support.githttp import GitHTTPServer, _handler
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from pathlib import Path

    from gitmoor.kube import KubeClient


@pytest.fixture(scope="session")
async def app_crd(kube: KubeClient) -> AsyncIterator[None]:
    """The Application and AppProject CRDs (``store.install`` is idempotent)."""
    ns = f"t-gitmoor-install-{secrets.token_hex(3)}"
    await install_application_crd(kube, ns)
    yield
    await delete_namespace(kube, ns)


@pytest.fixture(scope="session")
def git_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("git-cache")


@pytest.fixture
async def apps_namespace(kube: KubeClient, namespace: str, app_crd: None) -> AsyncIterator[str]:
    name = await create_namespace(kube, f"{namespace}-apps")
    yield name
    await delete_namespace(kube, name)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


@pytest.fixture
def engine(kube: KubeClient, apps_namespace: str, git_cache: Path) -> Engine:
    return Engine(kube, git_cache_dir=git_cache, namespace=apps_namespace)


@pytest.fixture
async def env(
    kube: KubeClient, engine: Engine, repo: GitRepo, namespace: str, apps_namespace: str
) -> AsyncIterator[AppEnv]:
    e = AppEnv(kube, engine, repo, namespace, apps_namespace)
    yield e
    await e.cleanup()


@pytest.fixture
async def team_namespace(kube: KubeClient) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Makes ``team-a-<random>`` namespaces (deleted afterwards, not waited for)."""
    made: list[str] = []

    async def make() -> str:
        name = await create_namespace(kube, f"team-a-{secrets.token_hex(4)}")
        made.append(name)
        return name

    yield make
    for name in made:
        await kube.delete(ObjectRef("", "v1", "Namespace", "", name))


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitHTTPServer]:
    """`git http-backend` behind Basic auth on loopback (support/githttp.py)."""
    state = GitHTTPServer(root=tmp_path / "srv")
    state.root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
