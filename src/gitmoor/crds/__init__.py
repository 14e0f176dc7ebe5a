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
