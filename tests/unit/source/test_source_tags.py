"""resolve_tagged(): the commit and, for a tag or semver target, the tag it chose
(what ``gitmoor.io/version`` records), against real repositories."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.source.revisions import Resolution

if TYPE_CHECKING:
    from gitmoor.source import GitCache
    from support.gitrepo import GitRepo


def test_tag_and_semver_targets_name_their_tag(repo: GitRepo, cache: GitCache) -> None:
    commits = {}
    for version in ("v1.0.0", "v1.2.0", "v2.0.0"):
        commits[version] = repo.commit({"VERSION": version})
        repo.tag(version, annotated=version == "v1.2.0")

    assert cache.resolve_tagged(repo.url, "v1.0.0") == (commits["v1.0.0"], "v1.0.0")
    # An annotated tag: the commit it points to, and its name.
    assert cache.resolve_tagged(repo.url, "v1.2.0") == (commits["v1.2.0"], "v1.2.0")
    assert cache.resolve_tagged(repo.url, "refs/tags/v1.2.0") == (commits["v1.2.0"], "v1.2.0")
    # A range: the tag it chose.
    assert cache.resolve_tagged(repo.url, "^1") == (commits["v1.2.0"], "v1.2.0")
    assert cache.resolve_tagged(repo.url, ">=2.0.0") == (commits["v2.0.0"], "v2.0.0")


def test_branch_head_and_commit_targets_have_no_tag(repo: GitRepo, cache: GitCache) -> None:
    head = repo.commit({"a.txt": "a"})
    repo.tag("v1.0.0")  # the same commit is tagged, but the target is not the tag

    assert cache.resolve_tagged(repo.url, "main") == (head, None)
    assert cache.resolve_tagged(repo.url, "HEAD") == (head, None)
    assert cache.resolve_tagged(repo.url, head) == (head, None)
    # resolve() still answers the commit alone, for its existing callers.
    assert cache.resolve(repo.url, "v1.0.0") == head


def test_resolution_tag_is_the_short_name_of_a_tag_ref_only() -> None:
    assert Resolution("a" * 40, "refs/tags/release/2024-01").tag == "release/2024-01"
    assert Resolution("a" * 40, "refs/heads/v1.0.0").tag is None
    assert Resolution("a" * 40, "HEAD").tag is None
    assert Resolution("a" * 40, "commit").tag is None
