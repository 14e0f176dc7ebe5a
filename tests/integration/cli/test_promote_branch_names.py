"""`gitmoor promote` and `gitmoor bootstrap` refuse a branch git would refuse, and
`promote --branch` refuses the branch it reads, before anything is written."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from support.cli import Gitmoor

KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"


@pytest.fixture
def envs(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "envs")
    repo.commit(
        {
            "test/kustomization.yaml": KUSTOMIZATION + "images:\n- name: nginx\n  newTag: '2'\n",
            "prod/kustomization.yaml": KUSTOMIZATION + "images:\n- name: nginx\n  newTag: '1'\n",
        }
    )
    return repo


def test_branch_naming_the_branch_read_is_refused_and_nothing_is_pushed(
    gitmoor: Gitmoor, envs: GitRepo
) -> None:
    before = envs.rev("main")
    done = gitmoor(
        "promote", "--from", "test", "--to", "prod", "--repo", envs.url, "--revision", "main",
        "--branch", "main",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--branch main is the branch read (main)" in done.stderr
    assert "use --push" in done.stderr
    assert envs.rev("main") == before


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--branch", "promote to prod"), ("--branch", "x.lock"), ("--revision", "main..dev")],
)
def test_promote_refuses_a_name_git_refuses(
    gitmoor: Gitmoor, envs: GitRepo, flag: str, value: str
) -> None:
    args = ["promote", "--from", "test", "--to", "prod", "--repo", envs.url, "--dry-run"]
    done = gitmoor(*args, flag, value)
    assert done.returncode != 0
    assert f"{flag} {value!r} is not a valid git branch name" in done.stderr
    assert "Traceback" not in done.stderr


def test_bootstrap_refuses_a_branch_git_refuses(gitmoor: Gitmoor, envs: GitRepo) -> None:
    done = gitmoor(
        "bootstrap", "--repo", envs.url, "--path", "clusters/one", "--branch", "@{-1}",
        "--dry-run",
    )  # fmt: skip
    assert done.returncode != 0
    assert "--branch '@{-1}' is not a valid git branch name" in done.stderr
