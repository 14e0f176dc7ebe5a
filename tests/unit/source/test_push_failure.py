"""A failed push's error never carries a credential, whichever stream git used."""

from __future__ import annotations

import pytest

from gitmoor.source import check_branch_name, parse_repo_url
from gitmoor.source.git import GitOutput
from gitmoor.source.push import push_error

TOKEN = "ghp_s3cr3tT0ken"


def test_a_push_refused_on_stdout_only_is_scrubbed() -> None:
    # `git push --porcelain` reports a refused ref on stdout, with the server's
    # own reason; when stderr says nothing (a push cut off before its "Done"),
    # that report is the message.
    out = GitOutput(
        1,
        "To https://git.example.com/org/repo\n"
        f"!\trefs/heads/main:refs/heads/main\t[remote rejected] (token {TOKEN} expired)\n",
        "",
    )
    err = push_error(out, parse_repo_url("https://git.example.com/org/repo"), (TOKEN,))
    assert TOKEN not in str(err)
    assert "***" in str(err)


@pytest.mark.parametrize("name", ["main", "promote/prod-1.28", "release-2.x"])
def test_git_accepts_these_branch_names(name: str) -> None:
    assert check_branch_name(name, option="--branch") == name


@pytest.mark.parametrize(
    "name", ["", "two words", "-x", "a..b", "@{-1}", "HEAD", "x.lock", "a~1", "a:b", "feat/"]
)
def test_git_refuses_these_branch_names(name: str) -> None:
    from gitmoor.model import UserInputError

    with pytest.raises(UserInputError, match=r"--branch .* is not a valid git branch name"):
        check_branch_name(name, option="--branch")
