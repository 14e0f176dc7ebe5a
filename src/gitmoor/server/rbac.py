"""Authorization: Argo CD's RBAC model, evaluated by casbin.

Policy lines are Argo CD's ``policy.csv`` format, kept in the ConfigMap
``gitmoor-rbac-cm`` (``argocd-rbac-cm`` there) under ``policy.csv``, with
``policy.default`` the role of every authenticated caller (empty: deny)::

    p, role:team-a-dev, applications, sync, team-a/*, allow
    g, alice, role:team-a-dev
    g, my-oidc-group, role:team-a-dev

Request: (subject, resource, action, object). Objects are ``project/app`` for
applications and logs, a name for the other resources. Globs match as Argo CD's
``globMatch`` does (gobwas/glob without separators: ``*`` crosses ``/``).
A deny line wins over allow lines of the same subject, as casbin's
``some(allow) && !some(deny)`` effect says; subjects are the caller's name and
then each of their groups, the first that is allowed wins (Argo CD's claims
enforcer), and the default role is asked last.

Built in, as Argo CD's ``builtin-policy.csv``: ``role:readonly`` (get of
everything, logs included) and ``role:admin`` (everything), and ``admin`` is
in ``role:admin``.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import logging
import threading
from dataclasses import dataclass

import casbin
from casbin.model import Model

from gitmoor.model import UserInputError

log = logging.getLogger("gitmoor.server.rbac")

RBAC_CONFIGMAP = "gitmoor-rbac-cm"
#: decisions remembered per policy before the memo starts over (bounded memory)
DECISIONS_KEPT = 100_000

#: resources and the actions each has (Argo CD's, those gitmoor serves)
RESOURCES: dict[str, tuple[str, ...]] = {
    "applications": ("get", "create", "update", "delete", "sync", "override", "action"),
    "projects": ("get", "create", "update", "delete"),
    "repositories": ("get", "create", "update", "delete"),
    "clusters": ("get", "create", "update", "delete"),
    "accounts": ("get", "update"),
    "logs": ("get",),
}

MODEL = """
[request_definition]
r = sub, res, act, obj

[policy_definition]
p = sub, res, act, obj, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && globMatch(r.res, p.res) && globMatch(r.act, p.act) && globMatch(r.obj, p.obj)
"""

BUILTIN_POLICY = """
p, role:readonly, applications, get, */*, allow
p, role:readonly, projects, get, *, allow
p, role:readonly, repositories, get, *, allow
p, role:readonly, clusters, get, *, allow
p, role:readonly, accounts, get, *, allow
p, role:readonly, logs, get, */*, allow
p, role:admin, *, *, *, allow
g, role:admin, role:readonly
g, admin, role:admin
"""


def _glob(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def parse_policy(text: str) -> tuple[list[list[str]], list[list[str]]]:
    """The ``p`` and ``g`` lines of a policy.csv; a malformed line is an error
    that names it (Argo CD refuses to load such a policy too)."""
    policies: list[list[str]] = []
    groupings: list[list[str]] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        kind, rest = cells[0], cells[1:]
        if kind == "p":
            if len(rest) == 4:
                rest = [*rest, "allow"]
            if len(rest) != 5 or rest[4] not in ("allow", "deny"):
                raise UserInputError(
                    f"policy.csv line {number}: a p line is 'p, subject, resource, action, "
                    f"object, allow|deny', not {', '.join(cells)!r}"
                )
            policies.append(rest)
        elif kind == "g":
            if len(rest) != 2:
                raise UserInputError(
                    f"policy.csv line {number}: a g line is 'g, subject, role', "
                    f"not {', '.join(cells)!r}"
                )
            groupings.append(rest)
        else:
            raise UserInputError(f"policy.csv line {number}: unknown line type {kind!r}")
    return policies, groupings


@dataclass(frozen=True, slots=True)
class Policy:
    csv: str = ""
    default: str = ""


class Rbac:
    """One loaded policy; :meth:`load` swaps it for a new one atomically."""

    def __init__(self, policy: Policy | None = None) -> None:
        self._lock = threading.Lock()
        self.policy = Policy()
        self._decisions: dict[tuple[tuple[str, ...], str, str, str], bool] = {}
        self._enforcer = self._build(Policy())
        if policy is not None:
            self.load(policy)

    @staticmethod
    def _build(policy: Policy) -> casbin.Enforcer:
        model = Model()
        model.load_model_from_text(MODEL)
        enforcer = casbin.Enforcer(model)
        enforcer.add_function("globMatch", _glob)
        p1, g1 = parse_policy(BUILTIN_POLICY)
        p2, g2 = parse_policy(policy.csv)
        for rule in [*p1, *p2]:
            enforcer.add_policy(*rule)
        for rule in [*g1, *g2]:
            enforcer.add_grouping_policy(*rule)
        return enforcer

    def load(self, policy: Policy) -> None:
        """Use ``policy`` from now on; a malformed one raises and the old one stays."""
        if policy == self.policy:
            return
        enforcer = self._build(policy)
        with self._lock:
            self._enforcer, self.policy = enforcer, policy
            self._decisions = {}
        log.info(
            "event=rbac_loaded default=%s lines=%d", policy.default or "-", policy.csv.count("\n")
        )

    def enforce(self, subjects: tuple[str, ...], resource: str, action: str, obj: str) -> bool:
        """Is any of ``subjects`` (or the default role) allowed? Answers are kept per
        policy: a list of 200 apps for 20 clients asks casbin 200 times, not 4,000."""
        key = (subjects, resource, action, obj)
        with self._lock:
            known = self._decisions.get(key)
            if known is not None:
                return known
            enforcer, default, decisions = self._enforcer, self.policy.default, self._decisions
        answer = any(
            sub and enforcer.enforce(sub, resource, action, obj)
            for sub in (*subjects, *([default] if default else []))
        )
        with self._lock:
            if decisions is self._decisions:  # the policy did not change meanwhile
                if len(decisions) >= DECISIONS_KEPT:
                    decisions.clear()
                decisions[key] = answer
        return answer

    def roles_of(self, subjects: tuple[str, ...]) -> list[str]:
        """The roles the subjects are in (directly or through another role), for the
        user-info page."""
        with self._lock:
            enforcer, default = self._enforcer, self.policy.default
        roles: set[str] = set()
        for sub in subjects:
            roles.update(enforcer.get_implicit_roles_for_user(sub))
        if default:
            roles.add(default)
        return sorted(roles)


def policy_from_configmap(obj: dict[str, object] | None) -> Policy:
    data = (obj or {}).get("data") or {}
    if not isinstance(data, dict):
        return Policy()
    return Policy(str(data.get("policy.csv") or ""), str(data.get("policy.default") or "").strip())
