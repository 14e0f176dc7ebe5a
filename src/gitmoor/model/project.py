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

Pure functions on plain data: URL normalisation is the caller's (``model`` does
not import ``source``), so :meth:`AppProject.source_allowed` takes a normalised
URL and a normaliser for the patterns.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    "default_project",
    "glob_match",
    "parse_appproject",
    "path_match",
]
