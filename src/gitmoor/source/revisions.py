"""Revision resolution: an Application's ``targetRevision`` to one full commit SHA.

Follows Argo CD's repo-server (``git.nativeGitClient.LsRemote``): one
``git ls-remote`` of the repository, matched in Python, so that the revision
text never reaches git as an argument. In order:

1. empty or ``HEAD``: the remote's ``HEAD``;
2. a full commit SHA (40 hex, or 64 for SHA-256 repositories): taken as is,
   without asking the server (checkout will say if it does not exist);
3. a ref: ``refs/…`` exactly, else branch ``refs/heads/<rev>``, else tag
   ``refs/tags/<rev>`` (Argo CD also prefers the branch, as ``git checkout``
   does); annotated tags are peeled to their commit with the ``^{}`` entries;
4. a semver constraint (``>=1.2.0 <2.0.0``, ``1.2.*``, ``~1.2``, ``^1.2``,
   ``1.0 - 1.4``, ``^1 || ^2``): the highest tag, ``v`` prefix optional, that
   satisfies it. Existing refs win over constraints: Argo CD tries the
   constraint first, which hides a branch named ``1.x`` behind it.

Constraints follow Masterminds/semver, which Flux's source-controller and Helm
use: partial versions are ranges (``1.2`` is ``>=1.2.0 <1.3.0``), ``~`` pins the
minor, ``^`` the left-most non-zero part, and prerelease tags are candidates
only when the constraint itself names a prerelease.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import semver

from gitmoor.model import UserInputError
from gitmoor.source.creds import git_auth
from gitmoor.source.urls import validate_revision

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gitmoor.source.creds import RepoCredentials
    from gitmoor.source.git import Git
    from gitmoor.source.urls import RepoURL

log = logging.getLogger(__name__)

_FULL_SHA = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
_SHORT_SHA = re.compile(r"^[0-9a-fA-F]{4,39}$")
_PEELED = "^{}"


def is_full_sha(text: str) -> bool:
    return bool(_FULL_SHA.match(text))


def parse_ls_remote(output: str) -> dict[str, str]:
    """Ref name to commit SHA; annotated tags replaced by the commit they point to."""
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        sha, name = sha.strip(), name.strip()
        if not is_full_sha(sha) or not name:
            continue
        if name.endswith(_PEELED):
            peeled[name[: -len(_PEELED)]] = sha.lower()
        else:
            refs[name] = sha.lower()
    refs.update(peeled)
    return refs


def ls_remote(git: Git, repo: RepoURL, creds: RepoCredentials | None) -> dict[str, str]:
    """Every ref of the remote and its commit: one round trip, no local repository."""
    with git_auth(repo, creds) as auth:
        out = git.run(
            ["ls-remote", "--", repo.raw], repo=repo, auth=auth, action="list the refs of"
        )
    return parse_ls_remote(out.stdout)


def resolve_revision(
    git: Git, repo: RepoURL, revision: str, creds: RepoCredentials | None
) -> Resolution:
    """The commit ``revision`` names in ``repo``; a full SHA costs no round trip."""
    rev = validate_revision(revision, repo)
    if is_full_sha(rev):
        return Resolution(rev.lower(), "commit")
    return select_commit(ls_remote(git, repo, creds), rev, repo)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The commit a revision stands for, and how it was found (for logs and messages)."""

    commit: str
    ref: str

    @property
    def tag(self) -> str | None:
        """The tag's short name when the revision was a tag or a semver constraint
        (the tag chosen), else None: what ``gitmoor.io/version`` records, as Flux
        reports the tag a semver range picked in its artifact revision."""
        prefix = "refs/tags/"
        return self.ref[len(prefix) :] if self.ref.startswith(prefix) else None


def select_commit(refs: Mapping[str, str], revision: str, repo: RepoURL) -> Resolution:
    """Pick the commit for ``revision`` among ``refs`` (see the module docstring for the order)."""
    url = repo.redacted
    rev = validate_revision(revision, repo) or "HEAD"
    if rev == "HEAD":
        if "HEAD" not in refs:
            raise UserInputError(
                f"revision 'HEAD' not found in {url}: the repository has no default branch",
                concerns=url,
            )
        return Resolution(refs["HEAD"], "HEAD")
    if is_full_sha(rev):
        return Resolution(rev.lower(), "commit")
    candidates = [rev] if rev.startswith("refs/") else [f"refs/heads/{rev}", f"refs/tags/{rev}"]
    for name in candidates:
        if name in refs:
            return Resolution(refs[name], name)
    constraint = SemverConstraint.parse(rev)
    if constraint is not None:
        best = constraint.highest_tag(refs)
        if best is None:
            raise UserInputError(
                f"revision {rev!r} not found in {url}: no tag satisfies the semver constraint",
                concerns=url,
            )
        return Resolution(refs[best], best)
    if _SHORT_SHA.match(rev):
        raise UserInputError(
            f"revision {rev!r} not found in {url}: abbreviated commit SHAs cannot be "
            "resolved remotely, give the full 40-character SHA",
            concerns=url,
        )
    raise UserInputError(
        f"revision {rev!r} not found in {url}: no branch, tag or ref of that name",
        concerns=url,
    )


# --- semver constraints ------------------------------------------------------------

_TERM = re.compile(r"^(?P<op>>=|=>|<=|=<|!=|==|~>|>|<|=|~|\^)?(?P<ver>[^\s]+)$")
_PARTIAL = re.compile(
    r"^[vV]?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
_OP_SPACE = re.compile(r"(>=|=>|<=|=<|!=|==|~>|>|<|=|~|\^)\s+")
_HYPHEN = re.compile(r"(\S+)\s+-\s+(\S+)")
_TAG_VERSION = re.compile(
    r"^[vV]?(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)


@dataclass(frozen=True, slots=True)
class _Partial:
    """``1``, ``1.2``, ``1.2.x`` or ``1.2.3-rc.1``: the parts given before any wildcard."""

    major: int | None
    minor: int | None
    patch: int | None
    pre: str | None

    @property
    def lower(self) -> semver.Version:
        return semver.Version(self.major or 0, self.minor or 0, self.patch or 0, self.pre)

    @property
    def upper(self) -> semver.Version | None:
        """The first version after the range a partial stands for (None if complete)."""
        if self.major is None:
            return None
        if self.minor is None:
            return semver.Version(self.major + 1, 0, 0)
        if self.patch is None:
            return semver.Version(self.major, self.minor + 1, 0)
        return None

    @property
    def complete(self) -> bool:
        return self.patch is not None


def _parse_partial(text: str) -> _Partial | None:
    m = _PARTIAL.match(text)
    if not m:
        return None
    parts: list[int | None] = []
    wild = False
    for key in ("major", "minor", "patch"):
        value = m.group(key)
        if value is None or value in ("x", "X", "*"):
            wild = True
        parts.append(None if wild or value is None else int(value))
    pre = m.group("pre")
    if pre is not None and parts[2] is None:
        return None  # "1.2-rc.1" names no version
    try:
        if pre is not None:
            semver.Version(0, 0, 0, pre)
    except ValueError:
        return None
    return _Partial(parts[0], parts[1], parts[2], pre)


def _any(_: semver.Version) -> bool:
    return True


def _none(_: semver.Version) -> bool:
    return False


def _between(lo: semver.Version, hi: semver.Version | None) -> Callable[[semver.Version], bool]:
    """``lo <= v < hi`` (``hi`` None: no upper bound)."""
    return lambda v: v >= lo and (hi is None or v < hi)


def _term(op: str, p: _Partial) -> list[Callable[[semver.Version], bool]]:
    """The predicates one ``<op><version>`` term stands for."""
    lo, hi = p.lower, p.upper
    if op in ("", "=", "=="):
        if p.major is None:
            return [_any]
        return [lambda v: v == lo] if p.complete else [_between(lo, hi)]
    if op == "!=":
        if p.major is None:
            return [_none]
        inside = (lambda v: v == lo) if p.complete else _between(lo, hi)
        return [lambda v: not inside(v)]
    if op in (">=", "=>"):
        return [lambda v: v >= lo]
    if op == ">":
        if p.major is None:
            return [_none]
        return [lambda v: v > lo] if p.complete else [lambda v: hi is not None and v >= hi]
    if op == "<":
        return [_none] if p.major is None else [lambda v: v < lo]
    if op in ("<=", "=<"):
        if p.major is None:
            return [_any]
        return [lambda v: v <= lo] if p.complete else [lambda v: hi is not None and v < hi]
    if op in ("~", "~>"):
        if p.major is None:
            return [_any]
        if p.minor is None:
            return [_between(lo, semver.Version(p.major + 1, 0, 0))]
        return [_between(lo, semver.Version(p.major, p.minor + 1, 0))]
    if op == "^":
        if p.major is None:
            return [_any]
        if p.major > 0 or p.minor is None:
            top = semver.Version(p.major + 1, 0, 0)
        elif p.minor > 0 or p.patch is None:
            top = semver.Version(0, p.minor + 1, 0)
        else:
            top = semver.Version(0, 0, p.patch + 1)
        return [_between(lo, top)]
    raise AssertionError(op)


@dataclass(frozen=True, slots=True)
class _Group:
    """Terms that must all hold (``>=1.2 <2``), one side of ``||``."""

    predicates: tuple[Callable[[semver.Version], bool], ...]
    allows_prerelease: bool

    def matches(self, v: semver.Version) -> bool:
        if v.prerelease and not self.allows_prerelease:
            return False
        return all(p(v) for p in self.predicates)


@dataclass(frozen=True, slots=True)
class SemverConstraint:
    """A parsed constraint: groups joined by ``||``."""

    text: str
    groups: tuple[_Group, ...]

    @classmethod
    def parse(cls, text: str) -> SemverConstraint | None:
        """The constraint ``text`` stands for, or None if it is not one (e.g. ``main``)."""
        groups: list[_Group] = []
        for raw in text.split("||"):
            group = _parse_group(raw)
            if group is None:
                return None
            groups.append(group)
        return cls(text, tuple(groups)) if groups else None

    def matches(self, version: semver.Version) -> bool:
        return any(g.matches(version) for g in self.groups)

    def highest_tag(self, refs: Mapping[str, str]) -> str | None:
        """The ``refs/tags/…`` name of the highest matching version, or None."""
        best: tuple[semver.Version, str] | None = None
        for name in refs:
            if not name.startswith("refs/tags/"):
                continue
            version = tag_version(name[len("refs/tags/") :])
            if version is None or not self.matches(version):
                continue
            # Ties (v1.2.0 and 1.2.0) break on the name so the pick is stable.
            if best is None or version > best[0] or (version == best[0] and name > best[1]):
                best = (version, name)
        return best[1] if best else None

    def __str__(self) -> str:
        return self.text


def _parse_group(raw: str) -> _Group | None:
    text = _OP_SPACE.sub(r"\1", raw.strip())
    predicates: list[Callable[[semver.Version], bool]] = []
    prerelease = False
    for lo_text, hi_text in _HYPHEN.findall(text):
        lo, hi = _parse_partial(lo_text), _parse_partial(hi_text)
        if lo is None or hi is None:
            return None
        predicates += _term(">=", lo) + _term("<=", hi)
        prerelease = prerelease or bool(lo.pre or hi.pre)
    text = _HYPHEN.sub(" ", text)
    for token in text.replace(",", " ").split():
        m = _TERM.match(token)
        partial = _parse_partial(m.group("ver")) if m else None
        if m is None or partial is None:
            return None
        predicates += _term(m.group("op") or "", partial)
        prerelease = prerelease or bool(partial.pre)
    if not predicates:
        return None
    return _Group(tuple(predicates), prerelease)


def tag_version(tag: str) -> semver.Version | None:
    """The version a tag names (``v1.2.3``, ``1.2``, ``v2``), or None.

    Partial tags are read as Masterminds' ``NewVersion`` reads them: ``v1.2`` is 1.2.0.
    """
    m = _TAG_VERSION.match(tag)
    if not m:
        return None
    try:
        return semver.Version(
            int(m.group("major")),
            int(m.group("minor") or 0),
            int(m.group("patch") or 0),
            m.group("pre"),
            m.group("build"),
        )
    except ValueError:
        return None
