"""The machine outputs of `gitmoor lint` over the fixture repository: SARIF valid
against the SARIF 2.1.0 schema, JUnit XML that parses, GitHub annotations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import pytest
from rich.console import Console

from gitmoor.lint import RULES, lint
from gitmoor.lint import output as formats

if TYPE_CHECKING:
    from gitmoor.lint import LintReport


TESTDATA = Path(__file__).parent / "testdata"


@pytest.fixture
def report(fixture_repo: Path) -> LintReport:
    return lint(fixture_repo, [fixture_repo])


def _sarif_validator() -> object:
    import jsonschema_rs

    text = (TESTDATA / "sarif-schema-2.1.0.json").read_text(encoding="utf-8")
    # The published 2.1.0 schema (oasis-tcs/sarif-spec, as shipped) gives the
    # `language` properties a pattern with a stray ']' that a strict regex
    # engine refuses to compile; this is the pattern their description means
    # (a language code, an optional region). gitmoor's output sets no language.
    broken = '"^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$"'
    assert text.count(broken) == 2
    schema = json.loads(text.replace(broken, '"^[a-zA-Z]{2}(-[a-zA-Z]{2})?$"'))
    return jsonschema_rs.Draft7Validator(schema)


def test_sarif_is_valid_sarif_2_1_0(report: LintReport) -> None:
    validator = _sarif_validator()
    doc = json.loads(formats.to_sarif(report))
    validator.validate(doc)  # type: ignore[attr-defined]
    run = doc["runs"][0]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == set(RULES)
    results = run["results"]
    assert len(results) == len(report.findings)
    hostpath = next(r for r in results if r["ruleId"] == "GM105")
    location = hostpath["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "apps/policy/hostpath.yaml"
    assert location["region"] == {"startLine": 25, "startColumn": 9}
    assert hostpath["level"] == "error"
    # a finding without a line (an overlay's) has no region rather than line 0
    overlay = next(r for r in results if r["ruleId"] == "GM111" and "overlays" in json.dumps(r))
    assert "region" not in overlay["locations"][0]["physicalLocation"]


def test_sarif_schema_rejects_what_is_not_sarif() -> None:
    validator = _sarif_validator()
    assert not validator.is_valid({"version": "2.1.0", "runs": [{"tool": {}}]})  # type: ignore[attr-defined]


def test_junit_parses_with_a_failure_per_finding(report: LintReport) -> None:
    root = ET.fromstring(formats.to_junit(report))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert "apps/policy/privileged.yaml" in suites
    assert "apps/clean/app.yaml" in suites  # passing objects are tests too
    failures = list(root.iter("failure"))
    assert len(failures) == len(report.findings)
    assert int(root.get("failures", "-1")) == len(failures)
    clean = suites["apps/clean/app.yaml"]
    assert clean.get("failures") == "0"
    assert int(clean.get("tests", "0")) == 4 * len([r for r in RULES if r.startswith("GM1")])
    privileged = suites["apps/policy/privileged.yaml"]
    failed = [c.get("name") for c in privileged.iter("testcase") if c.find("failure") is not None]
    assert failed == ["GM104 privileged-container: DaemonSet.apps node-agent"]


def test_github_annotations(report: LintReport) -> None:
    lines = formats.to_github(report).splitlines()
    assert len(lines) == len(report.findings)
    assert (
        "::error file=apps/policy/privileged.yaml,line=22,col=11,"
        "title=GM104 privileged-container::DaemonSet.apps node-agent: "
        "container 'agent' is privileged"
    ) in lines
    assert any(
        line.startswith("::warning file=apps/kustomized/overlays/prod/kustomization.yaml,title=")
        for line in lines
    )


def test_json_and_human(report: LintReport, fixture_repo: Path) -> None:
    doc = json.loads(formats.to_json(report))
    assert doc["errors"] == report.errors() and doc["warnings"] == report.warnings()
    assert {
        "rule",
        "slug",
        "severity",
        "message",
        "fix",
        "file",
        "line",
        "column",
        "object",
    } == set(doc["findings"][0])
    console = Console(record=True, width=200, color_system=None)
    formats.human(report, fixture_repo, console)
    text = console.export_text()
    # grouped by file, the source line quoted under the finding
    assert "apps/policy/privileged.yaml\n" in text
    assert "  22 |           privileged: true" in text
    assert f"{report.errors()} error(s), {report.warnings()} warning(s)" in text
