"""``requiredLintRules``: rule names resolved against the registry, findings as
errors that no annotation waives, and a Secret decrypted from SOPS not taken
for a plaintext one."""

from __future__ import annotations

import base64

import pytest

from gitmoor.lint.required import check_required, required_rules
from gitmoor.model import Manifest, UserInputError
from gitmoor.model.project import parse_appproject
from gitmoor.model.refs import Source


def _deployment(image: str, ignore: str = "") -> Manifest:
    meta: dict[str, object] = {"name": "web", "namespace": "prod"}
    if ignore:
        meta["annotations"] = {"gitmoor.io/lint-ignore": ignore}
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}},
    }
    return Manifest.of(obj, Source("deploy.yaml", 3))


def _secret(value: str) -> Manifest:
    obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "data": {"password": base64.b64encode(value.encode()).decode()},
    }
    return Manifest.of(obj, Source("secret.yaml", 1))


def test_ids_and_slugs_resolve_and_a_typo_is_refused() -> None:
    assert [r.id for r in required_rules(["image-tag", "gm104", "GM102"])] == ["GM102", "GM104"]
    with pytest.raises(UserInputError, match="'image-tags' is not a gitmoor lint policy rule"):
        required_rules(["image-tags"])
    with pytest.raises(UserInputError, match="'render-error' is not a gitmoor lint policy rule"):
        required_rules(["render-error"])  # a file-level check, not one of an object


def test_findings_are_errors_and_the_annotation_does_not_waive_them() -> None:
    found = check_required(
        [_deployment("nginx:latest", ignore="image-tag")],
        required_rules(["image-tag"]),
        app_path="apps/web",
    )
    assert [(f.rule, f.severity.value, f.file, f.line, f.object) for f in found] == [
        ("GM102", "error", "apps/web/deploy.yaml", 3, "Deployment.apps prod/web")
    ]
    assert check_required([_deployment("nginx:1.27")], required_rules(["image-tag"])) == []


def test_a_secret_decrypted_from_sops_is_not_plaintext() -> None:
    rules = required_rules(["plaintext-secret"])
    assert check_required([_secret("s3cret")], rules, decrypted=frozenset({"s3cret"})) == []
    (plain,) = check_required([_secret("s3cret")], rules, decrypted=frozenset({"other"}))
    assert plain.rule == "GM103" and "s3cret" not in plain.message


def test_the_project_keeps_the_names_syntactically_checked() -> None:
    obj = {
        "metadata": {"name": "p", "namespace": "gitmoor"},
        "spec": {"requiredLintRules": ["image-tag", "GM104", "image-tag"]},
    }
    project = parse_appproject(obj)
    assert project.required_lint_rules == ("image-tag", "GM104")
    assert project.spec()["requiredLintRules"] == ["image-tag", "GM104"]
    obj["spec"] = {"requiredLintRules": ["no spaces allowed"]}
    with pytest.raises(UserInputError, match="is not a lint rule id or slug"):
        parse_appproject(obj)
