"""Whether a pushed ref may move a targetRevision, on plain strings (no git, no webhook).

The full table, through a parsed forge payload, is in
tests/unit/controller/test_webhook.py (``test_touches_revisions``); these are
the rules as the source layer states them, so that a caller other than the
webhook handler can rely on them.
"""

from __future__ import annotations

import pytest

from gitmoor.source import RefKind, revision_touched, split_ref


@pytest.mark.parametrize(
    "ref,expected",
    [
        ("refs/heads/main", ("branch", "main")),
        ("refs/heads/feature/x", ("branch", "feature/x")),
        ("refs/tags/v1.2.0", ("tag", "v1.2.0")),
        ("refs/notes/commits", None),
        ("refs/pull/1/head", None),
        ("main", None),
    ],
)
def test_split_ref(ref: str, expected: tuple[str, str] | None) -> None:
    assert split_ref(ref) == expected


@pytest.mark.parametrize(
    "target,kind,ref,default,expected",
    [
        # HEAD follows the default branch when the push names it, any branch otherwise.
        ("HEAD", "branch", "main", "main", True),
        ("  ", "branch", "main", "main", True),
        ("HEAD", "branch", "dev", "main", False),
        ("HEAD", "branch", "dev", "", True),
        ("HEAD", "tag", "v1.0.0", "", False),
        # A bare name is a branch or a tag; a qualified ref only of its own kind.
        ("release", "branch", "release", "main", True),
        ("release", "tag", "release", "main", True),
        ("refs/heads/release", "tag", "release", "main", False),
        ("refs/tags/v1.0.0", "tag", "v1.0.0", "main", True),
        ("refs/pull/1/head", "branch", "main", "main", False),
        # A constraint by a tag in range only, never by a branch.
        ("^1.2", "tag", "v1.2.5", "main", True),
        ("^1.2", "tag", "v2.0.0", "main", False),
        ("^1.2", "branch", "v1.2.5", "main", False),
        # A full commit SHA names one commit for ever.
        ("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "branch", "main", "main", False),
    ],
)
def test_revision_touched(
    target: str, kind: RefKind, ref: str, default: str, expected: bool
) -> None:
    assert revision_touched(target, kind, ref, default) is expected
