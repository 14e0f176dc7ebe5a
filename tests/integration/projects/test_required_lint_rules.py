"""A project's ``requiredLintRules``: the same check before and after the merge.

``gitmoor lint --required-rule`` flags in the working tree what the engine then
refuses at sync time (an ``InvalidSpecError`` condition naming the rule, the
object and its file, nothing applied); fixing the object clears both. An
object's ``gitmoor.io/lint-ignore`` annotation silences the rule for a plain
``gitmoor lint`` but waives neither the required check nor the engine's."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gitmoor.crds import appproject_crd
from gitmoor.kube import wait_for
from gitmoor.model import GitmoorError
from gitmoor.model.project import AppProject, ProjectDestination
from gitmoor.settings import create_project, get_project
from support.apps import deploy_ref, deployment, dump

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.cli import Gitmoor

PROJECT = "linted"


async def _create(kube: KubeClient, project: AppProject) -> None:
    """Create ``project``, or make sure it still reads back whole.

    The control plane is shared with other checkouts, and a test session of one
    that predates ``requiredLintRules`` installs its older AppProject CRD, whose
    structural schema prunes the field on write and on read: apply this
    checkout's CRD and write the project again until it reads back whole (called
    before each sync, to keep that window small)."""

    async def whole() -> bool:
        await kube.apply(appproject_crd(), force=True)
        try:
            await create_project(kube, project, upsert=True)
        except GitmoorError as err:
            # an older CRD refuses the field outright (server-side apply)
            assert "field not declared in schema" in str(err), err
            return False
        stored = await get_project(kube, project.name, project.namespace)
        return stored is not None and stored.required_lint_rules == project.required_lint_rules

    await wait_for(whole, within=30, interval=0.5, what="an AppProject CRD with requiredLintRules")


def _deployment(image: str) -> dict[str, Any]:
    obj = deployment("web", image=image)
    obj["metadata"]["annotations"] = {"gitmoor.io/lint-ignore": "image-tag"}
    return obj


async def test_a_required_rule_flagged_by_lint_is_refused_at_sync(
    env: AppEnv, kube: KubeClient, gitmoor: Gitmoor
) -> None:
    project = AppProject(
        name=PROJECT,
        namespace=env.apps_namespace,
        source_repos=(env.repo.url,),
        destinations=(ProjectDestination(namespace=env.namespace),),
        required_lint_rules=("image-tag",),
    )
    await _create(kube, project)
    env.repo.commit({"web.yaml": dump(_deployment("nginx:latest"))})
    await env.create("web", spec={"project": PROJECT})
    tree = str(env.repo.path)

    # Before the merge: plain lint honours the annotation; the required rule does not.
    assert gitmoor("lint", tree).returncode == 0
    flagged = gitmoor("lint", "--required-rule", "image-tag", "-o", "json", tree)
    assert flagged.returncode == 1, flagged.stdout + flagged.stderr
    errors = [f for f in json.loads(flagged.stdout)["findings"] if f["severity"] == "error"]
    assert [(f["rule"], f["file"], f["line"], f["object"]) for f in errors] == [
        ("GM102", "web.yaml", 19, "Deployment.apps web")
    ]

    # After the merge: the engine refuses the render, naming rule, object and file.
    await _create(kube, project)
    result = await env.sync("web")
    assert result.phase.value == "Failed"
    assert "GM102 (image-tag)" in result.message, result.message
    assert f"Deployment.apps {env.namespace}/web (from web.yaml:1)" in result.message
    assert "'nginx:latest'" in result.message
    conditions = (await env.app("web")).status.get("conditions") or []
    assert [c["type"] for c in conditions] == ["InvalidSpecError"]
    assert "GM102" in conditions[0]["message"]
    assert await kube.get(deploy_ref(env.namespace, "web")) is None

    # The fix: a pinned image passes both.
    env.repo.commit({"web.yaml": dump(_deployment("nginx:1.27"))})
    clean = gitmoor("lint", "--required-rule", "GM102", "-o", "json", tree)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not [f for f in json.loads(clean.stdout)["findings"] if f["rule"] == "GM102"]
    synced = await env.sync("web")
    assert synced.ok, synced.message
    assert await kube.get(deploy_ref(env.namespace, "web")) is not None
    assert not (await env.app("web")).status.get("conditions")


async def test_proj_create_requires_lint_rules_by_id_or_slug(
    gitmoor: Gitmoor, env: AppEnv, kube: KubeClient
) -> None:
    async def made() -> bool:
        # The CRD race of ``_create``: the same command again until the field is kept.
        await kube.apply(appproject_crd(), force=True)
        done = gitmoor(
            "proj",
            "create",
            PROJECT,
            "--upsert",
            "--src",
            "*",
            "--require-lint-rule",
            "image-tag",
            "--require-lint-rule",
            "GM104",
        )
        if done.returncode != 0:
            # an older CRD refuses the field outright (server-side apply)
            assert "requiredLintRules: field not declared in schema" in done.stderr, done.stderr
            return False
        project = await get_project(kube, PROJECT, env.apps_namespace)
        shown = gitmoor("proj", "get", PROJECT).stdout
        return (
            project is not None
            and project.required_lint_rules == ("GM102", "GM104")
            and "Lint rules:    GM102, GM104" in shown
        )

    await wait_for(made, within=30, interval=0.5, what="the project with its lint rules")
    typo = gitmoor("proj", "create", "other", "--require-lint-rule", "image-tags")
    assert typo.returncode == 2
    assert "'image-tags' is not a gitmoor lint policy rule" in typo.stderr
