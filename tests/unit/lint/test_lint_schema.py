"""`gitmoor lint`'s offline OpenAPI check: built-in kinds against the shipped
Kubernetes schemas, custom resources against the CRDs of the repository, each
finding at the line of the field, and nothing reported for what the API
server accepts."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gitmoor.cli.main import app as cli
from gitmoor.lint import RULES, lint
from gitmoor.lint import output as formats
from gitmoor.lint.schema import Schemas, check_schema, shipped_versions
from gitmoor.model import UserInputError

TESTDATA = Path(__file__).parent / "testdata"
B = "apps/builtin"

#: (rule, file, line, message) of every schema finding of the fixture, and no other
EXPECTED = {
    ("GM201", f"{B}/replica.yaml", 7, "unknown field spec.replica (did you mean replicas?)"),
    ("GM202", f"{B}/quoted.yaml", 8, "spec.replicas: expected integer, got string"),
    (
        "GM202",
        f"{B}/quoted.yaml",
        18,
        'spec.template.spec.containers[0].imagePullPolicy: "always" is not one of '
        "Always, IfNotPresent, Never",
    ),
    (
        "GM203",
        f"{B}/nameless.yaml",
        13,
        "spec.template.spec.containers[1]: missing required field name",
    ),
    (
        "GM204",
        "apps/unknown/gadget.yaml",
        3,
        "unknown kind Gadget of example.com/v1: not a Kubernetes 1.37 kind, and no CRD of "
        "the linted paths defines it",
    ),
    (
        "GM205",
        "apps/widgets/bad.yaml",
        8,
        "spec.size: expected integer, got string (CRD widgets.example.com)",
    ),
    (
        "GM205",
        "apps/widgets/bad.yaml",
        9,
        "unknown field spec.sise (did you mean size?) (CRD widgets.example.com)",
    ),
    (
        "GM205",
        "apps/widgets/bad.yaml",
        10,
        'spec.color: "green" is not one of red, blue (CRD widgets.example.com)',
    ),
}


@pytest.fixture
def schema_repo(tmp_path: Path) -> Path:
    root = tmp_path / "schema"
    shutil.copytree(TESTDATA / "schema", root)
    return root


def _schema_findings(root: Path, *targets: Path, version: str | None = None) -> set[Any]:
    report = lint(root, list(targets) or [root], kubernetes_version=version)
    return {(f.rule, f.file, f.line, f.message) for f in report.findings if f.rule >= "GM2"}


def test_each_schema_error_at_its_field_and_nothing_else(schema_repo: Path) -> None:
    # apps/valid (quantities as numbers, int-or-string ports, nulls, status) and
    # the good Widget (preserved, embedded and map fields) report nothing.
    assert _schema_findings(schema_repo) == EXPECTED
    assert {rule for rule, *_ in EXPECTED} == {r for r in RULES if r.startswith("GM2")}


def test_findings_have_column_object_and_fix(schema_repo: Path) -> None:
    report = lint(schema_repo, [schema_repo / "apps" / "builtin"])
    replica = next(f for f in report.findings if f.rule == "GM201")
    assert (replica.line, replica.column, replica.object) == (7, 3, "Deployment.apps misspelt")
    assert "kubectl explain" in replica.fix


def test_a_crd_elsewhere_in_the_linted_paths_counts_and_only_then(schema_repo: Path) -> None:
    apps = schema_repo / "apps"
    # the CRD's app linted with the CRs: checked against it
    both = _schema_findings(schema_repo, apps / "crd", apps / "widgets")
    assert {rule for rule, *_ in both} == {"GM205"}
    # the CRs alone: their kind is unknown, reported rather than passed
    alone = _schema_findings(schema_repo, apps / "widgets")
    assert {(rule, file, line) for rule, file, line, _ in alone} == {
        ("GM204", "apps/widgets/bad.yaml", 4),
        ("GM204", "apps/widgets/good.yaml", 2),
    }


def test_a_schema_finding_in_a_base_is_reported_once_at_the_base(schema_repo: Path) -> None:
    base = schema_repo / "apps" / "kbase"
    base.mkdir()
    shutil.copy(schema_repo / "apps" / "builtin" / "replica.yaml", base / "deployment.yaml")
    (base / "kustomization.yaml").write_text("resources: [deployment.yaml]\n", encoding="utf-8")
    overlay = schema_repo / "apps" / "koverlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../kbase]\nnamespace: prod\n", encoding="utf-8"
    )
    found = _schema_findings(schema_repo, base, overlay)
    assert {(rule, file, line) for rule, file, line, _ in found} == {
        ("GM201", "apps/kbase/deployment.yaml", 7)
    }


def test_the_annotation_waives_a_schema_rule(schema_repo: Path) -> None:
    path = schema_repo / "apps" / "builtin" / "replica.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            "  name: misspelt\n",
            "  name: misspelt\n  annotations:\n    gitmoor.io/lint-ignore: unknown-field\n",
        ),
        encoding="utf-8",
    )
    assert not any(rule == "GM201" for rule, *_ in _schema_findings(schema_repo, path.parent))


def test_kubernetes_version(schema_repo: Path) -> None:
    assert shipped_versions()[-1] == "1.37"
    target = schema_repo / "apps" / "builtin"
    assert _schema_findings(schema_repo, target, version="1.37") == _schema_findings(
        schema_repo, target, version="v1.37.2"
    )
    with pytest.raises(
        UserInputError, match=r"no schemas for Kubernetes 1\.12: gitmoor ships 1\.37"
    ):
        lint(schema_repo, [target], kubernetes_version="1.12")


def test_cli_flag_and_unknown_version_is_a_usage_error(schema_repo: Path) -> None:
    runner = CliRunner()
    target = str(schema_repo / "apps" / "builtin")
    ok = runner.invoke(
        cli,
        ["lint", target, "--root", str(schema_repo), "--kubernetes-version", "1.37", "-o", "json"],
    )
    assert ok.exit_code == 1, ok.output
    assert '"GM201"' in ok.stdout
    bad = runner.invoke(
        cli, ["lint", target, "--root", str(schema_repo), "--kubernetes-version", "2.0"]
    )
    assert bad.exit_code == 2
    assert "gitmoor ships 1.37" in bad.output


def test_junit_counts_schema_findings_as_failures(schema_repo: Path) -> None:
    report = lint(schema_repo, [schema_repo])
    root = ET.fromstring(formats.to_junit(report))
    failed = {
        (suite.get("name"), case.get("name"))
        for suite in root.iter("testsuite")
        for case in suite.iter("testcase")
        if case.find("failure") is not None
    }
    schema = {f for f in report.findings if f.rule >= "GM2"}
    assert len(schema) == len(EXPECTED)
    for f in schema:
        assert (f.file, f"{f.rule} {f.slug}: line {f.line}") in failed


def _hits(obj: dict[str, Any], schemas: Schemas) -> list[tuple[str, str]]:
    return [(h.rule.id, h.message) for h in check_schema(obj, schemas)]


def test_sops_encrypted_objects_are_not_judged_by_their_envelope() -> None:
    schemas = Schemas.load()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": "ENC[AES256_GCM,data:x,type:str]"},
        "sops": {"mac": "ENC[…]", "version": "3.13.3"},
    }
    assert _hits(secret, schemas) == []
    # encrypted_regex over a number: sops writes it as an ENC[…] string
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": "ENC[AES256_GCM,data:Mw==,type:int]",
            "selector": {},
            "template": {},
        },
        "sops": {},
    }
    assert _hits(deployment, schemas) == []
    # a plain file gets no such allowance
    del deployment["sops"]
    assert _hits(deployment, schemas) == [("GM202", "spec.replicas: expected integer, got string")]


def test_secret_values_are_never_quoted() -> None:
    schemas = Schemas.load()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": 12345678},
    }
    hits = _hits(secret, schemas)
    assert hits == [("GM202", "stringData.password: expected string, got integer")]
    assert "12345678" not in repr(hits)


def test_structural_schema_without_properties_keeps_nothing() -> None:
    schemas = Schemas.load()
    schemas.add_crds(
        [
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "things.example.com"},
                "spec": {
                    "group": "example.com",
                    "names": {"kind": "Thing"},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "properties": {"spec": {"type": "object"}},
                                }
                            },
                        },
                        {"name": "v0", "served": False},
                    ],
                },
            }
        ]
    )
    thing = {
        "apiVersion": "example.com/v1",
        "kind": "Thing",
        "metadata": {"name": "t", "labels": {"a": 1}},
        "spec": {"x": 1},
    }
    assert sorted(_hits(thing, schemas)) == [
        ("GM205", "metadata.labels.a: expected string, got integer (CRD things.example.com)"),
        ("GM205", "unknown field spec.x (CRD things.example.com)"),
    ]
    # a version the CRD does not serve is not a known kind
    old = {**thing, "apiVersion": "example.com/v0"}
    assert [rule for rule, _ in _hits(old, schemas)] == ["GM204"]


def test_metadata_is_object_meta_whatever_the_crd_says() -> None:
    """kubebuilder writes `metadata: {type: object}`, which as a structural schema
    keeps nothing: the API server checks metadata as ObjectMeta instead, at the
    root and in an embedded resource."""
    crd = yaml.safe_load((TESTDATA / "schema" / "apps" / "crd" / "crd.yaml").read_text())
    schemas = Schemas.load()
    schemas.add_crds([crd])
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "annotations": {"a": "b"}},
        "spec": {
            "size": 1,
            "template": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "e", "labels": {"tier": "web"}},
            },
        },
    }
    assert _hits(widget, schemas) == []
    widget["spec"]["template"]["metadata"] = {"nmae": "e"}
    assert _hits(widget, schemas) == [
        (
            "GM205",
            "unknown field spec.template.metadata.nmae (did you mean name?) "
            "(CRD widgets.example.com)",
        )
    ]
