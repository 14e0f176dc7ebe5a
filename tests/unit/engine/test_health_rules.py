"""Health rules against golden objects: testdata/health/<kind>/<case>.yaml.

Each file is one object as the API server returns it, preceded by comment lines
``# expect: <HealthStatus>`` and, optionally, ``# message: <exact message>`` (a YAML
scalar; ``# message:`` with nothing after it expects an empty message). Other
leading comments explain the case. Add a case by adding a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitmoor.engine.health import RULES, app_health, health_of
from gitmoor.model import Health, HealthStatus

TESTDATA = Path(__file__).parent / "testdata" / "health"
CASES = sorted(TESTDATA.glob("*/*.yaml"))
_HEADER = re.compile(r"#\s*(expect|message):(.*)$")


def load_case(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(object, header) of one golden file."""
    text = path.read_text()
    header_lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if m := _HEADER.match(line):
            header_lines.append(f"{m[1]}:{m[2]}")
    header = yaml.safe_load("\n".join(header_lines)) or {}
    return yaml.safe_load(text), header


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_health(path: Path) -> None:
    obj, header = load_case(path)
    assert "expect" in header, f"{path} has no '# expect:' header"
    health = health_of(obj)
    assert health.status is HealthStatus(header["expect"]), health.message
    if "message" in header:
        assert health.message == (header["message"] or "")


def test_every_kind_rule_has_golden_cases() -> None:
    covered = set()
    for path in CASES:
        obj, _ = load_case(path)
        group = obj["apiVersion"].rpartition("/")[0]
        covered.add((group, obj["kind"]))
    # The extensions/* entries reuse the apps and networking rules unchanged.
    missing = {gk for gk in RULES if gk[0] != "extensions"} - covered
    assert not missing, f"no golden case for {sorted(missing)}"


def test_every_status_is_exercised() -> None:
    expected = {load_case(p)[1]["expect"] for p in CASES}
    # Missing is the caller's to add for an absent object, except a child
    # Application passing on its own Missing (application/missing.yaml).
    assert expected == {s.value for s in HealthStatus}


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "apps/v1", "kind": "Deployment", "status": "broken"},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"generation": "2"},
            "spec": {"replicas": "three"},
            "status": {"observedGeneration": 2, "conditions": ["x", {"type": 5}]},
        },
        {"apiVersion": "v1", "kind": "Pod", "status": {"containerStatuses": [None, 3]}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "status": {"lastScheduleTime": "yesterday"}},
        {"kind": "Widget", "metadata": None, "status": None},
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"generation": "1", "annotations": ["x"]},
            "spec": {"replicas": "3", "strategy": "blueGreen", "workloadRef": 1},
            "status": {"observedGeneration": [1], "conditions": {}, "pauseConditions": "yes"},
        },
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", "status": {"phase": 7}},
    ],
)
def test_malformed_objects_do_not_raise(obj: dict[str, Any]) -> None:
    assert isinstance(health_of(obj), Health)


def test_non_object_is_unknown() -> None:
    assert health_of(["not", "a", "dict"]).status is HealthStatus.UNKNOWN  # type: ignore[arg-type]


def test_app_health_is_the_worst_resource() -> None:
    healths = [
        Health(HealthStatus.HEALTHY),
        Health(HealthStatus.SUSPENDED, "CronJob is suspended"),
        Health(HealthStatus.PROGRESSING, "rolling"),
    ]
    assert app_health(healths) == Health(HealthStatus.PROGRESSING, "rolling")
    missing = Health(HealthStatus.MISSING)
    assert app_health([*healths, missing]) == missing
    degraded = Health(HealthStatus.DEGRADED, "crash")
    assert app_health([missing, degraded, *healths]) == degraded
    assert app_health([]) == Health(HealthStatus.HEALTHY)
