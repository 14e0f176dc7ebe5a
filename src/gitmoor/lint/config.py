"""Turning rules off: per object (an annotation) and per repository (a file).

- ``gitmoor.io/lint-ignore: GM101,host-path`` on an object silences those rules
  for that object only (ids or slugs, comma-separated; ``all`` silences every
  policy rule), as kube-linter's ``ignore-check.kube-linter.io/<check>`` and
  Polaris' ``polaris.fairwinds.com/<check>-exempt`` annotations do.
- ``.gitmoor-lint.yaml`` at the repository root::

      ignore:
        - rules: [GM101, image-tag]
          paths: ["apps/legacy/**", "apps/*/dev/*.yaml"]
      severity:
        GM109: error       # error | warning | off

  An ``ignore`` entry without ``paths`` holds everywhere; a path glob is
  matched against the finding's repository-relative file with ``fnmatch``
  (``*`` crosses ``/``, so ``apps/legacy/*`` covers the whole subtree).
  ``severity: off`` turns a rule off everywhere.

A configuration naming an unknown rule is refused (a typo would silently
disable nothing), as is any field that is not one of these.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gitmoor.lint.findings import Finding, Rule, Severity, rule_named
from gitmoor.model import UserInputError
from gitmoor.render.yamlload import load_documents

if TYPE_CHECKING:
    from pathlib import Path

CONFIG_FILE = ".gitmoor-lint.yaml"
IGNORE_ANNOTATION = "gitmoor.io/lint-ignore"
OFF = "off"


@dataclass(frozen=True, slots=True)
class IgnoreEntry:
    rules: frozenset[str]
    paths: tuple[str, ...] = ()

    def matches(self, finding: Finding) -> bool:
        if finding.rule not in self.rules:
            return False
        return not self.paths or any(fnmatch.fnmatchcase(finding.file, p) for p in self.paths)


@dataclass(frozen=True, slots=True)
class LintConfig:
    ignore: tuple[IgnoreEntry, ...] = ()
    #: rule id → severity, or ``"off"``
    severity: dict[str, Severity | str] = field(default_factory=dict)

    def apply(self, finding: Finding) -> Finding | None:
        """The finding as this configuration has it: None when ignored."""
        level = self.severity.get(finding.rule)
        if level == OFF or any(e.matches(finding) for e in self.ignore):
            return None
        if isinstance(level, Severity) and level is not finding.severity:
            from dataclasses import replace

            return replace(finding, severity=level)
        return finding


def _rule(name: object, where: str) -> Rule:
    rule = rule_named(name) if isinstance(name, str) else None
    if rule is None:
        raise UserInputError(f"unknown lint rule {name!r}", concerns=where)
    return rule


def load_config(root: Path) -> LintConfig:
    """The repository's ``.gitmoor-lint.yaml``; an empty configuration without one."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return LintConfig()
    where = CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"cannot read it: {err}", concerns=where) from err
    docs = load_documents(text, where=where)
    spec = docs[0].data if docs else {}
    if not isinstance(spec, dict):
        raise UserInputError("must be a mapping with ignore and severity", concerns=where)
    unknown = set(spec) - {"ignore", "severity"}
    if unknown:
        raise UserInputError(f"unknown field(s) {sorted(unknown)}", concerns=where)
    entries: list[IgnoreEntry] = []
    raw = spec.get("ignore") or []
    if not isinstance(raw, list):
        raise UserInputError("ignore must be a list of {rules, paths}", concerns=where)
    for i, item in enumerate(raw):
        at = f"{where}: ignore[{i}]"
        if not isinstance(item, dict) or set(item) - {"rules", "paths"}:
            raise UserInputError("an ignore entry holds rules and paths only", concerns=at)
        rules, paths = item.get("rules"), item.get("paths") or []
        if not isinstance(rules, list) or not rules:
            raise UserInputError("rules must be a non-empty list", concerns=at)
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise UserInputError("paths must be a list of globs", concerns=at)
        ids = frozenset(_rule(r, at).id for r in rules)
        entries.append(IgnoreEntry(ids, tuple(p.removeprefix("./") for p in paths)))
    levels: dict[str, Severity | str] = {}
    raw_levels = spec.get("severity") or {}
    if not isinstance(raw_levels, dict):
        raise UserInputError("severity must map rules to error, warning or off", concerns=where)
    for name, level in raw_levels.items():
        rule = _rule(name, f"{where}: severity")
        # YAML 1.1 reads an unquoted ``off`` as false: both mean off.
        if level == OFF or level is False:
            levels[rule.id] = OFF
        elif level in (Severity.ERROR.value, Severity.WARNING.value):
            levels[rule.id] = Severity(level)
        else:
            raise UserInputError(
                f"severity of {name} must be error, warning or off, not {level!r}",
                concerns=where,
            )
    return LintConfig(tuple(entries), levels)


def ignored_by_annotation(obj: dict[str, object]) -> frozenset[str]:
    """The rule ids an object's ``gitmoor.io/lint-ignore`` annotation names;
    ``all`` is every rule. An unknown name is kept as it is (it silences nothing)."""
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    value = ann.get(IGNORE_ANNOTATION) if isinstance(ann, dict) else None
    if not isinstance(value, str):
        return frozenset()
    names = {n.strip() for n in value.split(",") if n.strip()}
    out: set[str] = set()
    for name in names:
        if name.lower() == "all":
            out.add("all")
            continue
        rule = rule_named(name)
        out.add(rule.id if rule else name)
    return frozenset(out)
