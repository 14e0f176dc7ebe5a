"""`gitmoor bootstrap` on an empty repository served over HTTP with Basic auth:
gitmoor's manifests land in Git, are applied, and the `gitmoor` Application
manages them from then on; a second bootstrap changes nothing.

gitmoor's namespace is the test's apps namespace (bootstrap moves deploy/'s
`gitmoor` there and suffixes cluster-wide RBAC names with it), so tests never
collide; the CRDs are the shared ones, applied identical and marked
Prune=false,Delete=false."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import yaml

from gitmoor.engine import status_of, store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from support.apps import deploy_ref
from support.controller import running_controller
from support.githttp import PASSWORD, USER
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.cli import Gitmoor
    from support.githttp import GitHTTPServer

PATH = "clusters/test"
CONTROLLER = "gitmoor-controller"


@pytest.fixture
async def cluster_rbac(kube: KubeClient, apps_namespace: str) -> AsyncIterator[None]:
    """Deletes, afterwards, the ClusterRoles and -Bindings bootstrap made for this namespace."""
    yield
    for kind in ("ClusterRoleBinding", "ClusterRole"):
        ar = await kube.resource("rbac.authorization.k8s.io", "v1", kind)
        for o in (await kube.list(ar, "")).items:
            if o["metadata"]["name"].endswith(f"-{apps_namespace}"):
                await kube.delete(
                    ObjectRef("rbac.authorization.k8s.io", "v1", kind, "", o["metadata"]["name"])
                )


def _bare(root: Path, name: str) -> Path:
    path = root / name
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True
    )
    return path


def _with_stdin(gitmoor: Gitmoor, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``gitmoor ARGS`` with ``text`` on its stdin."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gitmoor.cli.main",
            "--kubeconfig",
            str(gitmoor.kubeconfig),
            "--apps-namespace",
            gitmoor.apps_namespace,
            *args,
        ],
        input=text,
        capture_output=True,
        text=True,
        env=gitmoor.env,
        timeout=300,
    )


def _git(bare: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", f"--git-dir={bare}", *args], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


async def test_bootstrap_installs_from_git_and_manages_itself(
    env: AppEnv,
    kube: KubeClient,
    gitmoor: Gitmoor,
    git_server: GitHTTPServer,
    tmp_path: Path,
    cluster_rbac: None,
) -> None:
    bare = _bare(git_server.root, "fleet.git")
    url = git_server.url("fleet.git")
    ns = env.apps_namespace

    dry = gitmoor("bootstrap", "--repo", url, "--path", PATH, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"--- {PATH}/gitmoor-components.yaml" in dry.stdout
    assert _git(bare, "for-each-ref") == ""  # the dry run wrote nothing

    # The credentials given as `gitmoor repo add` takes them, the password on stdin.
    done = await asyncio.to_thread(
        _with_stdin,
        gitmoor,
        PASSWORD,
        "bootstrap",
        "--repo",
        url,
        "--path",
        PATH,
        "--username",
        USER,
        "--password-stdin",
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    files = _git(bare, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert sorted(files) == [
        f"{PATH}/gitmoor-components.yaml",
        f"{PATH}/gitmoor-project.yaml",
        f"{PATH}/kustomization.yaml",
    ]
    components = list(
        yaml.safe_load_all(_git(bare, "show", f"main:{PATH}/gitmoor-components.yaml"))
    )
    image = next(o for o in components if o["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    first = _git(bare, "rev-parse", "main")
    app = await store.get_app(kube, "gitmoor", ns)
    assert status_of(app).sync_status == "Synced" and status_of(app).sync_revision == first
    auto = app.spec.sync_policy.automated
    assert auto is not None and auto.prune and auto.self_heal
    live = await kube.get(deploy_ref(ns, CONTROLLER))
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image
    await env.healthy("gitmoor")  # the Deployments Available by the kwok pod rules

    # A commit that changes a setting in the path is applied by the controller.
    work = GitRepo(tmp_path / "work")
    work.git("pull", "--quiet", str(bare), "main")
    kustomization = yaml.safe_load((work.path / PATH / "kustomization.yaml").read_text())
    kustomization["patches"] = [
        {
            "target": {"kind": "Deployment", "name": CONTROLLER},
            "patch": "- op: replace\n  path: /spec/replicas\n  value: 2\n",
        }
    ]
    second = work.commit(
        {f"{PATH}/kustomization.yaml": yaml.safe_dump(kustomization)}, "2 replicas"
    )
    work.git("push", "--quiet", str(bare), "HEAD:main")

    async with running_controller(kube, ns, interval=1):

        async def applied() -> bool:
            live = await kube.get(deploy_ref(ns, CONTROLLER))
            a = status_of(await store.get_app(kube, "gitmoor", ns))
            return (
                live is not None
                and live["spec"]["replicas"] == 2
                and a.sync_status == "Synced"
                and a.sync_revision == second
                and a.health_status == "Healthy"
            )

        await wait_for(applied, within=90, interval=0.5, what="the replicas commit applied")

    # A second bootstrap: no commit (the user's kustomization.yaml is kept), no
    # write to the app.
    before = await kube.get(store.app_ref("gitmoor", ns))
    assert before is not None
    again = await asyncio.to_thread(gitmoor, "bootstrap", "--repo", url, "--path", PATH)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no commit" in again.stdout
    assert _git(bare, "rev-parse", "main") == second
    after = await kube.get(store.app_ref("gitmoor", ns))
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert (await kube.get(deploy_ref(ns, CONTROLLER)) or {})["spec"]["replicas"] == 2


async def test_bootstrap_without_credentials_is_refused(
    env: AppEnv, gitmoor: Gitmoor, git_server: GitHTTPServer
) -> None:
    bare = _bare(git_server.root, "nocreds.git")

    done = gitmoor("bootstrap", "--repo", git_server.url("nocreds.git"), "--path", PATH)

    assert done.returncode == 2
    assert "no stored credentials" in done.stderr
    assert _git(bare, "for-each-ref") == ""
    assert await env.kube.get(store.app_ref("gitmoor", env.apps_namespace)) is None


@pytest.mark.parametrize(("overlay", "replicas"), [("ha", 2), ("namespaced", 1)])
def test_dry_run_renders_the_overlay_into_the_namespace(
    gitmoor: Gitmoor, overlay: str, replicas: int
) -> None:
    done = gitmoor(
        "bootstrap",
        "--repo",
        "https://git.example.com/fleet",
        "--path",
        PATH,
        "--overlay",
        overlay,
        "--dry-run",
    )

    assert done.returncode == 0, done.stderr
    body = done.stdout.split(f"--- {PATH}/gitmoor-project.yaml")[0]
    objs = [o for o in yaml.safe_load_all(body.split("\n", 1)[1]) if o]
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    assert deployment["metadata"]["namespace"] == gitmoor.apps_namespace
    assert deployment["spec"]["replicas"] == replicas
    # Nothing of deploy/'s own namespace is left; the CRDs survive deleting the app.
    assert all(o["metadata"].get("namespace") != "gitmoor" for o in objs)
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    assert crds
    assert all(
        c["metadata"]["annotations"]["gitmoor.io/sync-options"] == "Prune=false,Delete=false"
        for c in crds
    )
