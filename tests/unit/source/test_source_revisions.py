"""Revision selection over ls-remote output, and semver constraints (no git here)."""

from __future__ import annotations

import pytest
import semver

from gitmoor.model import UserInputError
from gitmoor.source import SemverConstraint, parse_ls_remote, parse_repo_url, select_commit

REPO = parse_repo_url("https://git.example.com/org/app.git")


def sha(n: int) -> str:
    return f"{n:040x}"


LS_REMOTE = "\n".join(
    [
        f"{sha(1)}\tHEAD",
        f"{sha(1)}\trefs/heads/main",
        f"{sha(2)}\trefs/heads/release-1.x",
        f"{sha(3)}\trefs/heads/1.x",
        f"{sha(10)}\trefs/tags/v1.0.0",
        f"{sha(11)}\trefs/tags/v1.2.0",
        f"{sha(12)}\trefs/tags/v1.2.7",
        f"{sha(99)}\trefs/tags/1.3.0",  # annotated: the tag object
        f"{sha(13)}\trefs/tags/1.3.0^{{}}",  # ... peeled to its commit
        f"{sha(14)}\trefs/tags/v1.4.0-rc.1",
        f"{sha(20)}\trefs/tags/v2.0.0",
        f"{sha(21)}\trefs/tags/v2.1",
        f"{sha(30)}\trefs/tags/not-a-version",
        f"{sha(40)}\trefs/pull/7/head",
        f"{sha(1)}\trefs/tags/main-old",
    ]
)
REFS = parse_ls_remote(LS_REMOTE)


def test_parse_ls_remote_peels_annotated_tags() -> None:
    assert REFS["refs/tags/1.3.0"] == sha(13)
    assert "refs/tags/1.3.0^{}" not in REFS
    assert REFS["HEAD"] == sha(1)


@pytest.mark.parametrize(
    "revision,commit,ref",
    [
        ("", sha(1), "HEAD"),
        ("HEAD", sha(1), "HEAD"),
        ("main", sha(1), "refs/heads/main"),
        ("v1.2.0", sha(11), "refs/tags/v1.2.0"),
        ("1.3.0", sha(13), "refs/tags/1.3.0"),
        ("refs/pull/7/head", sha(40), "refs/pull/7/head"),
        ("refs/tags/v2.0.0", sha(20), "refs/tags/v2.0.0"),
        # a branch whose name is also a valid constraint wins over the constraint
        ("1.x", sha(3), "refs/heads/1.x"),
        # a full SHA is taken as is, known or not
        (sha(77).upper(), sha(77), "commit"),
    ],
)
def test_select_refs(revision: str, commit: str, ref: str) -> None:
    found = select_commit(REFS, revision, REPO)
    assert (found.commit, found.ref) == (commit, ref)


@pytest.mark.parametrize(
    "constraint,tag",
    [
        (">=1.2.0 <2.0.0", "refs/tags/1.3.0"),
        (">=1.2.0, <1.3.0", "refs/tags/v1.2.7"),
        ("1.2.*", "refs/tags/v1.2.7"),
        ("1.2.x", "refs/tags/v1.2.7"),
        ("1.2", "refs/tags/v1.2.7"),
        ("~1.2", "refs/tags/v1.2.7"),
        ("~1.2.3", "refs/tags/v1.2.7"),
        ("~1", "refs/tags/1.3.0"),
        ("^1.2", "refs/tags/1.3.0"),
        ("^1", "refs/tags/1.3.0"),
        ("^2.0.0", "refs/tags/v2.1"),
        ("*", "refs/tags/v2.1"),
        ("1.0.0 - 1.2", "refs/tags/v1.2.7"),
        ("< 1.2", "refs/tags/v1.0.0"),
        ("!=2.1.0, >=2", "refs/tags/v2.0.0"),
        ("^0.1 || ~1.0", "refs/tags/v1.0.0"),
        ("v1.0.0", "refs/tags/v1.0.0"),
        ("=1.2.0", "refs/tags/v1.2.0"),
        ("1.2.0", "refs/tags/v1.2.0"),  # a bare version also finds the v-prefixed tag
        (">1.2", "refs/tags/v2.1"),
        ("<=1.2", "refs/tags/v1.2.7"),
        # prereleases only when the constraint names one
        (">=1.4.0-0 <1.5.0", "refs/tags/v1.4.0-rc.1"),
    ],
)
def test_semver_constraint_picks_highest_matching_tag(constraint: str, tag: str) -> None:
    found = select_commit(REFS, constraint, REPO)
    assert found.ref == tag
    assert found.commit == REFS[tag]


def test_prerelease_is_not_picked_by_a_plain_range() -> None:
    assert select_commit(REFS, ">=1.3.0 <2.0.0", REPO).ref == "refs/tags/1.3.0"


@pytest.mark.parametrize(
    "version,constraint,ok",
    [
        ("0.2.5", "^0.2.3", True),
        ("0.3.0", "^0.2.3", False),
        ("0.0.3", "^0.0.3", True),
        ("0.0.4", "^0.0.3", False),
        ("0.9.0", "^0.0", False),
        ("0.0.9", "^0.0", True),
        ("1.2.9", "~1.2.3", True),
        ("1.3.0", "~1.2.3", False),
        ("1.2.2", "~1.2.3", False),
        ("1.4.5", "1.2 - 1.4", True),
        ("1.5.0", "1.2 - 1.4", False),
        ("2.0.0", ">1.x", True),
        ("1.9.0", ">1.x", False),
    ],
)
def test_constraint_semantics(version: str, constraint: str, ok: bool) -> None:
    parsed = SemverConstraint.parse(constraint)
    assert parsed is not None
    assert parsed.matches(semver.Version.parse(version)) is ok


@pytest.mark.parametrize("text", ["main", "feature/x", "release-1.x", "v1.2-beta", ">=", "1.2.3.4"])
def test_not_a_constraint(text: str) -> None:
    assert SemverConstraint.parse(text) is None


@pytest.mark.parametrize(
    "revision,message",
    [
        ("nope", "no branch, tag or ref"),
        (">=3.0.0", "no tag satisfies"),
        ("abc1234", "full 40-character SHA"),
        ("refs/heads/gone", "no branch, tag or ref"),
    ],
)
def test_unknown_revision_names_repo_and_revision(revision: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message) as err:
        select_commit(REFS, revision, REPO)
    assert revision in str(err.value)
    assert "https://git.example.com/org/app.git" in str(err.value)


def test_empty_repository_has_no_head() -> None:
    with pytest.raises(UserInputError, match="HEAD"):
        select_commit({}, "HEAD", REPO)
