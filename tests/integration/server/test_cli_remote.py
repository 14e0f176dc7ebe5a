"""`gitmoor app …` through a running ``gitmoor server`` after `gitmoor login`.

The CLI runs as a user runs it, a separate process, with its own HOME and no
kubeconfig at all: whatever it does, it does through the server's API, and a
sync it asks for is run by a real controller over the same apps namespace (the
API only sets the Application's ``operation``, as Argo CD's API server does).
Without a stored login the same commands fail for lack of a kubeconfig, which
proves the API path is the one taken.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine import store
from gitmoor.kube import wait_for
from support.apps import configmap, dump
from support.controller import running_controller

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from gitmoor.controller import Controller
    from support.apps import AppEnv

    from .conftest import Server


@dataclass(frozen=True)
class Cli:
    """``gitmoor ARGS`` with HOME (and so ``~/.config/gitmoor/config``) in ``home``
    and no way to a cluster: no ``KUBECONFIG``, no ``~/.kube/config``, no
    in-cluster service account."""

    home: Path

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "GITMOOR_CORE")
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            GITMOOR_CACHE_DIR=str(self.home / "cache"),
        )
        return env

    async def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        # In a thread: the server and the controller run in this test's event loop.
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gitmoor.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
        )

    async def ok(self, *args: str) -> str:
        r = await self(*args)
        assert r.returncode == 0, (
            f"gitmoor {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        )
        return r.stdout


@pytest.fixture
async def controller(server: Server) -> AsyncIterator[Controller]:
    """A controller that also refreshes every 2 s, so `app list` sees new commits."""
    async with running_controller(server.kube, server.namespace, interval=2.0) as ctrl:
        yield ctrl


def _row(listing: str, name: str) -> list[str]:
    """The columns of ``name``'s line in a table."""
    for line in listing.splitlines():
        cols = line.split()
        if cols and cols[0] == name:
            return cols
    raise AssertionError(f"{name} not in:\n{listing}")


async def _value(env: AppEnv, name: str) -> str | None:
    live = await env.get(env.cm(name))
    return None if live is None else str(live["data"]["value"])


async def test_app_commands_go_through_the_server(
    server: Server, env: AppEnv, controller: Controller, tmp_path: Path
) -> None:
    first = env.repo.commit({"cm.yaml": dump(configmap("settings", {"value": "one"}))})
    cli = Cli(tmp_path / "admin")

    # No login and no kubeconfig: nothing to talk to, and the sentence says what to do.
    r = await cli("app", "list")
    assert r.returncode == 2
    assert "gitmoor login SERVER" in r.stderr and "kubeconfig" in r.stderr

    out = await cli.ok(
        "login", server.url, "--username", "admin", "--password", server.admin_password
    )
    assert f"logged in to {server.url} as admin" in out

    create = ("app", "create", "web", "--repo", env.repo.url, "--dest-namespace", env.namespace)
    assert "application web created" in await cli.ok(*create)
    assert (await env.app("web")).spec.source.repo_url == env.repo.url

    # The list and the app as the server's watch sees them (the controller's first
    # refresh has compared the app with Git by then).
    async def compared() -> bool:
        a = await env.app("web")
        return (a.status.get("sync") or {}).get("status") == "OutOfSync"

    await wait_for(compared, within=30, what="web compared by the controller")
    row = _row(await cli.ok("app", "list"), "web")
    assert row[1] == "OutOfSync" and row[3] == env.namespace and row[4] == first[:12]

    r = await cli("app", "diff", "web")
    assert r.returncode == 1, r.stderr
    assert "(missing: will be created)" in r.stdout and "+  value: one" in r.stdout
    assert f"1 object(s) differ at revision {first[:12]}" in r.stderr

    # A sync asked through the API is run by the controller; the CLI follows it to its end.
    out = await cli.ok("app", "sync", "web")
    assert "Succeeded:" in out and f"(revision {first[:12]})" in out
    assert await _value(env, "settings") == "one"
    out = await cli.ok("app", "get", "web")
    assert "Synced" in out and "Last op:     Succeeded" in out
    assert _row(out, "ConfigMap")[1:3] == [env.namespace, "settings"]
    r = await cli("app", "diff", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no differences" in r.stderr

    second = env.repo.commit({"cm.yaml": dump(configmap("settings", {"value": "two"}))})
    out = await cli.ok("app", "sync", "web", "--revision", second)
    assert f"(revision {second[:12]})" in out
    assert await _value(env, "settings") == "two"

    history = await cli.ok("app", "history", "web")
    assert _row(history, "1")[2] == first[:12] and _row(history, "2")[2] == second[:12]
    assert "admin" in _row(history, "2")  # the server's user, not the shell's

    out = await cli.ok("app", "rollback", "web", "1")
    assert "Succeeded:" in out and f"(revision {first[:12]})" in out
    assert await _value(env, "settings") == "one"
    assert _row(await cli.ok("app", "history", "web"), "3")[2] == first[:12]

    # Nothing runs now: terminate-op says so with exit code 1, as the kubeconfig path.
    r = await cli("app", "terminate-op", "web")
    assert r.returncode == 1 and "no operation is running" in r.stderr

    # Automation through POST …/automation; suspended first, so the controller does
    # not roll forward to the second commit while the test looks.
    assert "suspended" in await cli.ok("app", "suspend", "web")
    await cli.ok("app", "set", "web", "--auto-sync=true", "--self-heal=true")
    spec = (await env.app("web")).spec
    assert spec.sync_policy.suspended
    assert spec.sync_policy.automated is not None and spec.sync_policy.automated.self_heal
    assert not spec.sync_policy.automated.prune
    await cli.ok("app", "set", "web", "--auto-sync=false")
    await cli.ok("app", "resume", "web")
    spec = (await env.app("web")).spec
    assert spec.sync_policy.automated is None and not spec.sync_policy.suspended
    # A source change would replace a spec the API does not show: refused, nothing written.
    r = await cli("app", "set", "web", "--revision", second)
    assert r.returncode == 2 and "--core" in r.stderr
    assert (await env.app("web")).spec.source.target_revision == "HEAD"

    # --core (or GITMOOR_CORE=1) goes to the cluster even when logged in: here it
    # finds no kubeconfig.
    for args, extra in ((("--core", "app", "list"), {}), (("app", "list"), {"GITMOOR_CORE": "1"})):
        r = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gitmoor.cli.main", *args],
            capture_output=True,
            text=True,
            env={**cli.env(), **extra},
            timeout=120,
        )
        assert r.returncode == 2 and "kubeconfig not found" in r.stderr, r.stderr

    out = await cli.ok("app", "delete", "web")
    assert f"deleted ConfigMap {env.namespace}/settings" in out and "application web deleted" in out
    assert await env.get(env.app_ref("web")) is None
    assert await _value(env, "settings") is None

    await cli.ok("logout")
    r = await cli("app", "list")
    assert r.returncode == 2
    assert "not logged in to a gitmoor server: run `gitmoor login SERVER`" in r.stderr


async def test_a_readonly_user_sees_apps_and_cannot_sync(
    server: Server, env: AppEnv, tmp_path: Path
) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("settings", {"value": "one"}))})
    await env.create("web")
    await server.add_user("viewer", "viewer-password-1")
    await server.set_policy("g, viewer, role:readonly\n")
    cli = Cli(tmp_path / "viewer")
    await cli.ok("login", server.url, "--username", "viewer", "--password", "viewer-password-1")

    assert _row(await cli.ok("app", "list"), "web")[0] == "web"
    before = await env.app("web")
    r = await cli("app", "sync", "web")
    assert r.returncode == 2
    assert "permission denied: applications, sync, default/web" in r.stderr
    after = await store.get_app(env.kube, "web", env.apps_namespace)
    assert after.operation is None and after.resource_version == before.resource_version
