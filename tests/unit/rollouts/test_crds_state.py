"""gitmoor's Argo Rollouts CRDs, on plain data: what they declare, and telling them
apart from Argo Rollouts' own (``gitmoor.rollouts.crds``). The API server's side
(the schemas accept Argo Rollouts' manifests) is tests/integration/deploy/test_rollout_crds.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.crds import rollout_crds
from gitmoor.rollouts.crds import (
    CRD_NAMES,
    FOREIGN_CRDS_MESSAGE,
    crds_state,
    foreign_install_message,
    foreign_names,
    is_gitmoors,
)


def _crd(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": meta,
    }


GITMOOR = {"app.kubernetes.io/managed-by": "gitmoor", "app.kubernetes.io/part-of": "gitmoor"}
# What Argo Rollouts' Helm chart puts on its CRDs: no managed-by gitmoor.
ARGO_HELM = {
    "app.kubernetes.io/component": "rollouts-controller",
    "app.kubernetes.io/managed-by": "Helm",
}


def test_the_package_ships_the_four_kinds_as_argo_rollouts_names_them() -> None:
    crds = {c["spec"]["names"]["kind"]: c for c in rollout_crds()}
    assert set(crds) == {"Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun"}
    assert CRD_NAMES[0] == "rollouts.argoproj.io"
    for kind, crd in crds.items():
        assert crd["spec"]["group"] == "argoproj.io"
        assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]
        assert is_gitmoors(crd), kind
    assert crds["ClusterAnalysisTemplate"]["spec"]["scope"] == "Cluster"
    assert {c["spec"]["scope"] for k, c in crds.items() if k != "ClusterAnalysisTemplate"} == {
        "Namespaced"
    }
    assert {k: c["spec"]["names"]["shortNames"] for k, c in crds.items()} == {
        "Rollout": ["ro"],
        "AnalysisTemplate": ["at"],
        "ClusterAnalysisTemplate": ["cat"],
        "AnalysisRun": ["ar"],
    }
    # kubectl scale and an HPA act on a Rollout as on a Deployment (Argo Rollouts'
    # own paths); the status subresource keeps the controller's writes apart.
    assert crds["Rollout"]["spec"]["versions"][0]["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.HPAReplicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    # Upstream's AnalysisRun has no status subresource: its controller writes the
    # status with the object.
    assert "subresources" not in crds["AnalysisRun"]["spec"]["versions"][0]


@pytest.mark.parametrize(
    ("live", "expected"),
    [
        ({name: None for name in CRD_NAMES}, "absent"),
        ({name: _crd(name, GITMOOR) for name in CRD_NAMES}, "gitmoor"),
        # Argo Rollouts' own install: no label, or another manager's.
        ({name: _crd(name) for name in CRD_NAMES}, "foreign"),
        ({name: _crd(name, ARGO_HELM) for name in CRD_NAMES}, "foreign"),
        # One foreign kind is enough: Argo Rollouts may run AnalysisRuns alone.
        (
            {
                **{name: None for name in CRD_NAMES},
                "analysisruns.argoproj.io": _crd("analysisruns.argoproj.io"),
            },
            "foreign",
        ),
        (
            {
                **{name: _crd(name, GITMOOR) for name in CRD_NAMES},
                "analysistemplates.argoproj.io": _crd("analysistemplates.argoproj.io", ARGO_HELM),
            },
            "foreign",
        ),
        # gitmoor's copies without the Rollout kind: nothing to run yet.
        (
            {**{name: _crd(name, GITMOOR) for name in CRD_NAMES}, "rollouts.argoproj.io": None},
            "absent",
        ),
    ],
    ids=["none", "gitmoors", "unlabelled", "helm", "one-foreign", "mixed", "no-rollout-kind"],
)
def test_crds_state(live: dict[str, dict[str, Any] | None], expected: str) -> None:
    assert crds_state(live) == expected


def test_a_label_of_the_wrong_shape_is_not_gitmoors() -> None:
    assert not is_gitmoors({"metadata": {"labels": ["app.kubernetes.io/managed-by"]}})
    assert not is_gitmoors({"metadata": None})
    assert not is_gitmoors(
        _crd("rollouts.argoproj.io", {"app.kubernetes.io/managed-by": "Gitmoor"})
    )


def test_the_messages_say_what_to_do() -> None:
    assert "--rollouts-takeover" in FOREIGN_CRDS_MESSAGE
    assert "--rollouts=false" in FOREIGN_CRDS_MESSAGE
    live = {name: _crd(name) for name in CRD_NAMES}
    message = foreign_install_message(foreign_names(live))
    assert "rollouts.argoproj.io" in message
    assert "--force" in message
