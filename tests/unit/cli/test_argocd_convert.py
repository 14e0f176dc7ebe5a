"""``gitmoor app create --from-argocd``: Argo CD Applications converted on plain data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import yaml

from gitmoor.cli.argocd import convert_argocd, load_argocd_file
from gitmoor.model import UserInputError
from gitmoor.model.application import parse_application

if TYPE_CHECKING:
    from pathlib import Path

GUESTBOOK = """
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook
  namespace: argocd
  finalizers: [resources-finalizer.argocd.argoproj.io]
  labels: {team: web}
spec:
  project: team-a
  source:
    repoURL: https://github.com/argoproj/argocd-example-apps.git
    targetRevision: HEAD
    path: helm-guestbook
    helm:
      releaseName: gb
      valueFiles: [values-prod.yaml]
      values: |
        replicaCount: 2
        image: {tag: v2}
  destination:
    server: https://kubernetes.default.svc
    namespace: guestbook
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true, PrunePropagationPolicy=foreground]
    retry:
      limit: 5
      backoff: {duration: 5s, factor: 2, maxDuration: 3m}
  ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers: [/spec/replicas]
  revisionHistoryLimit: 3
"""


def argo(text: str = GUESTBOOK, **spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(text)
    doc["spec"].update(spec)
    return doc


def test_guestbook_converts_field_by_field() -> None:
    converted = convert_argocd(argo(), apps_namespace="gitmoor")
    assert converted.manifest == {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "guestbook", "namespace": "gitmoor", "labels": {"team": "web"}},
        "spec": {
            "project": "team-a",
            "source": {
                "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
                "path": "helm-guestbook",
                "targetRevision": "HEAD",
                "helm": {
                    "releaseName": "gb",
                    "valueFiles": ["values-prod.yaml"],
                    # Argo CD's string values, parsed as YAML.
                    "values": {"replicaCount": 2, "image": {"tag": "v2"}},
                },
            },
            # server https://kubernetes.default.svc: this cluster, so no name.
            "destination": {"namespace": "guestbook"},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True, "allowEmpty": False},
                "syncOptions": ["CreateNamespace=true", "PrunePropagationPolicy=foreground"],
                "retry": {
                    "limit": 5,
                    "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"},
                },
            },
            "ignoreDifferences": [
                {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
            ],
            "revisionHistoryLimit": 3,
        },
    }
    # What gitmoor's own parser accepts.
    app = parse_application(converted.manifest)
    assert app.spec.source.helm.values == {"replicaCount": 2, "image": {"tag": "v2"}}
    # Each thing not carried over is a line.
    assert len(converted.warnings) == 3
    assert "PrunePropagationPolicy=foreground" in converted.warnings[0]
    assert "metadata.namespace 'argocd'" in converted.warnings[1]
    assert "metadata.finalizers" in converted.warnings[2]


def test_name_overrides_and_values_object_wins_over_values() -> None:
    doc = argo()
    doc["spec"]["source"]["helm"]["valuesObject"] = {"replicaCount": 5}
    converted = convert_argocd(doc, apps_namespace="apps", name="gb-prod")
    assert converted.manifest["metadata"]["name"] == "gb-prod"
    assert converted.manifest["spec"]["source"]["helm"]["values"] == {"replicaCount": 5}
    assert any("valuesObject is used" in w for w in converted.warnings)


def test_destination_name_is_a_registered_cluster() -> None:
    converted = convert_argocd(
        argo(destination={"name": "prod-eu", "namespace": "web"}), apps_namespace="gitmoor"
    )
    assert converted.manifest["spec"]["destination"] == {"name": "prod-eu", "namespace": "web"}
    in_cluster = convert_argocd(
        argo(destination={"name": "in-cluster", "namespace": "web"}), apps_namespace="gitmoor"
    )
    assert in_cluster.manifest["spec"]["destination"] == {"namespace": "web"}


def test_single_entry_sources_is_a_source() -> None:
    doc = argo()
    doc["spec"]["sources"] = [doc["spec"].pop("source")]
    converted = convert_argocd(doc, apps_namespace="gitmoor")
    assert converted.manifest["spec"]["source"]["path"] == "helm-guestbook"


def test_automated_disabled_is_manual() -> None:
    converted = convert_argocd(
        argo(syncPolicy={"automated": {"enabled": False, "prune": True}}), apps_namespace="g"
    )
    assert "automated" not in converted.manifest["spec"].get("syncPolicy", {})


@pytest.mark.parametrize(
    "change,message",
    [
        (
            {"sources": [{"repoURL": "a", "path": "x"}, {"repoURL": "b", "path": "y"}]},
            "spec.sources: several sources are not supported",
        ),
        (
            {"source": {"repoURL": "r", "path": "p", "plugin": {"name": "kasane"}}},
            "spec.source.plugin: config management plugins are not supported",
        ),
        (
            {"source": {"repoURL": "r", "path": "p", "directory": {"jsonnet": {"tlas": [1]}}}},
            "spec.source.directory.jsonnet: Jsonnet is not supported",
        ),
        (
            {"source": {"repoURL": "https://charts.example", "chart": "nginx"}},
            "spec.source.chart: charts from a Helm repository are not supported",
        ),
        (
            {"source": {"repoURL": "r", "path": "p", "kustomize": {"namePrefix": "x-"}}},
            "spec.source.kustomize.namePrefix is not supported",
        ),
        (
            {
                "source": {
                    "repoURL": "r",
                    "path": "p",
                    "helm": {"parameters": [{"name": "a", "value": "b"}]},
                }
            },
            "spec.source.helm.parameters is not supported",
        ),
        (
            {"destination": {"server": "https://prod.example:6443", "namespace": "x"}},
            "register that cluster with `gitmoor cluster add`",
        ),
        ({"destination": {"server": "https://kubernetes.default.svc"}}, "namespace is required"),
        (
            {
                "ignoreDifferences": [
                    {"kind": "Deployment", "jqPathExpressions": [".spec.replicas"]}
                ]
            },
            "spec.ignoreDifferences[0].jqPathExpressions is not supported",
        ),
    ],
)
def test_unsupported_fields_are_errors_naming_the_field(
    change: dict[str, Any], message: str
) -> None:
    doc = argo()
    if "sources" in change:
        doc["spec"].pop("source")
    doc["spec"].update(change)
    with pytest.raises(UserInputError, match="cannot convert this Argo CD Application") as err:
        convert_argocd(doc, apps_namespace="gitmoor")
    assert message in str(err.value)


def test_every_problem_is_named_at_once() -> None:
    doc = argo(
        source={"repoURL": "r", "path": "p", "plugin": {}, "directory": {"jsonnet": {"x": 1}}},
        destination={"server": "https://elsewhere"},
    )
    with pytest.raises(UserInputError) as err:
        convert_argocd(doc, apps_namespace="gitmoor")
    text = str(err.value)
    for part in ("plugin", "jsonnet", "https://elsewhere", "namespace is required"):
        assert part in text


def test_non_recursive_directory_is_a_warning() -> None:
    converted = convert_argocd(
        argo(source={"repoURL": "r", "path": "p", "directory": {"recurse": False}}),
        apps_namespace="gitmoor",
    )
    assert any("directory.recurse is false" in w for w in converted.warnings)


def test_not_an_argocd_application_is_refused() -> None:
    with pytest.raises(UserInputError, match="not an Argo CD Application"):
        convert_argocd(
            {"apiVersion": "gitmoor.io/v1alpha1", "kind": "Application"}, apps_namespace="g"
        )


def test_string_values_that_are_not_a_mapping_are_refused() -> None:
    doc = argo()
    doc["spec"]["source"]["helm"]["values"] = "- a\n- b\n"
    with pytest.raises(UserInputError, match=r"helm\.values is not one YAML mapping"):
        convert_argocd(doc, apps_namespace="gitmoor")


def test_load_picks_the_application_among_other_documents(tmp_path: Path) -> None:
    f = tmp_path / "app.yaml"
    f.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p}\n---\n" + GUESTBOOK
    )
    assert load_argocd_file(f)["metadata"]["name"] == "guestbook"
    f.write_text(GUESTBOOK + "---\n" + GUESTBOOK)
    with pytest.raises(UserInputError, match="holds 2 Application documents"):
        load_argocd_file(f)
