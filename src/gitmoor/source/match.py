"""Whether a pushed ref may move what an Application's ``targetRevision`` resolves to.

The other half of :mod:`gitmoor.source.revisions`: resolution turns a
``targetRevision`` into one commit with a ``git ls-remote``; this module
answers, from the pushed ref alone and without any git request, whether a
push of that ref can change the answer. The webhook handler
(:mod:`gitmoor.controller.webhook`) uses it to refresh only the apps a push
may affect, after Argo CD's ``sourceRevisionHasChanged`` and
``compareRevisions`` (``util/webhook/webhook.go``):

- ``HEAD`` (or empty) is touched by a push to the default branch when the
  payload names it (GitHub, GitLab, Gitea) and by a push to any branch when
  it does not (Bitbucket; Argo CD sets ``touchedHead`` to true there too);
- a branch or tag name by a push of that name (``refs/heads/x`` and
  ``refs/tags/x`` only by that kind);
- a semver constraint by a push of a tag whose version satisfies it (a tag
  outside the range cannot change what the constraint selects);
- a full commit SHA never.

It lives here rather than in the controller because what a revision can name
(a ref, a bare branch-or-tag name, a constraint, a commit) is the resolver's
rule: both must read ``targetRevision`` the same way.
"""

from __future__ import annotations

from typing import Literal

from gitmoor.source.revisions import SemverConstraint, is_full_sha, tag_version

RefKind = Literal["branch", "tag"]


def split_ref(ref: str) -> tuple[RefKind, str] | None:
    """``refs/heads/x`` as ``("branch", "x")``, ``refs/tags/x`` as ``("tag", "x")``; else None."""
    if ref.startswith("refs/heads/"):
        return "branch", ref[len("refs/heads/") :]
    if ref.startswith("refs/tags/"):
        return "tag", ref[len("refs/tags/") :]
    return None


def revision_touched(
    target_revision: str, ref_kind: RefKind, ref: str, default_branch: str
) -> bool:
    """Whether a push of ``ref`` (of ``ref_kind``) may change what ``target_revision`` selects.

    ``default_branch`` is ``""`` when the push does not say which branch is
    the default (see the module docstring).
    """
    rev = target_revision.strip() or "HEAD"
    if rev == "HEAD":
        if ref_kind != "branch":
            return False
        return not default_branch or ref == default_branch
    if is_full_sha(rev):
        return False
    split = split_ref(rev)
    if split is not None:
        return split == (ref_kind, ref)
    if rev.startswith("refs/"):
        return False
    # A bare name is looked up as a branch, then as a tag (source.revisions):
    # a push of either kind with that name may change it.
    if rev == ref:
        return True
    if ref_kind != "tag":
        return False
    constraint = SemverConstraint.parse(rev)
    version = tag_version(ref)
    return constraint is not None and version is not None and constraint.matches(version)
