"""``examples/ci/``: the shell script any CI can call, run with ``sh`` against a
fixture repository (its lint half: exit codes and the SARIF file), and the
GitHub Actions workflow, read as GitHub reads it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ci"
SCRIPT = EXAMPLES / "gitmoor-check.sh"

CLEAN = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {LOG_LEVEL: info}
"""
PRIVILEGED = """\
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers:
  - name: shell
    image: busybox:1.36
    securityContext: {privileged: true}
"""


def _check(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    sh = shutil.which("sh")
    assert sh is not None
    return subprocess.run(
        [sh, str(SCRIPT), "."],
        capture_output=True,
        text=True,
        cwd=root,
        env={
            **os.environ,
            "GITMOOR": f"{shlex.quote(sys.executable)} -m gitmoor.cli.main",
            "GITMOOR_SKIP_DIFF": "1",
            **env,
        },
        timeout=120,
    )


def test_the_script_passes_lint_exit_codes_through_and_writes_sarif(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "apps" / "web").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "apps" / "web" / "settings.yaml").write_text(CLEAN)

    clean = _check(root)
    assert clean.returncode == 0, clean.stderr
    sarif = json.loads((root / "gitmoor-lint.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"] == []

    (root / "apps" / "web" / "debug.yaml").write_text(PRIVILEGED)
    (root / "out").mkdir()
    broken = _check(root, GITMOOR_SARIF="out/lint.sarif")
    assert broken.returncode == 1, broken.stderr
    results = json.loads((root / "out" / "lint.sarif").read_text())["runs"][0]["results"]
    hits = {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
        for r in results
    }
    assert ("GM104", "apps/web/debug.yaml") in hits
    # the human report goes to the log when lint fails
    assert "GM104" in broken.stderr and "lint exit=1" in broken.stderr

    usage = _check(root, GITMOOR_LINT_ARGS="--required-rule no-such-rule")
    assert usage.returncode == 2
    assert "'no-such-rule' is not a gitmoor lint policy rule" in usage.stderr


def test_the_workflow_uploads_sarif_and_comments_the_diff() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    # YAML 1.1 reads the key `on` as true; GitHub reads it as "on".
    assert workflow[True] == {"pull_request": {"branches": ["main"]}}
    lint, diff = workflow["jobs"]["lint"], workflow["jobs"]["diff"]
    assert lint["permissions"]["security-events"] == "write"
    runs = [s.get("run", "") for s in lint["steps"]]
    assert any("ci/gitmoor-check.sh" in r for r in runs)
    upload = next(s for s in lint["steps"] if "upload-sarif" in s.get("uses", ""))
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert upload["with"]["sarif_file"] == next(
        s["env"]["GITMOOR_SARIF"] for s in lint["steps"] if "gitmoor-check.sh" in s.get("run", "")
    )
    assert upload["if"] == "always()"
    assert diff["permissions"]["pull-requests"] == "write"
    comment = diff["steps"][-1]
    assert "gh pr comment" in comment["run"] and "gitmoor-diff.md" in comment["run"]
    diff_step = next(s for s in diff["steps"] if "gitmoor-check.sh" in s.get("run", ""))
    assert diff_step["env"]["GITMOOR_SKIP_LINT"] == "1"
    assert diff_step["env"]["GITMOOR_DIFF_MARKDOWN"] == "gitmoor-diff.md"
