"""``examples/ci/gitmoor-check.sh`` whole, with ``sh``, as a CI job runs it: lint
of a working tree, then ``gitmoor diff --local --all-apps -o markdown`` against
the local control plane, the markdown comment written to a file and the exit
codes passed through."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from support.apps import configmap, dump

if TYPE_CHECKING:
    from support.apps import AppEnv
    from support.cli import Gitmoor

SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "ci" / "gitmoor-check.sh"


def _check(gitmoor: Gitmoor, tree: Path, **env: str) -> subprocess.CompletedProcess[str]:
    sh = shutil.which("sh")
    assert sh is not None
    command = [
        sys.executable,
        "-m",
        "gitmoor.cli.main",
        "--kubeconfig",
        str(gitmoor.kubeconfig),
        "--apps-namespace",
        gitmoor.apps_namespace,
    ]
    return subprocess.run(
        [sh, str(SCRIPT), str(tree)],
        capture_output=True,
        text=True,
        cwd=tree,
        env={**gitmoor.env, "PATH": os.environ["PATH"], "GITMOOR": shlex.join(command), **env},
        timeout=180,
    )


async def test_lint_then_diff_of_the_touched_apps(env: AppEnv, gitmoor: Gitmoor) -> None:
    env.repo.commit({"web/settings.yaml": dump(configmap("settings", {"LOG_LEVEL": "info"}))})
    await env.create("web", path="web")
    assert (await env.sync("web")).ok
    tree = env.repo.path

    same = _check(gitmoor, tree)
    assert same.returncode == 0, same.stderr
    assert "lint exit=0" in same.stderr and "diff exit=0" in same.stderr
    assert "web" in (tree / "gitmoor-diff.md").read_text()

    # The pull request: a changed value. Lint is clean, the diff names the object.
    (tree / "web/settings.yaml").write_text(dump(configmap("settings", {"LOG_LEVEL": "debug"})))
    changed = _check(gitmoor, tree)
    assert changed.returncode == 0, changed.stderr  # differences are what a PR is for
    assert "diff exit=1" in changed.stderr
    comment = (tree / "gitmoor-diff.md").read_text()
    assert "ConfigMap" in comment and "settings" in comment and "+  LOG_LEVEL: debug" in comment
    assert _check(gitmoor, tree, GITMOOR_FAIL_ON_DIFF="1").returncode == 1

    # A broken manifest: lint's exit 1 passes through, and the diff still runs.
    (tree / "web/pod.yaml").write_text(
        dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "debug"},
                "spec": {
                    "containers": [
                        {
                            "name": "sh",
                            "image": "busybox:1.36",
                            "securityContext": {"privileged": True},
                        }
                    ]
                },
            }
        )
    )
    broken = _check(gitmoor, tree)
    assert broken.returncode == 1, broken.stderr
    assert "lint exit=1" in broken.stderr and "diff exit=1" in broken.stderr
    assert "GM104" in (tree / "gitmoor-lint.sarif").read_text()
