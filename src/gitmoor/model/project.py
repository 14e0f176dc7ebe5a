"""AppProject: the repositories, destinations and kinds an Application may use.

``appprojects.gitmoor.io/v1alpha1`` (``gitmoor/crds/appprojects.yaml``) keeps
Argo CD's field names, so its users recognise them, and the matching below
follows Argo CD's code (``pkg/apis/application/v1alpha1/app_project_types.go``
and ``types.go``: ``IsSourcePermitted``, ``isDestinationMatched``,
``IsGroupKindPermitted``, ``isResourceInList``; ``util/settings``'
``DeriveServiceAccountToImpersonate``) rather than its prose, including its
corners:

- **Globs.** Repositories, clusters and namespaces use ``github.com/gobwas/glob``
  syntax (``*``, ``**``, ``?``, ``[a-z]``, ``[!x]``, ``{a,b}``, ``\\`` escapes).
  Repository URLs are matched with ``/`` as the separator, so ``*`` stays inside
  one path segment and ``**`` crosses segments; a lone ``*`` matches every URL.
  Group and kind patterns use Go's ``filepath.Match`` (``[^x]`` negates there),
  as ``isResourceInList`` does. A pattern that does not compile matches nothing
  (Argo CD logs it and answers false).
- **Deny entries** start with ``!``. A deny entry that does not match the value
  counts as a match, exactly as Argo CD's ``globMatch(..., allowNegation)``: so
  ``sourceRepos: ["!https://git.example.com/secret/*"]`` alone already permits
  every other repository, and a deny entry that matches refuses, whatever else
  the list allows.
- **Kinds.** Cluster-scoped kinds are refused unless ``clusterResourceWhitelist``
  names them; namespaced kinds are allowed unless ``namespaceResourceBlacklist``
  names them or a ``namespaceResourceWhitelist`` is set and does not (an empty
  whitelist, ``[]``, allows no namespaced kind; an absent one allows all).

- **Sync windows** (``spec.syncWindows``) are parsed and validated here as
  Argo CD's ``SyncWindow.Validate`` does (kind, a five-field cron, a Go
  duration), each error naming its field (``spec.syncWindows[1].schedule: bad
  cron ...``); when they are open, and what they allow, is
  :mod:`gitmoor.engine.windows`.

Pure functions on plain data: URL normalisation is the caller's (``model`` does
not import ``source``), so :meth:`AppProject.source_allowed` takes a normalised
URL and a normaliser for the patterns.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from gitmoor.model.errors import UserInputError
from gitmoor.model.redaction import Decryption, RedactRule, parse_decryption, parse_redactions

if TYPE_CHECKING:
    from collections.abc import Callable

GROUP = "gitmoor.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "AppProject"
PLURAL = "appprojects"
DEFAULT_PROJECT = "default"
#: the name of the cluster gitmoor runs against (Argo CD's name for it)
IN_CLUSTER = "in-cluster"
#: the server Argo CD gives that cluster; a project's ``server: https://kubernetes.default.svc`` means it
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
#: characters Argo CD refuses in a destinationServiceAccounts defaultServiceAccount
_SA_DISALLOWED = set("!*[]{}\\/")


class ProjectViolation(UserInputError):
    """An Application asks for what its project does not permit (or names no
    project). Shown as an ``InvalidSpecError`` condition, Argo CD's type for it."""


# ---------------------------------------------------------------- globs


class _BadPattern(ValueError):
    pass


@functools.lru_cache(maxsize=2048)
def _compile_glob(pattern: str, separators: str) -> re.Pattern[str] | None:
    """gobwas/glob's syntax as a regular expression; None when it does not compile."""
    try:
        return re.compile(r"\A(?:" + _GlobParser(pattern, separators).parse() + r")\Z", re.DOTALL)
    except (_BadPattern, re.error):
        return None


class _GlobParser:
    """A recursive-descent reading of gobwas/glob's lexer (``lexer.go``): ``,`` and
    ``}`` are special only inside ``{...}``; a class is either one ``lo-hi``
    range or a list of characters, optionally negated with ``!``."""

    def __init__(self, pattern: str, separators: str) -> None:
        self.p = pattern
        self.i = 0
        self.single = f"[^{re.escape(separators)}]" if separators else "."

    def parse(self) -> str:
        out = self._sequence(in_terms=False)
        if self.i != len(self.p):  # pragma: no cover - the top level consumes everything
            raise _BadPattern(self.p)
        return out

    def _sequence(self, *, in_terms: bool) -> str:
        out: list[str] = []
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if in_terms and c in ",}":
                break
            if c == "*":
                if p.startswith("**", self.i):
                    out.append(".*")
                    self.i += 2
                else:
                    out.append(self.single + "*")
                    self.i += 1
            elif c == "?":
                out.append(self.single)
                self.i += 1
            elif c == "[":
                out.append(self._char_class())
            elif c == "{":
                out.append(self._alternatives())
            elif c == "\\":
                self.i += 1
                if self.i < len(p):  # a trailing backslash is dropped, as gobwas does
                    out.append(re.escape(p[self.i]))
                    self.i += 1
            else:
                out.append(re.escape(c))
                self.i += 1
        return "".join(out)

    def _alternatives(self) -> str:
        self.i += 1  # {
        alternatives = [self._sequence(in_terms=True)]
        while True:
            if self.i >= len(self.p):
                raise _BadPattern("unclosed {")
            if self.p[self.i] == ",":
                self.i += 1
                alternatives.append(self._sequence(in_terms=True))
                continue
            self.i += 1  # }
            return "(?:" + "|".join(alternatives) + ")"

    def _char_class(self) -> str:
        p = self.p
        self.i += 1  # [
        negate = self.i < len(p) and p[self.i] == "!"
        if negate:
            self.i += 1
        if self.i >= len(p):
            raise _BadPattern("unclosed [")
        if self.i + 1 < len(p) and p[self.i + 1] == "-":
            if self.i + 2 >= len(p):
                raise _BadPattern("unclosed range")
            body = f"{re.escape(p[self.i])}-{re.escape(p[self.i + 2])}"
            self.i += 3
        else:
            chars: list[str] = []
            while self.i < len(p) and p[self.i] != "]":
                if p[self.i] == "\\":
                    self.i += 1
                    if self.i >= len(p):
                        break
                chars.append(re.escape(p[self.i]))
                self.i += 1
            if not chars:
                raise _BadPattern("empty character class")
            body = "".join(chars)
        if self.i >= len(p) or p[self.i] != "]":
            raise _BadPattern("unclosed [")
        self.i += 1
        return f"[{'^' if negate else ''}{body}]"


def glob_match(pattern: str, value: str, separators: str = "") -> bool:
    """gobwas/glob ``Compile(pattern, separators...).Match(value)``; False when the
    pattern does not compile (Argo CD's ``glob.Match``)."""
    compiled = _compile_glob(pattern, separators)
    return compiled is not None and compiled.match(value) is not None


def _argo_glob(pattern: str, value: str, separators: str = "") -> bool:
    """Argo CD's ``globMatch(pattern, val, allowNegation=true, separators...)``."""
    if pattern.startswith("!"):
        return not glob_match(pattern[1:], value, separators)
    if pattern == "*":
        return True
    return glob_match(pattern, value, separators)


@functools.lru_cache(maxsize=512)
def _compile_path_pattern(pattern: str) -> re.Pattern[str] | None:
    """Go's ``filepath.Match`` syntax (on Linux) as a regular expression."""
    out: list[str] = []
    i, n = 0, len(pattern)
    try:
        while i < n:
            c = pattern[i]
            if c == "*":
                out.append("[^/]*")
                i += 1
            elif c == "?":
                out.append("[^/]")
                i += 1
            elif c == "\\":
                if i + 1 >= n:
                    return None  # ErrBadPattern
                out.append(re.escape(pattern[i + 1]))
                i += 2
            elif c == "[":
                i += 1
                negate = i < n and pattern[i] == "^"
                if negate:
                    i += 1
                ranges: list[str] = []
                while True:
                    if i >= n:
                        return None
                    if pattern[i] == "]" and ranges:
                        i += 1
                        break
                    lo, i = _path_class_char(pattern, i)
                    if i < n and pattern[i] == "-":
                        hi, i = _path_class_char(pattern, i + 1)
                        ranges.append(f"{re.escape(lo)}-{re.escape(hi)}")
                    else:
                        ranges.append(re.escape(lo))
                out.append(f"[{'^' if negate else ''}{''.join(ranges)}]")
            else:
                out.append(re.escape(c))
                i += 1
        return re.compile(r"\A" + "".join(out) + r"\Z", re.DOTALL)
    except (_BadPattern, re.error):
        return None


def _path_class_char(pattern: str, i: int) -> tuple[str, int]:
    # Go's getEsc: ']' and '-' must be escaped inside a class.
    if i >= len(pattern) or pattern[i] in "-]":
        raise _BadPattern(pattern)
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise _BadPattern(pattern)
    return pattern[i], i + 1


def path_match(pattern: str, value: str) -> bool:
    """Go's ``filepath.Match``; a bad pattern matches nothing."""
    compiled = _compile_path_pattern(pattern)
    return compiled is not None and compiled.match(value) is not None


# ---------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class GroupKind:
    """A ``{group, kind}`` entry of a resource list; both are ``filepath.Match`` patterns."""

    group: str
    kind: str

    def matches(self, group: str, kind: str) -> bool:
        return path_match(self.kind, kind) and path_match(self.group, group)

    def to_dict(self) -> dict[str, str]:
        return {"group": self.group, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class ProjectDestination:
    """Where apps may deploy: a cluster (``name`` or ``server`` glob) and a namespace glob.

    An entry with neither ``name`` nor ``server`` means the cluster gitmoor runs
    against (``in-cluster``); Argo CD refuses such an entry instead.
    """

    namespace: str
    name: str = ""
    server: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"namespace": self.namespace}
        if self.name:
            out["name"] = self.name
        if self.server:
            out["server"] = self.server
        return out


@dataclass(frozen=True, slots=True)
class DestinationServiceAccount:
    """The ServiceAccount whose identity syncs to a destination use.

    ``default_service_account`` is ``NAME`` (in the app's destination namespace)
    or ``NAMESPACE:NAME``, as in Argo CD.
    """

    default_service_account: str
    namespace: str = "*"
    server: str = ""
    name: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"defaultServiceAccount": self.default_service_account, "namespace": self.namespace}
        if self.server:
            out["server"] = self.server
        if self.name:
            out["name"] = self.name
        return out


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    namespace: str
    name: str

    @property
    def username(self) -> str:
        """The user name the API server gives this account's tokens."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups the API server gives this account (``serviceaccount.MakeGroupNames``
        plus ``system:authenticated``)."""
        return (
            "system:serviceaccounts",
            f"system:serviceaccounts:{self.namespace}",
            "system:authenticated",
        )


# ---------------------------------------------------------------- sync windows

#: ``spec.syncWindows[].kind``
WINDOW_KINDS = ("allow", "deny")
#: Go's ``time.ParseDuration`` units, in nanoseconds
_GO_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_GO_DURATION = re.compile(r"\A(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+\Z")
#: Go's time.Duration is int64 nanoseconds
_GO_MAX_NANOS = (1 << 63) - 1
_GO_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
#: robfig/cron's standard parser (the one Argo CD builds: minute, hour, day of
#: month, month, day of week): the bounds of each field, and its names
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_PART = re.compile(r"\A(?:(\*|\?)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/(\d+))?\Z")


def parse_go_duration(text: str) -> timedelta | None:
    """Go's ``time.ParseDuration`` (what Argo CD reads ``duration`` with: ``1h``,
    ``90m``, ``1h30m``, ``1.5h``); None when it does not parse or is not positive.

    Go also takes a sign and a bare ``0``; a window that lasts zero or less is
    never open, so gitmoor refuses it rather than keep a window that does nothing.
    """
    text = text.strip()
    if not _GO_DURATION.match(text):
        return None
    nanos = 0.0
    for number, unit in _GO_TERM.findall(text):
        nanos += float(number) * _GO_UNITS[unit]
    # Go refuses a duration beyond int64 nanoseconds (about 292 years, "invalid
    # duration"); longer ones would also overflow datetime arithmetic here.
    if nanos <= 0 or nanos > _GO_MAX_NANOS:
        return None
    return timedelta(microseconds=nanos / 1000)


def _cron_value(token: str, low: int, names: tuple[str, ...]) -> int | None:
    if token.isdigit():
        return int(token)
    if token in names:
        return names.index(token) + low
    return None


def cron_problem(schedule: str) -> str | None:
    """Why ``schedule`` is not a cron expression Argo CD's parser takes, or None.

    Argo CD parses with robfig/cron's five-field parser and no descriptors: so
    ``@daily``, a seconds or a year field, ``L``, ``W``, ``#`` and a range that
    runs backwards (``5-1``) are refused, as Argo CD refuses them, although
    croniter (which computes the times here) would take some of them.
    """
    fields = schedule.split()
    if len(fields) != 5:
        return (
            f"expected 5 fields (minute hour day-of-month month day-of-week), found {len(fields)}"
        )
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.lower().split(","):
            m = _CRON_PART.match(part)
            if m is None:
                return f"{what} field {text!r} is not a number, a range, a step or *"
            star, first, last, step = m.groups()
            if step is not None and int(step) == 0:
                return f"{what} field {text!r} has a step of 0"
            if star is not None:
                continue
            lo = _cron_value(first, low, names)
            hi = lo if last is None else _cron_value(last, low, names)
            if lo is None or hi is None:
                return f"{what} field {text!r} names an unknown value"
            if not (low <= lo <= high and low <= hi <= high):
                return f"{what} field {text!r} is outside {low}-{high}"
            if hi < lo:
                return f"{what} field {text!r} has a range that runs backwards"
    return None


def cron_expression(schedule: str) -> str:
    """``schedule`` as croniter reads it: robfig's ``?`` (any) becomes ``*``."""
    return " ".join("*" if f == "?" else f for f in schedule.split())


@dataclass(frozen=True, slots=True)
class SyncWindow:
    """One entry of ``spec.syncWindows``: Argo CD's ``SyncWindow``, same field names.

    From each time ``schedule`` fires (read in ``time_zone``) the window is open
    for ``duration``. It applies to the apps whose name, destination cluster
    (registered name or API server URL) or destination namespace one of its
    globs matches; with ``and_operator`` (Argo CD's ``andOperator``) every list
    that is set must match. A window that names none applies to no app, as in
    Argo CD. The rules that combine windows live in :mod:`gitmoor.engine.windows`.
    """

    kind: str
    schedule: str
    duration: str
    applications: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    manual_sync: bool = False
    #: an IANA zone name; "" is UTC, as in Argo CD
    time_zone: str = ""
    and_operator: bool = False
    description: str = ""

    @property
    def length(self) -> timedelta:
        """``duration`` as a timedelta (validated when the project was parsed)."""
        parsed = parse_go_duration(self.duration)
        if parsed is None:
            raise UserInputError(f"sync window duration {self.duration!r} is not a duration")
        return parsed

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.time_zone) if self.time_zone else UTC

    @property
    def text(self) -> str:
        """How messages name the window: ``deny 0 22 * * * (1h, UTC)``."""
        return f"{self.kind} {self.schedule} ({self.duration}, {self.time_zone or 'UTC'})"

    def matches(self, app: str, namespace: str, cluster: str, server: str) -> bool:
        """Does the window apply to the app ``app`` deploying to ``namespace`` of the
        cluster named ``cluster`` whose API server is ``server``?

        Argo CD's ``SyncWindows.Matches``: plain globs (``!`` is no negation here),
        a cluster entry matches the destination's name or its server; by default any
        list that matches is enough, with ``andOperator`` each list that is set must.
        """

        def any_of(patterns: tuple[str, ...], *values: str) -> bool:
            return any(p == "*" or glob_match(p, v) for p in patterns for v in values if v)

        checks = [
            any_of(self.applications, app) if self.applications else None,
            any_of(self.clusters, cluster, server) if self.clusters else None,
            any_of(self.namespaces, namespace) if self.namespaces else None,
        ]
        given = [c for c in checks if c is not None]
        if not given:
            return False
        return all(given) if self.and_operator else any(given)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "schedule": self.schedule,
            "duration": self.duration,
        }
        if self.applications:
            out["applications"] = list(self.applications)
        if self.namespaces:
            out["namespaces"] = list(self.namespaces)
        if self.clusters:
            out["clusters"] = list(self.clusters)
        if self.manual_sync:
            out["manualSync"] = True
        if self.time_zone:
            out["timeZone"] = self.time_zone
        if self.and_operator:
            out["andOperator"] = True
        if self.description:
            out["description"] = self.description
        return out


def _cluster_matches(
    name_pattern: str, server_pattern: str, cluster: str, server: str
) -> tuple[bool, bool]:
    """(name matched, server matched), with Argo CD's rule that an empty value never matches."""
    if not name_pattern and not server_pattern:
        name_pattern = IN_CLUSTER  # gitmoor: an entry naming no cluster means the home cluster
    name_m = bool(cluster) and bool(name_pattern) and _argo_glob(name_pattern, cluster)
    server_m = bool(server) and bool(server_pattern) and _argo_glob(server_pattern, server)
    return name_m, server_m


@dataclass(frozen=True, slots=True)
class AppProject:
    name: str
    namespace: str = ""
    description: str = ""
    source_repos: tuple[str, ...] = ()
    destinations: tuple[ProjectDestination, ...] = ()
    cluster_resource_whitelist: tuple[GroupKind, ...] = ()
    cluster_resource_blacklist: tuple[GroupKind, ...] = ()
    #: None: absent, every namespaced kind allowed; (): set and empty, none allowed
    namespace_resource_whitelist: tuple[GroupKind, ...] | None = None
    namespace_resource_blacklist: tuple[GroupKind, ...] = ()
    destination_service_accounts: tuple[DestinationServiceAccount, ...] = ()
    #: the decryption of apps that name none (``spec.decryption``)
    decryption: Decryption | None = None
    #: refuse a plaintext Secret in any app's render (``spec.requireEncryptedSecrets``)
    require_encrypted_secrets: bool = False
    #: fields masked in every output of every app of the project (``spec.redactions``)
    redactions: tuple[RedactRule, ...] = ()
    #: ``gitmoor lint`` rules (ids or slugs, as written) every app's render must
    #: pass before it syncs (``spec.requiredLintRules``); the engine, which may
    #: import the lint registry, resolves and checks them (``model`` may not)
    required_lint_rules: tuple[str, ...] = ()
    #: when apps may sync (``spec.syncWindows``, Argo CD's sync windows)
    sync_windows: tuple[SyncWindow, ...] = ()
    resource_version: str = ""
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    # ------------------------------------------------------------ checks

    def source_allowed(self, url: str, normalize: Callable[[str], str] | None = None) -> bool:
        """May apps use the repository ``url`` (already normalised)?

        ``normalize`` is applied to each pattern (after its ``!``), as Argo CD
        normalises both sides with ``git.NormalizeGitURL``; it must not raise.
        """
        norm = normalize or (lambda s: s)
        any_matched = False
        for entry in self.source_repos:
            deny = entry.startswith("!")
            body = entry[1:] if deny else entry
            pattern = ("!" if deny else "") + (body if body == "*" else norm(body))
            if _argo_glob(pattern, url, "/"):
                any_matched = True
            elif deny:
                return False
        return any_matched

    def destination_allowed(self, cluster: str, namespace: str, server: str = "") -> bool:
        """May apps deploy to ``namespace`` of ``cluster`` (its name; ``in-cluster`` for
        the home cluster) whose API server is ``server``? (``isDestinationMatched``)"""
        any_matched = False
        no_deny_matched = True
        for d in self.destinations:
            name_m, server_m = _cluster_matches(d.name, d.server, cluster, server)
            ns_m = _argo_glob(d.namespace, namespace)
            if (name_m or server_m) and ns_m:
                any_matched = True
            elif (
                (not name_m and d.name.startswith("!"))
                or (not server_m and d.server.startswith("!"))
                or (not ns_m and d.namespace.startswith("!"))
            ):
                no_deny_matched = False
        return any_matched and no_deny_matched

    def resource_denial(self, group: str, kind: str, namespaced: bool) -> str | None:
        """The field that refuses ``group``/``kind``, or None when it is permitted
        (``IsGroupKindPermitted``)."""
        if namespaced:
            wl = self.namespace_resource_whitelist
            if wl is not None and not any(g.matches(group, kind) for g in wl):
                return "spec.namespaceResourceWhitelist"
            if any(g.matches(group, kind) for g in self.namespace_resource_blacklist):
                return "spec.namespaceResourceBlacklist"
            return None
        if not any(g.matches(group, kind) for g in self.cluster_resource_whitelist):
            return "spec.clusterResourceWhitelist"
        if any(g.matches(group, kind) for g in self.cluster_resource_blacklist):
            return "spec.clusterResourceBlacklist"
        return None

    def resource_allowed(self, group: str, kind: str, namespaced: bool) -> bool:
        return self.resource_denial(group, kind, namespaced) is None

    def service_account_for(
        self, cluster: str, namespace: str, server: str = ""
    ) -> ServiceAccount | None:
        """The ServiceAccount syncs to ``namespace`` of ``cluster`` impersonate, or None.

        The first matching ``destinationServiceAccounts`` entry wins, as in Argo
        CD's ``DeriveServiceAccountToImpersonate``; a name without a namespace is
        in the destination namespace. Where no entry matches, gitmoor syncs with
        its own identity (Argo CD, with impersonation switched on, refuses).
        """
        for i, item in enumerate(self.destination_service_accounts):
            where = f"spec.destinationServiceAccounts[{i}]"
            for pattern in (item.name, item.server, item.namespace):
                if pattern and _compile_glob(pattern.removeprefix("!"), "") is None:
                    raise UserInputError(
                        f"project {self.name}: {where} has an invalid glob {pattern!r}",
                        concerns=f"AppProject {self.name}",
                    )
            name_m, server_m = _cluster_matches(item.name, item.server, cluster, server)
            if not ((name_m or server_m) and glob_match(item.namespace, namespace)):
                continue
            sa = item.default_service_account
            if not sa.strip() or _SA_DISALLOWED & set(sa):
                raise UserInputError(
                    f"project {self.name}: {where}.defaultServiceAccount {sa!r} is not a "
                    "ServiceAccount name (NAME or NAMESPACE:NAME)",
                    concerns=f"AppProject {self.name}",
                )
            if ":" in sa:
                sa_ns, _, sa_name = sa.partition(":")
                return ServiceAccount(sa_ns, sa_name)
            return ServiceAccount(namespace, sa)
        return None

    # ------------------------------------------------------------ serialisation

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["sourceRepos"] = list(self.source_repos)
        out["destinations"] = [d.to_dict() for d in self.destinations]
        if self.cluster_resource_whitelist:
            out["clusterResourceWhitelist"] = [g.to_dict() for g in self.cluster_resource_whitelist]
        if self.cluster_resource_blacklist:
            out["clusterResourceBlacklist"] = [g.to_dict() for g in self.cluster_resource_blacklist]
        if self.namespace_resource_whitelist is not None:
            out["namespaceResourceWhitelist"] = [
                g.to_dict() for g in self.namespace_resource_whitelist
            ]
        if self.namespace_resource_blacklist:
            out["namespaceResourceBlacklist"] = [
                g.to_dict() for g in self.namespace_resource_blacklist
            ]
        if self.destination_service_accounts:
            out["destinationServiceAccounts"] = [
                s.to_dict() for s in self.destination_service_accounts
            ]
        if self.decryption is not None:
            out["decryption"] = self.decryption.to_dict()
        if self.require_encrypted_secrets:
            out["requireEncryptedSecrets"] = True
        if self.redactions:
            out["redactions"] = [r.to_dict() for r in self.redactions]
        if self.required_lint_rules:
            out["requiredLintRules"] = list(self.required_lint_rules)
        if self.sync_windows:
            out["syncWindows"] = [w.to_dict() for w in self.sync_windows]
        return out

    def to_manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self.spec(),
        }


def default_project(namespace: str = "") -> AppProject:
    """What Argo CD's ``default`` project allows: every repository, every
    destination, every kind (argo-cd ``server.go`` ``initializeDefaultProject``)."""
    return AppProject(
        name=DEFAULT_PROJECT,
        namespace=namespace,
        description="The default project: every repository, destination and kind, as Argo CD's",
        source_repos=("*",),
        destinations=(ProjectDestination(namespace="*", name="*", server="*"),),
        cluster_resource_whitelist=(GroupKind("*", "*"),),
    )


# ---------------------------------------------------------------- parsing


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise UserInputError(f"{where} must be true or false", concerns=where)
    return value


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UserInputError(f"{where} must be a string", concerns=where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserInputError(f"{where} must be a list", concerns=where)
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserInputError(f"{where} must be an object", concerns=where)
    return value


def _group_kinds(value: Any, where: str) -> tuple[GroupKind, ...]:
    out = []
    for i, item in enumerate(_list(value, where)):
        d = _dict(item, f"{where}[{i}]")
        kind = _str(d.get("kind"), f"{where}[{i}].kind")
        if not kind:
            raise UserInputError(f"{where}[{i}].kind is required", concerns=where)
        out.append(GroupKind(_str(d.get("group"), f"{where}[{i}].group"), kind))
    return tuple(out)


#: a rule id (``GM102``) or slug (``image-tag``): the syntax only, the registry
#: lives in ``gitmoor.lint``, a layer above this one
_RULE_NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9-]{0,62}\Z")


def _rule_names(value: Any, where: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(_list(value, where)):
        name = _str(item, f"{where}[{i}]").strip()
        if not _RULE_NAME.match(name):
            raise UserInputError(
                f"{where}[{i}] {item!r} is not a lint rule id or slug (GM102, image-tag)",
                concerns=where,
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def parse_sync_window(value: Any, where: str) -> SyncWindow:
    """One ``spec.syncWindows`` entry; UserInputError naming the field that is wrong.

    Argo CD's ``SyncWindow.Validate`` refuses a bad kind, schedule or duration; a
    time zone it cannot load it replaces with UTC (with a warning in its log),
    where gitmoor refuses it: a window read in the wrong zone opens hours off.
    """
    d = _dict(value, where)
    kind = _str(d.get("kind"), f"{where}.kind")
    if kind not in WINDOW_KINDS:
        raise UserInputError(
            f"{where}.kind: {kind!r} is not allow or deny", concerns=f"{where}.kind"
        )
    schedule = _str(d.get("schedule"), f"{where}.schedule").strip()
    problem = cron_problem(schedule)
    if problem is None and not croniter.is_valid(cron_expression(schedule)):
        problem = "croniter cannot read it"
    if problem is not None:
        raise UserInputError(
            f"{where}.schedule: bad cron {schedule!r}: {problem}", concerns=f"{where}.schedule"
        )
    duration = _str(d.get("duration"), f"{where}.duration").strip()
    if parse_go_duration(duration) is None:
        raise UserInputError(
            f"{where}.duration: {duration!r} is not a positive duration (1h, 30m, 1h30m)",
            concerns=f"{where}.duration",
        )
    time_zone = _str(d.get("timeZone"), f"{where}.timeZone").strip()
    if time_zone == "UTC":
        time_zone = ""
    if time_zone:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise UserInputError(
                f"{where}.timeZone: {time_zone!r} is not a known time zone (e.g. Europe/Berlin)",
                concerns=f"{where}.timeZone",
            ) from e
    return SyncWindow(
        kind=kind,
        schedule=schedule,
        duration=duration,
        applications=_strings(d.get("applications"), f"{where}.applications"),
        namespaces=_strings(d.get("namespaces"), f"{where}.namespaces"),
        clusters=_strings(d.get("clusters"), f"{where}.clusters"),
        manual_sync=_bool(d.get("manualSync"), f"{where}.manualSync"),
        time_zone=time_zone,
        and_operator=_bool(d.get("andOperator"), f"{where}.andOperator"),
        description=_str(d.get("description"), f"{where}.description"),
    )


def parse_appproject(obj: dict[str, Any]) -> AppProject:
    """An AppProject from its object; UserInputError naming a malformed field."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    where = f"AppProject {meta.get('namespace', '')}/{name}"
    spec = _dict(obj.get("spec") or {}, f"{where} spec")
    repos = tuple(
        _str(r, f"{where} spec.sourceRepos[{i}]")
        for i, r in enumerate(_list(spec.get("sourceRepos"), f"{where} spec.sourceRepos"))
    )
    destinations = []
    for i, d in enumerate(_list(spec.get("destinations"), f"{where} spec.destinations")):
        at = f"{where} spec.destinations[{i}]"
        d = _dict(d, at)
        destinations.append(
            ProjectDestination(
                namespace=_str(d.get("namespace"), f"{at}.namespace"),
                name=_str(d.get("name"), f"{at}.name"),
                server=_str(d.get("server"), f"{at}.server"),
            )
        )
    accounts = []
    for i, s in enumerate(
        _list(spec.get("destinationServiceAccounts"), f"{where} spec.destinationServiceAccounts")
    ):
        at = f"{where} spec.destinationServiceAccounts[{i}]"
        s = _dict(s, at)
        accounts.append(
            DestinationServiceAccount(
                default_service_account=_str(
                    s.get("defaultServiceAccount"), f"{at}.defaultServiceAccount"
                ),
                namespace=_str(s.get("namespace"), f"{at}.namespace") or "*",
                server=_str(s.get("server"), f"{at}.server"),
                name=_str(s.get("name"), f"{at}.name"),
            )
        )
    ns_whitelist = spec.get("namespaceResourceWhitelist")
    return AppProject(
        name=name,
        namespace=str(meta.get("namespace", "")),
        description=_str(spec.get("description"), f"{where} spec.description"),
        source_repos=repos,
        destinations=tuple(destinations),
        cluster_resource_whitelist=_group_kinds(
            spec.get("clusterResourceWhitelist"), f"{where} spec.clusterResourceWhitelist"
        ),
        cluster_resource_blacklist=_group_kinds(
            spec.get("clusterResourceBlacklist"), f"{where} spec.clusterResourceBlacklist"
        ),
        namespace_resource_whitelist=None
        if ns_whitelist is None
        else _group_kinds(ns_whitelist, f"{where} spec.namespaceResourceWhitelist"),
        namespace_resource_blacklist=_group_kinds(
            spec.get("namespaceResourceBlacklist"), f"{where} spec.namespaceResourceBlacklist"
        ),
        destination_service_accounts=tuple(accounts),
        decryption=parse_decryption(spec.get("decryption"), f"{where} spec.decryption"),
        require_encrypted_secrets=_bool(
            spec.get("requireEncryptedSecrets"), f"{where} spec.requireEncryptedSecrets"
        ),
        redactions=parse_redactions(spec.get("redactions"), f"{where} spec.redactions"),
        required_lint_rules=_rule_names(
            spec.get("requiredLintRules"), f"{where} spec.requiredLintRules"
        ),
        sync_windows=tuple(
            parse_sync_window(w, f"{where} spec.syncWindows[{i}]")
            for i, w in enumerate(_list(spec.get("syncWindows"), f"{where} spec.syncWindows"))
        ),
        resource_version=str(meta.get("resourceVersion", "")),
        raw=obj,
    )


__all__ = [
    "API_VERSION",
    "DEFAULT_PROJECT",
    "IN_CLUSTER",
    "IN_CLUSTER_SERVER",
    "KIND",
    "AppProject",
    "DestinationServiceAccount",
    "GroupKind",
    "ProjectDestination",
    "ProjectViolation",
    "ServiceAccount",
    "SyncWindow",
    "cron_problem",
    "default_project",
    "glob_match",
    "parse_appproject",
    "parse_go_duration",
    "parse_sync_window",
    "path_match",
]
