"""The working copy of `gitmoor promote` and `gitmoor bootstrap` refuses odd
repository contents with a sentence naming the path, never a traceback: a path
that runs through a file, and a file that is not text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.cli.promote_cmd import plan_promotion
from gitmoor.model import UserInputError
from gitmoor.source.push import open_branch

if TYPE_CHECKING:
    from pathlib import Path

    from support.gitrepo import GitRepo


def test_a_path_through_a_file_is_refused_naming_it(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit({"clusters": "not a directory\n"}, "a file where bootstrap wants a directory")

    with open_branch(repo.url, "main", cache_dir=tmp_path / "cache") as work:
        with pytest.raises(UserInputError, match="clusters is a file in the repository"):
            work.file("clusters/prod/kustomization.yaml")
        assert work.file("clusters").is_file()  # the file itself is fine


def test_a_kustomization_that_is_not_text_is_refused_naming_it(
    repo: GitRepo, tmp_path: Path
) -> None:
    repo.commit(
        {
            "apps/test/kustomization.yaml": "images:\n- name: nginx\n  newTag: '1.28'\n",
            "apps/prod/kustomization.yaml": "images:\n- name: nginx\n  newTag: '1.27'\n",
        },
        "two environments",
    )
    (repo.path / "apps/test/kustomization.yaml").write_bytes(b"images: \xff\xfe\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "binary")

    with (
        open_branch(repo.url, "main", cache_dir=tmp_path / "cache") as work,
        pytest.raises(UserInputError, match=r"apps/test/kustomization\.yaml is not UTF-8"),
    ):
        plan_promotion(work, "apps/test", "apps/prod", images=True, helm_keys=[], values_file="")
