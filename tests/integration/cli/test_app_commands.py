"""`gitmoor app …` end to end: exit codes, masked Secret diffs, dry-run, selective
sync, JSON output. Each command is a real process against the local cluster."""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING

from support.apps import configmap, dump, secret

if TYPE_CHECKING:
    from support.apps import AppEnv
    from support.cli import Gitmoor


async def test_app_diff_exit_codes(gitmoor: Gitmoor, env: AppEnv) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("settings", {"mode": "slow"}))})
    created = gitmoor(
        "app", "create", "differ", "--repo", env.repo.url, "--dest-namespace", env.namespace
    )
    assert created.returncode == 0, created.stderr

    missing = gitmoor("app", "diff", "no-such-app")
    assert missing.returncode == 2
    assert "no-such-app" in missing.stderr
    assert "not found" in missing.stderr

    before_sync = gitmoor("app", "diff", "differ")
    assert before_sync.returncode == 1, before_sync.stderr
    assert f"ConfigMap {env.namespace}/settings (missing: will be created)" in before_sync.stdout

    synced = gitmoor("app", "sync", "differ")
    assert synced.returncode == 0, synced.stderr
    assert "Succeeded" in synced.stdout

    clean = gitmoor("app", "diff", "differ")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout == ""
    assert "no differences" in clean.stderr

    env.repo.commit({"cm.yaml": dump(configmap("settings", {"mode": "fast"}))})
    changed = gitmoor("app", "diff", "differ")
    assert changed.returncode == 1, changed.stderr
    lines = changed.stdout.splitlines()
    assert "-  mode: slow" in lines
    assert "+  mode: fast" in lines
    assert "1 object(s) differ" in changed.stderr


async def test_secret_values_never_reach_cli_output(gitmoor: Gitmoor, env: AppEnv) -> None:
    old, new = "hunter2-the-old-one", "correct-horse-the-new-one"
    forbidden = [old, new, *(base64.b64encode(v.encode()).decode() for v in (old, new))]
    env.repo.commit({"secret.yaml": dump(secret("db", {"password": old, "user": "app"}))})
    await env.create("secretive")
    outputs = [gitmoor("app", "diff", "secretive")]  # the Secret to create
    assert (await env.sync("secretive")).ok
    env.repo.commit({"secret.yaml": dump(secret("db", {"password": new, "user": "app"}))})

    diff = gitmoor("app", "diff", "secretive")

    assert diff.returncode == 1, diff.stderr
    # The changed value shows as a change of mask; the unchanged one keeps its mask
    # (a context line, on neither side of the change).
    lines = diff.stdout.splitlines()
    removed = [ln for ln in lines if re.fullmatch(r"-  password: <redacted:[0-9a-f]{8}>", ln)]
    added = [ln for ln in lines if re.fullmatch(r"\+  password: <redacted:[0-9a-f]{8}>", ln)]
    assert len(removed) == len(added) == 1, diff.stdout
    assert removed[0][1:] != added[0][1:]
    assert any(re.fullmatch(r"   user: <redacted:[0-9a-f]{8}>", ln) for ln in lines), diff.stdout
    outputs += [
        diff,
        gitmoor("app", "sync", "secretive"),
        gitmoor("app", "get", "secretive", "--refresh", "-o", "yaml"),
    ]
    assert outputs[0].returncode == 1
    assert outputs[2].returncode == 0, outputs[2].stderr
    for out in outputs:
        for value in forbidden:
            assert value not in out.stdout, (out.args, value)
            assert value not in out.stderr, (out.args, value)


async def test_sync_dry_run_writes_nothing(gitmoor: Gitmoor, env: AppEnv) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("a", {"v": "1"}), configmap("b"))})
    await env.create("careful")
    assert (await env.sync("careful")).ok
    env.repo.commit({"cm.yaml": dump(configmap("a", {"v": "2"}), configmap("c"))})
    before = await env.snapshot()
    app_before = await env.app("careful")

    dry = gitmoor("app", "sync", "careful", "--dry-run", "--prune")

    assert dry.returncode == 0, dry.stderr
    rows = {
        (parts[0], parts[2])
        for parts in (line.split() for line in dry.stdout.splitlines())
        if parts[-3:] == ["—", "dry", "run"]
    }
    ns = env.namespace
    assert rows == {("configured", f"{ns}/a"), ("created", f"{ns}/c"), ("pruned", f"{ns}/b")}
    assert "3 object(s) would change" in dry.stdout
    assert await env.snapshot() == before
    # Not even the Application's status is written.
    assert (await env.app("careful")).resource_version == app_before.resource_version


async def test_sync_resource_syncs_only_that_object(gitmoor: Gitmoor, env: AppEnv) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("chosen"), configmap("left-out"))})
    await env.create("picky")

    result = gitmoor("app", "sync", "picky", "--resource", ":ConfigMap:chosen")

    assert result.returncode == 0, result.stderr
    assert await env.get(env.cm("chosen")) is not None
    assert await env.get(env.cm("left-out")) is None
    bad = gitmoor("app", "sync", "picky", "--resource", "ConfigMap/chosen")
    assert bad.returncode == 2
    assert "GROUP:KIND:NAME" in bad.stderr


async def test_app_list_json_parses(gitmoor: Gitmoor, env: AppEnv) -> None:
    sha = env.repo.commit({"cm.yaml": dump(configmap("listed"))})
    await env.create("listed-one")
    await env.create("listed-two")
    assert (await env.sync("listed-one")).ok

    listed = gitmoor("app", "list", "-o", "json")

    assert listed.returncode == 0, listed.stderr
    apps = json.loads(listed.stdout)
    assert [a["metadata"]["name"] for a in apps] == ["listed-one", "listed-two"]
    one, two = apps
    assert one["status"]["sync"] == {"status": "Synced", "revision": sha}
    assert one["spec"]["source"]["repoURL"] == env.repo.url
    assert "sync" not in two.get("status", {})
