"""The YAML checks of one file, and where a field of an object is written.

The file is read by the renderer's own loader (``gitmoor.render.yamlload``), so
what lint calls valid YAML is exactly what a sync accepts: duplicate keys are
refused as the Go decoder behind ``kubectl apply`` refuses them, and the same
size, depth and alias limits hold. A parser stops at the first error of a file,
so each file reports at most one syntax-class finding (as ``yamllint`` and
``kubectl`` do); the error's class decides the rule:

- a tab where YAML needs indentation (libyaml's "found character that cannot
  start any token" at a ``\\t``) is GM003, since "cannot start any token" does
  not tell a reader that the culprit is an invisible tab;
- a duplicate key is GM002;
- anything else is GM001.

A tab that YAML accepts (inside a block scalar, after a value) is not reported:
only what breaks the file is.

Shape (for files that hold objects, not kustomize patches or Helm values): a
document that is not a mapping is GM004; a mapping without ``apiVersion``,
``kind`` or ``metadata.name`` (``generateName`` stands in, as for the
renderer) is GM005, one finding per missing field. ``kind: List`` documents
are checked item by item, as the renderer flattens them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, SequenceNode

from gitmoor.lint.findings import RULES, Finding, Rule, Severity, register
from gitmoor.render.yamlload import InvalidYAML, load_documents

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from yaml.nodes import Node

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

YAML_SYNTAX = register(
    Rule(
        "GM001",
        "yaml-syntax",
        Severity.ERROR,
        "the file is not valid YAML",
        "Fix the YAML at the line shown (indentation, an unclosed quote or bracket, a "
        "missing ':'); `python -c 'import yaml,sys; yaml.safe_load_all(open(sys.argv[1]))'` "
        "or an editor's YAML mode shows the same error.",
    )
)
DUPLICATE_KEY = register(
    Rule(
        "GM002",
        "duplicate-key",
        Severity.ERROR,
        "a mapping holds the same key twice",
        "Keep one of the two keys: Kubernetes refuses the object (and YAML loaders "
        "that accept it silently keep only the last value).",
    )
)
TAB_INDENT = register(
    Rule(
        "GM003",
        "tab-indentation",
        Severity.ERROR,
        "a tab is used where YAML requires spaces",
        "Indent with spaces: YAML forbids tabs in indentation. Set the editor to insert "
        "spaces for .yaml files.",
    )
)
NOT_OBJECT = register(
    Rule(
        "GM004",
        "not-an-object",
        Severity.ERROR,
        "a YAML document is not a Kubernetes object (a mapping)",
        "Make each document (between '---' lines) one mapping with apiVersion, kind and "
        "metadata, or move non-manifest YAML out of the app's path (or into a dot-directory).",
    )
)
MISSING_FIELD = register(
    Rule(
        "GM005",
        "missing-identity",
        Severity.ERROR,
        "an object lacks apiVersion, kind or metadata.name",
        "Add the missing field: every object needs apiVersion, kind and metadata.name "
        "(or metadata.generateName for a hook).",
    )
)


def yaml_finding(rule: Rule, message: str, file: str, line: int, column: int = 0) -> Finding:
    return Finding(rule.id, rule.severity, message, rule.fix, file, line, column)


@dataclass(slots=True)
class Locator:
    """Where the fields of each object of one file are written.

    Built from PyYAML's node graph of a file that ``load_documents`` accepted (so
    the limits were checked before the walk); aliases are walked once.
    ``mappings`` holds, per 1-based line, the outermost mapping that starts
    there: the renderer records an object's line the same way
    (``Manifest.source.line``), which is how a rendered object finds its node.
    """

    mappings: dict[int, MappingNode] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> Locator:
        loc = cls()
        try:
            roots = list(yaml.compose_all(text, Loader=_Loader))
        except yaml.YAMLError:
            return loc
        seen: set[int] = set()
        stack: list[Node] = [r for r in reversed(roots) if r is not None]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, MappingNode):
                loc.mappings.setdefault(node.start_mark.line + 1, node)
                stack.extend(v for pair in reversed(node.value) for v in reversed(pair))
            elif isinstance(node, SequenceNode):
                stack.extend(reversed(node.value))
        return loc

    def locate(self, line: int, path: Sequence[str | int]) -> tuple[int, int, int]:
        """(line, column, parts found) of ``path`` inside the object whose mapping
        starts at ``line``; of the deepest part of the path that exists when the
        rest is missing (a missing ``resources`` points at its container). Parts
        found is -1 when no object starts at ``line``."""
        node: Node | None = self.mappings.get(line)
        if node is None:
            return line, 0, -1
        at = (line, node.start_mark.column + 1)
        depth = 0
        for part in path:
            nxt: Node | None = None
            if isinstance(node, MappingNode) and isinstance(part, str):
                for key, value in node.value:
                    if getattr(key, "value", None) == part:
                        at = (key.start_mark.line + 1, key.start_mark.column + 1)
                        nxt = value
                        break
            elif (
                isinstance(node, SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                nxt = node.value[part]
                at = (nxt.start_mark.line + 1, nxt.start_mark.column + 1)
            if nxt is None:
                break
            node = nxt
            depth += 1
        return (*at, depth)


@dataclass(slots=True)
class FileCheck:
    """The findings of one file and the objects it holds, each with its line."""

    findings: list[Finding] = field(default_factory=list)
    objects: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    locator: Locator = field(default_factory=Locator)
    #: the file loaded (no syntax-class finding)
    loaded: bool = True


def check_text(text: str, file: str, *, shape: bool = True) -> FileCheck:
    """The YAML checks of one file's ``text``; ``file`` is repository-relative.

    With ``shape`` false (a kustomization's patches, a chart's values), only the
    syntax-class checks run: those files are YAML but not objects.
    """
    result = FileCheck()
    try:
        docs = load_documents(text, where=file)
    except InvalidYAML as err:
        result.loaded = False
        result.findings.append(_syntax_finding(err, text, file))
        return result
    result.locator = Locator.of(text)
    if not shape:
        return result
    for doc in docs:
        for obj, line, problem in _objects(doc.data, doc.line, doc.lines, result.locator):
            if problem is not None:
                rule, message = problem
                result.findings.append(yaml_finding(rule, message, file, line))
            elif obj is not None:
                result.objects.append((obj, line))
    return result


def _syntax_finding(err: InvalidYAML, text: str, file: str) -> Finding:
    cause = err.__cause__
    mark = None
    if isinstance(cause, yaml.MarkedYAMLError):
        mark = cause.problem_mark or cause.context_mark
    line = err.line
    column = mark.column + 1 if mark is not None and mark.line + 1 == line else 0
    if err.problem.startswith("duplicate key"):
        return yaml_finding(DUPLICATE_KEY, err.problem, file, line, column)
    lines = text.splitlines()
    if column and 0 < line <= len(lines) and lines[line - 1][column - 1 : column] == "\t":
        return yaml_finding(
            TAB_INDENT, "tab character in indentation (YAML allows spaces only)", file, line, column
        )
    return yaml_finding(YAML_SYNTAX, f"invalid YAML: {err.problem}", file, line, column)


def _objects(
    data: object, line: int, lines: dict[int, int], locator: Locator
) -> Iterator[tuple[dict[str, Any] | None, int, tuple[Rule, str] | None]]:
    """(object, line, None) for each object, (None, line, (rule, message)) for each
    problem. The loader records the lines of mappings only; an item of a List
    that is not one is found through the List's nodes."""
    line = lines.get(id(data), line)
    if not isinstance(data, dict):
        yield None, line, (NOT_OBJECT, f"document is a {_kind_of(data)}, not a mapping")
        return
    kind = data.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list):
        for i, item in enumerate(data["items"]):
            at = line if isinstance(item, dict) else locator.locate(line, ("items", i))[0]
            yield from _objects(item, at, lines, locator)
        return
    missing = [f for f in ("apiVersion", "kind") if not _nonempty(data.get(f))]
    meta = data.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    if not _nonempty(meta.get("name")) and not _nonempty(meta.get("generateName")):
        missing.append("metadata.name")
    for name in missing:
        what = kind if isinstance(kind, str) and kind else "object"
        yield None, line, (MISSING_FIELD, f"{what} has no {name}")
    if not missing:
        yield data, line, None


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _kind_of(data: object) -> str:
    if isinstance(data, list):
        return "list"
    if isinstance(data, str):
        return "string"
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, int | float):
        return "number"
    return type(data).__name__


__all__ = ["RULES", "FileCheck", "Locator", "check_text", "yaml_finding"]
