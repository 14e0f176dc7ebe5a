"""`gitmoor diff --local` and `gitmoor app diff --revision` end to end: a real git
repository, a clone of it as the user's working tree, the local control plane,
and the command as a process.

The pre-merge promise under test: for a working tree that changes 3 of the 40
objects of a kustomize overlay, the diff names exactly those 3 (a Secret's
values masked) and exits 1; with no change it exits 0.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from typing import TYPE_CHECKING

import pytest

from support.apps import configmap, dump, secret
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from support.apps import AppEnv
    from support.cli import Gitmoor

OLD_PASSWORD = "s3cret-before-the-pr"
NEW_PASSWORD = "s3cret-after-the-pr"
CONFIGMAPS = 38  # plus two Secrets: 40 objects in the overlay


def overlay_files() -> dict[str, str]:
    """base/ with 38 ConfigMaps and 2 Secrets; overlays/dev renders the base, and
    tiny/ is a second app of the same repository."""
    files: dict[str, str] = {}
    names: list[str] = []
    for i in range(CONFIGMAPS):
        files[f"base/cm-{i:02}.yaml"] = dump(configmap(f"cm-{i:02}", {"value": f"v{i}"}))
        names.append(f"cm-{i:02}.yaml")
    files["base/db.yaml"] = dump(secret("db", {"password": OLD_PASSWORD, "user": "app"}))
    files["base/api.yaml"] = dump(secret("api", {"token": "api-token-unchanged"}))
    names += ["db.yaml", "api.yaml"]
    files["base/kustomization.yaml"] = dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": names,
        }
    )
    files["overlays/dev/kustomization.yaml"] = dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../../base"],
        }
    )
    files["tiny/cm.yaml"] = dump(configmap("tiny-settings", {"mode": "calm"}))
    return files


def clone(repo: GitRepo, dest: Path) -> Path:
    """The user's working tree: ``git clone`` of the app's repository, so its
    ``origin`` is the app's repoURL."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(repo.home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
    }
    subprocess.run(
        ["git", "clone", "--quiet", repo.url, str(dest)], env=env, check=True, capture_output=True
    )
    return dest


def edit_three(tree: Path) -> None:
    """Change 2 ConfigMaps and 1 Secret of the 40, without committing."""
    (tree / "base/cm-05.yaml").write_text(dump(configmap("cm-05", {"value": "v5-changed"})))
    (tree / "base/cm-17.yaml").write_text(dump(configmap("cm-17", {"value": "v17-changed"})))
    (tree / "base/db.yaml").write_text(
        dump(secret("db", {"password": NEW_PASSWORD, "user": "app"}))
    )


def headers(markdown: str) -> list[str]:
    return re.findall(r"<details><summary>(.*?)</summary>", markdown)


@pytest.fixture
async def synced(env: AppEnv) -> AppEnv:
    env.repo.commit(overlay_files())
    await env.create("dev", path="overlays/dev")
    result = await env.sync("dev")
    assert result.ok, result
    return env


async def test_diff_local_lists_exactly_the_changed_objects(
    gitmoor: Gitmoor, synced: AppEnv, tmp_path: Path
) -> None:
    tree = clone(synced.repo, tmp_path / "wt")
    ns = synced.namespace

    clean = gitmoor("diff", "--local", str(tree / "overlays/dev"), "--app", "dev")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout == ""
    assert "no differences at revision working-tree" in clean.stderr

    edit_three(tree)
    changed = gitmoor("diff", "--local", str(tree / "overlays/dev"), "--app", "dev")
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "3 object(s) differ" in changed.stderr
    files = re.findall(r"^\+\+\+ (.*)$", changed.stdout, flags=re.MULTILINE)
    assert len(files) == 3, changed.stdout
    for name in ("cm-05", "cm-17", "db"):
        assert sum(f"{ns}/{name}" in f or f"/{name}" in f for f in files) >= 1, files
    lines = changed.stdout.splitlines()
    assert "-  value: v5" in lines
    assert "+  value: v5-changed" in lines
    assert "+  value: v17-changed" in lines
    # The Secret: two different masks, never the value, in any spelling.
    assert "<redacted:" in changed.stdout
    for value in (OLD_PASSWORD, NEW_PASSWORD):
        assert value not in changed.stdout + changed.stderr
    for value in (OLD_PASSWORD, NEW_PASSWORD):
        encoded = base64.b64encode(value.encode()).decode()
        assert encoded not in changed.stdout + changed.stderr

    # The working tree was compared, not Git: the app's revision still diffs clean.
    committed = gitmoor("app", "diff", "dev")
    assert committed.returncode == 0, committed.stdout + committed.stderr

    # --local-repo-root: the same comparison, the root given instead of derived.
    rooted = gitmoor(
        "diff",
        "--local",
        str(tree / "overlays/dev"),
        "--local-repo-root",
        str(tree),
        "--app",
        "dev",
    )
    assert rooted.returncode == 1, rooted.stderr

    # Masks are salted per process: equal up to the mask.
    def unmasked(text: str) -> str:
        return re.sub(r"<redacted:[0-9a-f]+>", "<redacted>", text)

    assert unmasked(rooted.stdout) == unmasked(changed.stdout)


async def test_diff_local_markdown_for_a_pull_request(
    gitmoor: Gitmoor, synced: AppEnv, tmp_path: Path
) -> None:
    tree = clone(synced.repo, tmp_path / "wt")
    edit_three(tree)
    (tree / "base/cm-30.yaml").unlink()  # removed from Git: requires pruning
    kustomization = tree / "base/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("- cm-30.yaml\n", "- new.yaml\n"))
    (tree / "base/new.yaml").write_text(dump(configmap("brand-new", {"value": "n"})))

    md = gitmoor("diff", "--local", str(tree / "overlays/dev"), "--app", "dev", "-o", "markdown")
    assert md.returncode == 1, md.stdout + md.stderr
    text = md.stdout
    assert text.startswith("## gitmoor diff\n")
    assert "| App | Revision | Added | Changed | Removed |" in text
    assert "| `dev` | working-tree | 1 | 3 | 1 |" in text
    ns = synced.namespace
    assert sorted(headers(text)) == sorted(
        [
            f"ConfigMap {ns}/brand-new (added)",
            f"ConfigMap {ns}/cm-05 (changed)",
            f"ConfigMap {ns}/cm-17 (changed)",
            f"Secret {ns}/db (changed)",
            f"ConfigMap {ns}/cm-30 (removed)",
        ]
    )
    # Each summary opens a block with one fenced diff, closed before the next.
    blocks = text.split("<details>")[1:]
    assert len(blocks) == 5
    for block in blocks:
        assert "```diff\n" in block
        assert block.rstrip().endswith("</details>")
        body = block.split("```diff\n", 1)[1].split("\n```\n", 1)[0]
        assert body.startswith("---"), body
    db = next(b for b in blocks if "Secret" in b.split("</summary>")[0])
    assert "<redacted:" in db
    for value in (OLD_PASSWORD, NEW_PASSWORD):
        assert value not in text

    # The same format from `app diff` (a revision instead of a working tree).
    clean = gitmoor("app", "diff", "dev", "-o", "markdown")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "| `dev` |" in clean.stdout
    assert "| 0 | 0 | 0 |" in clean.stdout
    assert "No differences." in clean.stdout
    assert headers(clean.stdout) == []


async def test_all_apps_picks_the_apps_of_the_working_tree(
    gitmoor: Gitmoor, synced: AppEnv, tmp_path: Path
) -> None:
    env = synced
    await env.create("tiny", path="tiny")
    assert (await env.sync("tiny")).ok
    # Same layout, another repository: not this working tree's app.
    other = GitRepo(tmp_path / "other")
    other.commit(overlay_files())
    await env.create(
        "other-repo",
        spec={"source": {"repoURL": other.url, "path": "overlays/dev", "targetRevision": "HEAD"}},
    )
    # This repository, a path the working tree does not have.
    await env.create("elsewhere", path="not/here")

    tree = clone(env.repo, tmp_path / "wt")
    edit_three(tree)
    md = gitmoor("diff", "--local", str(tree), "--all-apps", "-o", "markdown")
    assert md.returncode == 1, md.stdout + md.stderr
    rows = re.findall(
        r"^\| `([^`]+)` \| working-tree \| (\d+) \| (\d+) \| (\d+) \|$", md.stdout, re.M
    )
    assert rows == [("dev", "0", "3", "0"), ("tiny", "0", "0", "0")], md.stdout
    assert "other-repo" not in md.stdout
    assert "elsewhere" not in md.stdout
    assert len(headers(md.stdout)) == 3

    text = gitmoor("diff", "--local", str(tree), "--all-apps")
    assert text.returncode == 1, text.stderr
    assert "dev: 3 object(s) differ" in text.stderr
    assert "tiny: no differences" in text.stderr

    # Nothing changed in the tree: every picked app is clean, exit 0.
    pristine = clone(env.repo, tmp_path / "pristine")
    clean = gitmoor("diff", "--local", str(pristine), "--all-apps")
    assert clean.returncode == 0, clean.stdout + clean.stderr


async def test_app_diff_at_a_branch_a_tag_and_a_commit(gitmoor: Gitmoor, env: AppEnv) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("settings", {"mode": "slow"}))})
    await env.create("revs")
    assert (await env.sync("revs")).ok

    env.repo.git("checkout", "--quiet", "-b", "feature")
    feature = env.repo.commit({"cm.yaml": dump(configmap("settings", {"mode": "fast"}))})
    env.repo.tag("v2")
    env.repo.git("checkout", "--quiet", "main")

    for revision in ("feature", "v2", feature):
        changed = gitmoor("app", "diff", "revs", "--revision", revision)
        assert changed.returncode == 1, (revision, changed.stdout, changed.stderr)
        lines = changed.stdout.splitlines()
        assert "-  mode: slow" in lines
        assert "+  mode: fast" in lines
        assert f"1 object(s) differ at revision {feature[:12]}" in changed.stderr

    same = gitmoor("app", "diff", "revs", "--revision", "main")
    assert same.returncode == 0, same.stdout + same.stderr

    missing = gitmoor("app", "diff", "revs", "--revision", "no-such-branch")
    assert missing.returncode == 2
    assert "no-such-branch" in missing.stderr


async def test_diff_local_refuses_a_directory_that_is_not_the_apps(
    gitmoor: Gitmoor, synced: AppEnv, tmp_path: Path
) -> None:
    tree = clone(synced.repo, tmp_path / "wt")
    wrong = gitmoor("diff", "--local", str(tree / "base"), "--app", "dev")
    assert wrong.returncode == 2
    assert "--local-repo-root" in wrong.stderr
    neither = gitmoor("diff", "--local", str(tree))
    assert neither.returncode == 2
    assert "--app NAME or --all-apps" in neither.stderr
