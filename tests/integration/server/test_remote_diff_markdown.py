"""`gitmoor app diff -o markdown` through a running ``gitmoor server`` after
`gitmoor login`: the same pull-request comment as on the kubeconfig path, built
from the server's masked diff items. The CLI process has no kubeconfig at all."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

from support.apps import configmap, dump, secret

if TYPE_CHECKING:
    from pathlib import Path

    from support.apps import AppEnv

    from .conftest import Server


async def gitmoor(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``gitmoor ARGS`` with its own HOME and no way to a cluster but the server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "GITMOOR_CORE")
    }
    env.update(
        HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GITMOOR_CACHE_DIR=str(home / "c")
    )
    # In a thread: the server runs in this test's event loop.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gitmoor.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def test_app_diff_markdown_through_the_server(
    server: Server, env: AppEnv, tmp_path: Path
) -> None:
    old, new = "pw-before-9f1c", "pw-after-77ab"
    env.repo.commit(
        {
            "cm.yaml": dump(configmap("settings", {"value": "one"})),
            "gone.yaml": dump(configmap("gone", {"value": "x"})),
            "db.yaml": dump(secret("db", {"password": old})),
        }
    )
    await env.create("web")
    assert (await env.sync("web")).ok
    env.repo.commit(
        {
            "cm.yaml": dump(configmap("settings", {"value": "two"})),
            "new.yaml": dump(configmap("fresh", {"value": "y"})),
            "db.yaml": dump(secret("db", {"password": new})),
        },
        remove=("gone.yaml",),
    )
    # The app's status names the object to create as Missing (what a controller's
    # refresh writes), which the CLI reads to say "added".
    await env.refresh("web")

    home = tmp_path / "home"
    login = await gitmoor(
        home, "login", server.url, "--username", "admin", "--password", server.admin_password
    )
    assert login.returncode == 0, login.stderr
    r = await gitmoor(home, "app", "diff", "web", "-o", "markdown")
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"^\| `web` \| [0-9a-f]{12} \| 1 \| 2 \| 1 \|$", r.stdout, re.M), r.stdout
    summaries = sorted(re.findall(r"<details><summary>(.*?)</summary>", r.stdout))
    ns = env.namespace
    assert summaries == sorted(
        [
            f"ConfigMap {ns}/fresh (added)",
            f"ConfigMap {ns}/settings (changed)",
            f"Secret {ns}/db (changed)",
            f"ConfigMap {ns}/gone (removed)",
        ]
    )
    assert r.stdout.count("```diff\n") == 4
    assert "<redacted:" in r.stdout
    assert old not in r.stdout and new not in r.stdout
