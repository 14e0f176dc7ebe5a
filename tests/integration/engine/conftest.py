"""Fixtures for engine tests: the Application CRD once per session, and per test
a git repository, an apps namespace next to the test's namespace and an Engine.

Applications live in ``<namespace>-apps``, so no test sees another test's apps;
both namespaces are deleted after the test (Applications first, explicitly).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine.app import Engine
from support.apps import AppEnv, create_namespace, delete_namespace, install_application_crd
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from gitmoor.kube import KubeClient


@pytest.fixture(scope="session")
async def app_crd(kube: KubeClient) -> AsyncIterator[None]:
    """The Application CRD, installed once (``store.install`` is idempotent)."""
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
