"""Fixtures for tests against the real local control plane.

One control plane serves the whole test run: the one `make cluster` left
running (``.local/cluster``) when it is healthy, otherwise a fresh one that
is stopped at the end. Each test gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine.app import Engine
from gitmoor.kube import KubeClient, load_kubeconfig
from gitmoor.testenv import ControlPlane
from support.apps import AppEnv, create_namespace, delete_namespace, install_application_crd
from support.cli import Gitmoor
from support.githttp import GitHTTPServer, _handler
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    shared = ControlPlane.attach(REPO_ROOT / ".local" / "cluster")
    if shared is not None and not os.environ.get("GITMOOR_FRESH_CLUSTER"):
        yield shared
        return
    home = Path(tempfile.mkdtemp(prefix="gitmoor-test-cluster-"))
    cp = ControlPlane(home=home / "cp", nodes=2, name="gitmoor-test")
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()
        home.rmdir()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    async with KubeClient(load_kubeconfig(control_plane.kubeconfig)) as kc:
        yield kc


def _ns_name(nodeid: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", nodeid.split("::")[-1].lower()).strip("-")[:40]
    return f"t-{base}-{secrets.token_hex(3)}".replace("--", "-")


async def _new_namespace(kube: KubeClient, name: str) -> str:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"gitmoor.io/test": "true"}},
        }
    )
    return name


@pytest.fixture
async def namespace(kube: KubeClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A namespace of this test's own, deleted (not waited for) afterwards."""
    from gitmoor.model import ObjectRef

    name = await _new_namespace(kube, _ns_name(request.node.nodeid))
    yield name
    await kube.delete(ObjectRef("", "v1", "Namespace", "", name))


# --- apps: shared by the engine, projects and CLI tests ------------------------------
#
# Applications live in ``<namespace>-apps``, so no test sees another test's apps;
# both namespaces are deleted after the test (Applications first, explicitly).


@pytest.fixture(scope="session")
async def app_crd(kube: KubeClient) -> AsyncIterator[None]:
    """The Application and AppProject CRDs, installed once (``store.install`` is idempotent)."""
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


@pytest.fixture
def gitmoor(
    kubeconfig: Path, apps_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Gitmoor:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["GITMOOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("cli-cache"))
    env["GITMOOR_USER"] = "cli-tests"
    # These tests are of the kubeconfig path, whatever `gitmoor login` a developer did.
    env["GITMOOR_CORE"] = "1"
    return Gitmoor(kubeconfig, apps_namespace, env)
