"""Fixtures for end-to-end tests of the `gitmoor` command, run as a subprocess
against the local control plane (``--kubeconfig``) with Applications in an apps
namespace of the test's own (``--apps-namespace``).

A command costs one to three seconds of interpreter start-up, so tests set up
through the engine (``env``, the same helper the engine tests use) and run the
command only for the behaviour under test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.engine.app import Engine
from support.apps import AppEnv

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient
    from support.gitrepo import GitRepo


@pytest.fixture
async def env(
    kube: KubeClient,
    repo: GitRepo,
    namespace: str,
    apps_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[AppEnv]:
    engine = Engine(
        kube, git_cache_dir=tmp_path_factory.mktemp("git-cache"), namespace=apps_namespace
    )
    e = AppEnv(kube, engine, repo, namespace, apps_namespace)
    yield e
    await e.cleanup()
