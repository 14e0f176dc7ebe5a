"""A broken commit fails the sync and the refresh with a message that names the
file (and line), and leaves the cluster exactly as it was: nothing of the commit
is applied, not even its valid parts, and nothing is pruned."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine.sync import Phase, SyncOptions
from support.apps import configmap, dump

if TYPE_CHECKING:
    from support.apps import AppEnv
    from support.gitrepo import GitRepo


@dataclass(frozen=True)
class Breakage:
    #: files of the broken commit (added to the good ones)
    files: dict[str, str]
    #: every one of these must appear in the error
    expect: tuple[str, ...]
    #: the app's path, when the breakage is in the spec rather than in git
    path: str = "."
    #: a symlink to make: (link in the repo, target)
    symlink: tuple[str, str] | None = None


BREAKAGES = {
    "broken-yaml": Breakage(
        {"broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: [unclosed\n"},
        ("broken.yaml:6:", "invalid YAML", "flow sequence"),
    ),
    "duplicate-key": Breakage(
        {
            "dup.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n"
            "data:\n  a: '1'\n  a: '2'\n"
        },
        ("dup.yaml:7", "duplicate key 'a'", "line 6"),
    ),
    "unknown-kind": Breakage(
        {
            "widget.yaml": dump(configmap("other"))
            + "---\napiVersion: nowhere.example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
        },
        ("widget.yaml:8", "unknown kind Widget", "nowhere.example.com/v1"),
    ),
    "path-escapes-repo": Breakage({}, ("../x", "escapes the repository"), path="../x"),
    "symlink-out-of-repo": Breakage(
        {}, ("passwd.yaml", "outside the repository"), symlink=("passwd.yaml", "/etc/passwd")
    ),
}


def _break(repo: GitRepo, b: Breakage) -> None:
    # The valid part of the broken commit changes an object: it must not be applied.
    files = {"good.yaml": dump(configmap("good", {"v": "2"})), **b.files}
    if b.symlink is not None:
        link, target = b.symlink
        os.symlink(target, repo.path / link)
    repo.commit(files, "broken")


@pytest.mark.parametrize("case", list(BREAKAGES))
async def test_broken_commit_fails_with_the_file_and_changes_nothing(
    env: AppEnv, case: str
) -> None:
    breakage = BREAKAGES[case]
    env.repo.commit(
        {"good.yaml": dump(configmap("good", {"v": "1"})), "old.yaml": dump(configmap("old"))}
    )
    await env.create("fragile")
    assert (await env.sync("fragile")).ok
    if breakage.path != ".":
        await env.kube.merge_patch(
            env.app_ref("fragile"), {"spec": {"source": {"path": breakage.path}}}
        )
    # old.yaml goes too: a sync with prune that went ahead would delete it.
    env.repo.commit(remove=("old.yaml",))
    _break(env.repo, breakage)
    before = await env.snapshot()

    result = await env.sync("fragile", SyncOptions(prune=True, timeout=60))

    assert result.phase is Phase.FAILED
    for text in breakage.expect:
        assert text in result.message, result.message
    assert result.resources == ()
    assert await env.snapshot() == before
    assert ((await env.get(env.cm("good"))) or {})["data"] == {"v": "1"}

    app, comparison = await env.refresh("fragile")

    assert comparison is None
    assert app.status["sync"]["status"] == "Unknown"
    (condition,) = app.status["conditions"]
    assert condition["type"] == "ComparisonError"
    for text in breakage.expect:
        assert text in condition["message"], condition["message"]
    assert app.status["operationState"]["phase"] == "Failed"
    assert await env.snapshot() == before
