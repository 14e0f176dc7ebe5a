"""The outputs of ``gitmoor lint``: one function per format, each a pure
function of the report (and, for humans, of the files it quotes).

- ``human``: grouped by file, coloured (rich), each finding with its source
  line quoted and how to fix it, then a one-line summary;
- ``json``: ``{"apps": [...], "findings": [...], "errors": n, "warnings": n}``;
- ``sarif``: SARIF 2.1.0 (OASIS), the format GitHub code scanning and most CI
  dashboards import: every registered rule in ``tool.driver.rules``, each
  finding a ``result`` with a ``physicalLocation`` relative to the repository
  root (``uriBaseId: %SRCROOT%``), as CodeQL and Checkov write it;
- ``junit``: JUnit XML, the report format CI systems show as tests: a
  ``testsuite`` per file, a ``testcase`` per rule and object (a finding is its
  ``failure``; a file-level finding a testcase of its own);
- ``github``: GitHub Actions workflow commands (``::error file=…,line=…::``),
  which annotate the pull request's diff.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from gitmoor import __version__
from gitmoor.lint.findings import RULES, Finding, Severity

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from gitmoor.lint.run import LintReport

FORMATS = ("human", "json", "sarif", "junit", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/gitmoor/gitmoor#gitmoor-lint"

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow"}


def _source_line(root: Path, file: str, line: int) -> str | None:
    path = root / file
    # Only a file of the repository is quoted: a symlink reaching outside it
    # (a pull request's) must not put another file's text in an annotation.
    if line <= 0 or not path.resolve().is_relative_to(root.resolve()):
        return None
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for number, text in enumerate(fh, start=1):
                if number == line:
                    return text.rstrip("\n")
    except OSError:
        return None
    return None


def human(report: LintReport, root: Path, console: Console) -> None:
    from rich.markup import escape

    by_file: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        by_file[f.file].append(f)
    for file, findings in by_file.items():
        console.print(f"[bold underline]{escape(file)}[/]")
        for f in findings:
            where = f"{f.line}:{f.column}" if f.column else f"{f.line}" if f.line else "-"
            obj = f"  [dim]{escape(f.object)}[/]" if f.object else ""
            console.print(
                f"  [cyan]{where:>7}[/]  [{_STYLE[f.severity]}]{f.severity.value:<7}[/] "
                f"[bold]{f.rule}[/] [dim]{f.slug}[/]  {escape(f.message)}{obj}"
            )
            quoted = _source_line(root, file, f.line)
            if quoted is not None:
                console.print(f"           [dim]{f.line:>4} |[/] {escape(quoted)}")
                if f.column:
                    console.print(f"           [dim]     |[/] {' ' * (f.column - 1)}[red]^[/]")
            console.print(f"           [green]fix:[/] {escape(f.fix)}")
        console.print()
    errors, warnings = report.errors(), report.warnings()
    style = "bold red" if errors else "yellow" if warnings else "bold green"
    console.print(
        f"[{style}]{errors} error(s), {warnings} warning(s)[/] in {len(report.apps)} app(s), "
        f"{len(report.objects)} object(s)"
    )
    if report.server_seconds is not None:
        console.print(
            f"server-side dry-run: {report.server_checked} object(s) in "
            f"{report.server_seconds:.2f} s"
        )


def to_json(report: LintReport) -> str:
    doc = {
        "apps": [{"path": a.path, "type": a.kind} for a in report.apps],
        "findings": [f.to_dict() for f in report.findings],
        "errors": report.errors(),
        "warnings": report.warnings(),
    }
    return json.dumps(doc, indent=2)


def _level(severity: Severity) -> str:
    return "error" if severity is Severity.ERROR else "warning"


def to_sarif(report: LintReport) -> str:
    rules = sorted(RULES.values(), key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(rules)}
    results: list[dict[str, Any]] = []
    for f in report.findings:
        physical: dict[str, Any] = {
            "artifactLocation": {"uri": f.file, "uriBaseId": "%SRCROOT%"},
        }
        if f.line > 0:
            region: dict[str, int] = {"startLine": f.line}
            if f.column > 0:
                region["startColumn"] = f.column
            physical["region"] = region
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": _level(f.severity),
            "message": {"text": f"{f.object}: {f.message}" if f.object else f.message},
            "locations": [{"physicalLocation": physical}],
        }
        if f.object:
            result["properties"] = {"object": f.object}
        results.append(result)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gitmoor",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [
                            {
                                "id": r.id,
                                "name": r.slug,
                                "shortDescription": {"text": r.summary},
                                "help": {"text": r.fix},
                                "defaultConfiguration": {"level": _level(r.severity)},
                            }
                            for r in rules
                        ],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "repository root"}}},
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2)


def to_junit(report: LintReport) -> str:
    policy = sorted((r for r in RULES.values() if r.id.startswith("GM1")), key=lambda r: r.id)
    objects: dict[str, list[str]] = defaultdict(list)
    for o in report.objects:
        if o.object not in objects[o.file]:
            objects[o.file].append(o.object)
    found: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    loose: dict[str, list[Finding]] = defaultdict(list)
    per_object = {r.id for r in policy}
    for f in report.findings:
        # Policy findings fill their object's test case; any other (YAML,
        # schema, render) is a failed case of its own, so none goes missing.
        if f.rule in per_object and f.object and f.object in objects.get(f.file, []):
            found[(f.file, f.rule, f.object)].append(f)
        else:
            loose[f.file].append(f)
    suites = ET.Element("testsuites", name="gitmoor lint")
    total = failures = 0
    for file in sorted(set(objects) | set(loose)):
        suite = ET.SubElement(suites, "testsuite", name=file)
        cases = failed = 0
        for obj in objects.get(file, []):
            for rule in policy:
                case = ET.SubElement(
                    suite, "testcase", classname=file, name=f"{rule.id} {rule.slug}: {obj}"
                )
                cases += 1
                hits = found.get((file, rule.id, obj), [])
                if hits:
                    failed += 1
                    _failure(case, hits)
        for f in loose.get(file, []):
            case = ET.SubElement(
                suite, "testcase", classname=file, name=f"{f.rule} {f.slug}: line {f.line}"
            )
            cases += 1
            failed += 1
            _failure(case, [f])
        suite.set("tests", str(cases))
        suite.set("failures", str(failed))
        suite.set("errors", "0")
        total += cases
        failures += failed
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def _failure(case: ET.Element, hits: list[Finding]) -> None:
    first = hits[0]
    failure = ET.SubElement(
        case, "failure", message=first.message, type=f"{first.severity.value}:{first.rule}"
    )
    failure.text = "\n".join(
        f"{h.file}:{h.line}:{h.column}: {h.severity.value} {h.rule} {h.message}\nfix: {h.fix}"
        for h in hits
    )


def _escape_data(text: str) -> str:
    # The escaping of GitHub's toolkit (``escapeData``/``escapeProperty``).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(report: LintReport) -> str:
    lines: list[str] = []
    for f in report.findings:
        props = [f"file={_escape_property(f.file)}"]
        if f.line > 0:
            props.append(f"line={f.line}")
            if f.column > 0:
                props.append(f"col={f.column}")
        props.append(f"title={_escape_property(f'{f.rule} {f.slug}')}")
        text = f"{f.object}: {f.message}" if f.object else f.message
        lines.append(f"::{f.severity.value} {','.join(props)}::{_escape_data(text)}")
    return "\n".join(lines) + ("\n" if lines else "")
