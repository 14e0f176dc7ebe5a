"""`gitmoor promote`: image tags from test's path to prod's, as a commit pushed to
a real git server over HTTP with Basic auth (the stored credentials), which the
prod app then syncs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml

from gitmoor.settings.repos import add_repo
from gitmoor.source import RepoCredentials
from gitmoor.source.push import BranchMovedError, open_branch
from support.apps import deploy_ref, deployment, dump
from support.githttp import PASSWORD, USER
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.cli import Gitmoor
    from support.githttp import GitHTTPServer

TEST = "apps/guestbook/overlays/test"
PROD = "apps/guestbook/overlays/prod"
PROD_KUSTOMIZATION = """\
# prod: what runs for customers
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../base
images:
- name: nginx
  newTag: "1.27"  # the release in prod
"""


def _kustomization(**fields: object) -> str:
    return dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}
    )


@pytest.fixture
def served(git_server: GitHTTPServer) -> GitRepo:
    """A guestbook repository with test on nginx:1.28 and prod on nginx:1.27; pushes
    update its checked-out main (receive.denyCurrentBranch=updateInstead)."""
    repo = GitRepo(git_server.root / "guestbook")
    repo.git("config", "receive.denyCurrentBranch", "updateInstead")
    repo.commit(
        {
            "apps/guestbook/base/kustomization.yaml": _kustomization(resources=["deployment.yaml"]),
            "apps/guestbook/base/deployment.yaml": dump(deployment("guestbook")),
            f"{TEST}/kustomization.yaml": _kustomization(
                resources=["../../base"], images=[{"name": "nginx", "newTag": "1.28"}]
            ),
            f"{PROD}/kustomization.yaml": PROD_KUSTOMIZATION,
        },
        "guestbook in test and prod",
    )
    return repo


@pytest.fixture
async def prod_app(
    env: AppEnv, kube: KubeClient, git_server: GitHTTPServer, served: GitRepo
) -> str:
    """The prod Application over the served repository, its credentials stored."""
    await add_repo(
        kube,
        f"http://127.0.0.1:{git_server.port}",
        username=USER,
        password=PASSWORD,
        namespace=env.apps_namespace,
    )
    source = {"repoURL": git_server.url("guestbook"), "path": PROD, "targetRevision": "main"}
    await env.create("guestbook-prod", spec={"source": source})
    return "guestbook-prod"


def _image(obj: dict[str, object] | None) -> str:
    assert obj is not None
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])  # type: ignore[index]


async def test_promote_commits_test_tag_and_prod_syncs_it(
    env: AppEnv, gitmoor: Gitmoor, served: GitRepo, prod_app: str
) -> None:
    assert (await env.sync(prod_app)).ok
    assert _image(await env.get(deploy_ref(env.namespace, "guestbook"))) == "nginx:1.27"
    source_commit = served.rev("main")

    done = gitmoor("promote", "--from", TEST, "--to", PROD, "--push")

    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    head = served.rev("main")
    assert served.git("rev-parse", f"{head}^") == source_commit
    assert served.git("log", "-1", "--format=%an <%ae>") == "gitmoor <gitmoor@localhost>"
    message = served.git("log", "-1", "--format=%B")
    assert TEST in message and PROD in message and source_commit in message
    # Only the tag's line changed: the comments and the order stay.
    after = (served.path / PROD / "kustomization.yaml").read_text()
    assert after == PROD_KUSTOMIZATION.replace('newTag: "1.27"', "newTag: '1.28'")

    result = await env.sync(prod_app)
    assert result.ok and result.revision == head
    assert _image(await env.get(deploy_ref(env.namespace, "guestbook"))) == "nginx:1.28"

    again = gitmoor("promote", "--from", TEST, "--to", PROD, "--push")
    assert again.returncode == 0, again.stderr
    assert "nothing to promote" in again.stdout
    assert served.rev("main") == head


async def test_dry_run_prints_the_diff_and_writes_nothing(
    gitmoor: Gitmoor, served: GitRepo, prod_app: str
) -> None:
    before = served.rev("main")

    done = gitmoor("promote", "--from", TEST, "--to", PROD, "--dry-run")

    assert done.returncode == 0, done.stderr
    assert f"--- a/{PROD}/kustomization.yaml" in done.stdout
    assert '-  newTag: "1.27"  # the release in prod' in done.stdout
    assert "+  newTag: '1.28'  # the release in prod" in done.stdout
    assert served.rev("main") == before
    assert served.git("branch", "--list") == "* main"


async def test_branch_pushes_a_new_branch_and_leaves_main(
    gitmoor: Gitmoor, served: GitRepo, prod_app: str
) -> None:
    before = served.rev("main")

    done = gitmoor("promote", "--from", TEST, "--to", PROD, "--branch", "promote/prod-1.28")

    assert done.returncode == 0, done.stderr
    assert served.rev("main") == before
    pushed = served.git("show", f"promote/prod-1.28:{PROD}/kustomization.yaml")
    assert yaml.safe_load(pushed)["images"] == [{"name": "nginx", "newTag": "1.28"}]
    # The same branch again would replace someone's pull request: refused.
    again = gitmoor("promote", "--from", TEST, "--to", PROD, "--branch", "promote/prod-1.28")
    assert again.returncode == 2
    assert "moved since gitmoor read it" in again.stderr


async def test_a_branch_moved_since_it_was_read_is_refused(
    git_server: GitHTTPServer, served: GitRepo, tmp_path: Path
) -> None:
    """Read, edit, and before the push someone else pushes: the lease refuses it
    (the command runs these same steps; a subprocess cannot be paused between them)."""
    from gitmoor.cli.promote_cmd import plan_promotion

    creds = RepoCredentials(f"http://127.0.0.1:{git_server.port}", USER, PASSWORD)
    read = served.rev("main")
    with open_branch(git_server.url("guestbook"), "main", creds, cache_dir=tmp_path) as work:
        edits = plan_promotion(work, TEST, PROD, images=True, helm_keys=[], values_file="")
        for e in edits:
            work.file(e.path).write_text(e.after)
        theirs = served.commit({"README.md": "someone else's change\n"}, "meanwhile")

        with pytest.raises(BranchMovedError) as refused:
            work.commit_and_push("promote")

    assert (
        f"the branch main moved since gitmoor read it (was {read[:12]}, now {theirs[:12]}); "
        "run again"
    ) in str(refused.value)
    assert served.rev("main") == theirs
    assert PASSWORD not in str(refused.value)
