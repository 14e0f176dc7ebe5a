"""What a lint check reports: a rule (the registry entry) and a finding (one hit).

Every check of ``gitmoor lint`` (the YAML checks, the policy rules, and the
later slices: the OpenAPI schema check, the project's ``requiredLintRules``)
reports a :class:`Finding` for a :class:`Rule` registered in :data:`RULES`, so
that the outputs (SARIF's ``tool.driver.rules``, the README's table, the
configuration file's ``severity`` map) know every rule by id and slug without
knowing which module checks it. The ids follow the linters users know
(ruff's ``E501``, kube-linter's check names): a stable code for tooling and a
slug for people; either is accepted wherever a rule is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How a finding counts: an error fails the run, a warning only with ``--strict``."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Rule:
    """One check, as every output and the configuration name it."""

    id: str
    slug: str
    severity: Severity
    #: one line: what the rule looks for (SARIF ``shortDescription``)
    summary: str
    #: how to fix a finding (SARIF ``help``, the human output's hint)
    fix: str


#: every rule by id, in registration order (the order of the README's table)
RULES: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    if rule.id in RULES or any(r.slug == rule.slug for r in RULES.values()):
        raise ValueError(f"lint rule {rule.id}/{rule.slug} registered twice")
    RULES[rule.id] = rule
    return rule


def rule_named(name: str) -> Rule | None:
    """The rule an id (``GM101``, any case) or a slug (``container-resources``) names."""
    key = name.strip()
    if key.upper() in RULES:
        return RULES[key.upper()]
    for rule in RULES.values():
        if rule.slug == key.lower():
            return rule
    return None


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken at one place.

    ``file`` is relative to the repository root (POSIX), ``line`` and ``column``
    are 1-based, 0 when unknown (a kustomize render keeps no file origins: the
    kustomization is named with no line). ``object`` is the object's
    ``ObjectRef`` as text (``Deployment web/api``), empty for file-level findings.
    """

    rule: str
    severity: Severity
    message: str
    fix: str
    file: str
    line: int = 0
    column: int = 0
    object: str = ""

    @property
    def slug(self) -> str:
        rule = RULES.get(self.rule)
        return rule.slug if rule else self.rule

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "slug": self.slug,
            "severity": self.severity.value,
            "message": self.message,
            "fix": self.fix,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "object": self.object,
        }

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.column, self.rule, self.object)
