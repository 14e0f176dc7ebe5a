"""`gitmoor lint` over the fixture repository: every rule and every YAML error
class found once, at the right file and line, and nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.lint import RULES, Severity, lint
from gitmoor.lint.config import load_config
from gitmoor.model import UserInputError

if TYPE_CHECKING:
    from pathlib import Path

P = "apps/policy"
Y = "apps/yaml-errors"

#: (rule, file, line) of every finding the fixture must produce, and no other
EXPECTED = {
    # YAML
    ("GM001", f"{Y}/syntax.yaml", 7),  # the unclosed flow sequence, where libyaml sees it
    ("GM002", f"{Y}/duplicate.yaml", 7),
    ("GM003", f"{Y}/tabs.yaml", 4),
    ("GM004", f"{Y}/not-object.yaml", 1),
    ("GM005", f"{Y}/missing.yaml", 1),  # no metadata.name
    ("GM005", f"{Y}/missing.yaml", 6),  # no apiVersion
    # policy, each at the field (or the container lacking it)
    ("GM101", f"{P}/resources.yaml", 19),
    ("GM102", f"{P}/latest.yaml", 17),
    ("GM102", f"{P}/untagged-pod.yaml", 10),
    ("GM103", f"{P}/secret.yaml", 8),
    ("GM104", f"{P}/privileged.yaml", 22),
    ("GM105", f"{P}/hostpath.yaml", 25),
    ("GM106", f"{P}/hostnetwork.yaml", 13),
    ("GM107", f"{P}/root.yaml", 16),
    ("GM108", f"{P}/writable.yaml", 22),
    ("GM109", f"{P}/nodeport.yaml", 7),
    ("GM110", f"{P}/no-probe.yaml", 16),
    ("GM111", f"{P}/replicas.yaml", 7),
    ("GM112", f"{P}/ingress.yaml", 6),
    # through a base (once, at the base's file), an overlay (at its
    # kustomization: kustomize keeps no origins) and a chart (at the template)
    ("GM102", "apps/kustomized/base/deployment.yaml", 17),
    ("GM111", "apps/kustomized/overlays/prod/kustomization.yaml", 0),
    ("GM110", "apps/chart/templates/deployment.yaml", 0),
}


def test_every_rule_and_yaml_error_found_once_at_its_line(fixture_repo: Path) -> None:
    report = lint(fixture_repo, [fixture_repo])
    found = [(f.rule, f.file, f.line) for f in report.findings]
    assert sorted(found) == sorted(EXPECTED)
    # every registered rule has its example, but the render error (see below)
    # and the schema rules (GM2xx: their own fixture, test_lint_schema.py)
    # and the server-side dry-run (GM3xx: test_lint_server_dry_run.py, a cluster)
    assert {rule for rule, _, _ in EXPECTED} == {
        r for r in RULES if r != "GM010" and not r.startswith(("GM2", "GM3"))
    }


def test_findings_carry_column_object_and_fix(fixture_repo: Path) -> None:
    report = lint(fixture_repo, [fixture_repo / "apps" / "policy"])
    privileged = next(f for f in report.findings if f.rule == "GM104")
    assert (privileged.line, privileged.column) == (22, 11)  # `privileged: true`
    assert privileged.object == "DaemonSet.apps node-agent"
    assert privileged.severity is Severity.ERROR
    assert privileged.fix == RULES["GM104"].fix
    # .gitmoor-lint.yaml raises GM112 to an error
    assert next(f for f in report.findings if f.rule == "GM112").severity is Severity.ERROR
    secret = next(f for f in report.findings if f.rule == "GM103")
    assert "hunter2" not in secret.message  # a finding never quotes a Secret's value


def test_clean_app_has_no_findings(fixture_repo: Path) -> None:
    report = lint(fixture_repo, [fixture_repo / "apps" / "clean"])
    assert report.findings == []
    assert len(report.objects) == 5  # Deployment, PDB, Service, Ingress, encrypted Secret


def test_ignores_from_config_and_annotation(fixture_repo: Path) -> None:
    # The LoadBalancer under apps/exposed is ignored by path; without the
    # configuration file it is reported, and the annotation still silences its object.
    assert lint(fixture_repo, [fixture_repo / "apps" / "exposed"]).findings == []
    (fixture_repo / ".gitmoor-lint.yaml").unlink()
    exposed = lint(fixture_repo, [fixture_repo / "apps" / "exposed"]).findings
    assert [(f.rule, f.line) for f in exposed] == [("GM109", 7)]
    policy = lint(fixture_repo, [fixture_repo / "apps" / "policy"]).findings
    assert not any("ignored" in f.object for f in policy)
    assert next(f for f in policy if f.rule == "GM112").severity is Severity.WARNING


def test_config_off_and_unknown_rule(fixture_repo: Path) -> None:
    config = fixture_repo / ".gitmoor-lint.yaml"
    config.write_text("severity:\n  plaintext-secret: off\n", encoding="utf-8")
    report = lint(fixture_repo, [fixture_repo / "apps" / "policy"])
    assert "GM103" not in {f.rule for f in report.findings}
    config.write_text("ignore:\n  - rules: [GM999]\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="unknown lint rule 'GM999'"):
        load_config(fixture_repo)


def test_render_error_is_a_finding_at_its_file(fixture_repo: Path) -> None:
    overlay = fixture_repo / "apps" / "kustomized" / "overlays" / "prod"
    (overlay / "kustomization.yaml").write_text(
        "resources:\n- ../../base\n- missing.yaml\n", encoding="utf-8"
    )
    report = lint(fixture_repo, [overlay])
    assert [(f.rule, f.file) for f in report.findings] == [
        ("GM010", "apps/kustomized/overlays/prod/kustomization.yaml")
    ]
    assert "missing.yaml" in report.findings[0].message


def test_examples_repository(repo_root: Path) -> None:
    """The demo repository has no errors; its warnings are real gaps of the
    examples (no runAsNonRoot/readOnlyRootFilesystem anywhere, Jobs and two
    Deployments without resources, one without a readiness probe, test and prod
    overlays with replicas and no PodDisruptionBudget), listed here so that a
    change to them is a decision."""
    report = lint(repo_root, [repo_root / "examples"])
    assert report.errors() == 0
    by_rule: dict[str, int] = {}
    for f in report.findings:
        by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
    assert by_rule == {"GM101": 4, "GM107": 5, "GM108": 5, "GM110": 1, "GM111": 2}


def test_a_symlink_out_of_the_repository_is_never_read(fixture_repo: Path) -> None:
    outside = fixture_repo.parent / "outside.yaml"
    outside.write_text("password: [hunter2\n", encoding="utf-8")  # broken YAML, quotable
    app = fixture_repo / "apps" / "clean"
    (app / "leak.yaml").symlink_to(outside)
    report = lint(fixture_repo, [app])
    assert [(f.rule, f.file) for f in report.findings] == [("GM010", "apps/clean/leak.yaml")]
    assert "outside the repository" in report.findings[0].message
    assert "hunter2" not in repr(report.findings)
