"""`gitmoor health -f`: the engine's health rules, offline, through the real command.

Every golden case of ``testdata/health`` (see test_health_rules.py) goes through the
command and must come out with the health ``health_of`` gives it and the case
expects, so a team checking its CRD offline sees what the controller will show.
Most runs use typer's CliRunner (one process for ~100 cases); a few run the
installed ``gitmoor`` script as a user does, with no kubeconfig anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_health_rules import CASES, TESTDATA, load_case
from typer.testing import CliRunner

from gitmoor.cli.main import app
from gitmoor.engine.health import app_health, health_of
from gitmoor.model import HealthStatus

GITMOOR = Path(sys.executable).parent / "gitmoor"


def _health(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["health", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_golden_case_matches_the_engine(path: Path) -> None:
    obj, header = load_case(path)
    engine = health_of(obj)
    code, out, err = _health("-f", str(path), "-o", "json")
    report = json.loads(out)
    [resource] = report["resources"]
    assert resource["health"] == {"status": engine.status.value, "message": engine.message}
    assert resource["health"]["status"] == header["expect"]
    if "message" in header:
        assert resource["health"]["message"] == (header["message"] or "")
    rollup = app_health([engine])
    assert report["health"] == {"status": rollup.status.value, "message": rollup.message}
    assert (resource["kind"], resource["name"]) == (obj["kind"], obj["metadata"]["name"])
    assert code == (1 if engine.status is HealthStatus.DEGRADED else 0), err


def test_a_directory_of_every_case_rolls_up_as_the_engine_does() -> None:
    code, out, _ = _health("-f", str(TESTDATA), "-R", "-o", "yaml")
    report = yaml.safe_load(out)
    assert [r["source"] for r in report["resources"]] == [
        f"{p}:{_first_content_line(p)}" for p in CASES
    ]
    engine = app_health(health_of(load_case(p)[0]) for p in CASES)
    assert report["health"] == {"status": engine.status.value, "message": engine.message}
    assert code == 1  # the golden cases include Degraded objects


def test_a_directory_without_recursion_names_the_flag() -> None:
    code, _, err = _health("-f", str(TESTDATA))
    assert code == 2
    assert f"{TESTDATA}:" in err and "-R" in err


def _first_content_line(path: Path) -> int:
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if not line.startswith("#"))


def _case(kind: str, name: str) -> dict[str, Any]:
    return load_case(TESTDATA / kind / f"{name}.yaml")[0]


def _list_dump(*objs: dict[str, Any]) -> str:
    # What `kubectl get deploy,pods -o yaml` prints: one v1 List, items in order.
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "List", "items": list(objs), "metadata": {}},
        sort_keys=False,
    )


def test_a_list_dump_is_flattened_and_each_item_keeps_its_line(tmp_path: Path) -> None:
    items = [
        _case("deployment", "healthy"),
        _case("pod", "crashloopbackoff"),
        _case("widget", "ready-unknown"),
    ]
    dump = tmp_path / "live.yaml"
    dump.write_text(_list_dump(*items))
    code, out, _ = _health("-f", str(dump), "-o", "json")
    report = json.loads(out)
    assert [r["kind"] for r in report["resources"]] == ["Deployment", "Pod", "Widget"]
    assert [r["health"]["status"] for r in report["resources"]] == [
        health_of(o).status.value for o in items
    ]
    lines = dump.read_text().splitlines()
    for resource in report["resources"]:
        file, _, line = resource["source"].rpartition(":")
        assert file == str(dump)
        # The item's own line (its first key), not the List's.
        assert lines[int(line) - 1].lstrip(" -").startswith(("apiVersion:", "kind:"))
    assert len({r["source"] for r in report["resources"]}) == 3
    assert code == 1

    healthy = tmp_path / "healthy.json"
    healthy.write_text(
        json.dumps(
            yaml.safe_load(
                _list_dump(_case("deployment", "healthy"), _case("widget", "no-controller"))
            )
        )
    )
    code, out, _ = _health("-f", str(healthy), "-o", "json")
    assert json.loads(out)["health"]["status"] == "Healthy"
    assert code == 0


def test_an_empty_list_is_healthy(tmp_path: Path) -> None:
    empty = tmp_path / "none.yaml"
    empty.write_text(_list_dump())
    code, out, _ = _health("-f", str(empty))
    assert code == 0
    assert "App health: Healthy (no objects)" in out


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n    bad: indent\n",
            5,
            "invalid YAML",
        ),
        ("apiVersion: v1\nkind: Pod\nkind: Service\nmetadata: {name: a}\n", 3, "duplicate key"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n- just\n- a list\n",
            5,
            "not a Kubernetes object",
        ),
        ("apiVersion: v1\nkind: Pod\nmetadata: {namespace: a}\n", 1, "has no metadata.name"),
    ],
    ids=["syntax", "duplicate-key", "not-a-mapping", "no-name"],
)
def test_bad_input_exits_2_naming_file_and_line(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    good = TESTDATA / "pod" / "crashloopbackoff.yaml"
    # Bad input wins over a Degraded object in another file: nothing is reported.
    code, out, err = _health("-f", str(good), "-f", str(bad))
    assert code == 2
    assert f"{bad}:{line}:" in err and problem in err
    assert out == ""


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = _health("-f", str(tmp_path / "nope.yaml"))
    assert (code, err.strip()) == (2, f"error: {tmp_path / 'nope.yaml'}: no such file or directory")


def test_stdin_and_files_together(tmp_path: Path) -> None:
    stdin = _list_dump(_case("statefulset", "healthy"))
    code, out, _ = _health(
        "-f",
        "-",
        "-f",
        str(TESTDATA / "job" / "failed-backoff-limit.yaml"),
        "-o",
        "json",
        stdin=stdin,
    )
    report = json.loads(out)
    assert [r["source"].split(":")[0] for r in report["resources"]] == [
        "STDIN",
        str(TESTDATA / "job" / "failed-backoff-limit.yaml"),
    ]
    assert code == 1


# ---------------------------------------------------------------- as a user runs it


def _no_cluster_env(tmp_path: Path) -> dict[str, str]:
    # No kubeconfig reachable and no in-cluster service account: the command must not look.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "absent-kubeconfig"))
    return env


def test_the_installed_command_reads_a_kubectl_dump_from_stdin(tmp_path: Path) -> None:
    degraded = _case("deployment", "progress-deadline-exceeded")
    widget = _case("widget", "ready-unknown")
    proc = subprocess.run(
        [str(GITMOOR), "health", "-f", "-"],
        input=_list_dump(degraded, widget),
        capture_output=True,
        text=True,
        env=_no_cluster_env(tmp_path),
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    rows = [line.rstrip().split(None, 3) for line in proc.stdout.splitlines()]
    assert rows[0] == ["KIND", "NAMESPACE/NAME", "HEALTH", "MESSAGE"]
    d, w = health_of(degraded), health_of(widget)
    assert rows[1][:3] == [
        "Deployment.apps",
        f"{degraded['metadata']['namespace']}/{degraded['metadata']['name']}",
        "Degraded",
    ]
    assert rows[1][3] == d.message
    assert rows[2][:3] == ["Widget.example.com", "shop/blue", w.status.value]
    assert rows[2][3] == w.message
    assert proc.stdout.splitlines()[-1].startswith("App health: Degraded (Deployment.apps ")


def test_the_installed_command_exits_2_on_broken_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n")
    proc = subprocess.run(
        [str(GITMOOR), "health", "-f", str(bad), "-o", "json"],
        capture_output=True,
        text=True,
        env=_no_cluster_env(tmp_path),
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"error: {bad}:")
    assert "invalid YAML" in proc.stderr and "Traceback" not in proc.stderr
