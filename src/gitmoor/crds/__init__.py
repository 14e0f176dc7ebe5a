"""The CRD manifests shipped with gitmoor."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def application_crd() -> dict[str, Any]:
    text = resources.files("gitmoor.crds").joinpath("applications.yaml").read_text()
    crd: dict[str, Any] = yaml.safe_load(text)
    return crd


def appproject_crd() -> dict[str, Any]:
    text = resources.files("gitmoor.crds").joinpath("appprojects.yaml").read_text()
    crd: dict[str, Any] = yaml.safe_load(text)
    return crd


def applicationset_crd() -> dict[str, Any]:
    text = resources.files("gitmoor.crds").joinpath("applicationsets.yaml").read_text()
    crd: dict[str, Any] = yaml.safe_load(text)
    return crd


#: gitmoor's copies of Argo Rollouts' CRDs (group argoproj.io), in the order they
#: are installed; optional, installed by ``gitmoor install --rollouts``.
ROLLOUT_CRD_FILES = (
    "rollouts.yaml",
    "analysistemplates.yaml",
    "clusteranalysistemplates.yaml",
    "analysisruns.yaml",
)


def rollout_crds() -> list[dict[str, Any]]:
    """The Rollout, AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun CRDs."""
    folder = resources.files("gitmoor.crds").joinpath("rollouts")
    crds: list[dict[str, Any]] = [
        yaml.safe_load(folder.joinpath(name).read_text()) for name in ROLLOUT_CRD_FILES
    ]
    return crds
