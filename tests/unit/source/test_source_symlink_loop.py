"""A symlink loop in a repository ends the checkout in a sentence naming the link.

``Path.resolve`` raises ``RuntimeError`` for a loop before Python 3.13 (``OSError``
ELOOP after); either escaped the error classes and left the app in silent backoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.model import UserInputError

if TYPE_CHECKING:
    from gitmoor.source import GitCache
    from support.gitrepo import GitRepo


@pytest.mark.parametrize("links", [{"self": "self"}, {"a.yaml": "b.yaml", "b.yaml": "a.yaml"}])
def test_a_symlink_loop_is_refused_naming_the_link(
    repo: GitRepo, cache: GitCache, links: dict[str, str]
) -> None:
    for link, target in links.items():
        (repo.path / link).symlink_to(target)
    commit = repo.commit(message="loop")
    with pytest.raises(UserInputError, match="loops and never resolves") as err:
        cache.checkout(repo.url, commit)
    assert commit in str(err.value)
    assert any(f"'{link}'" in str(err.value) for link in links)
    assert "\n" not in str(err.value)
    assert not (cache.repo_dir(repo.url) / commit).exists()
