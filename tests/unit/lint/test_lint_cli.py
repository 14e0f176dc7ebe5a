"""`gitmoor lint` as a user runs it: a separate process, its output and exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def gitmoor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitmoor.cli.main", "lint", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ),  # PATH with kubectl and helm (conftest)
        timeout=120,
    )


def test_errors_exit_1_and_clean_exits_0(fixture_repo: Path) -> None:
    (fixture_repo / ".git").mkdir()  # the repository root, found from the path
    broken = gitmoor("apps/policy", cwd=fixture_repo)
    assert broken.returncode == 1, broken.stderr
    assert "apps/policy/privileged.yaml" in broken.stdout
    assert "GM104" in broken.stdout and "privileged: true" in broken.stdout
    clean = gitmoor("apps/clean", cwd=fixture_repo)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 error(s), 0 warning(s)" in clean.stdout


def test_strict_makes_warnings_fail(fixture_repo: Path) -> None:
    # The base holds one warning (a 'latest' image) and no error.
    base = fixture_repo / "apps" / "kustomized" / "base"
    lenient = gitmoor("-o", "json", str(base), "--root", str(fixture_repo), cwd=fixture_repo)
    assert lenient.returncode == 0, lenient.stderr
    assert [f["rule"] for f in json.loads(lenient.stdout)["findings"]] == ["GM102"]
    strict = gitmoor("--strict", str(base), "--root", str(fixture_repo), cwd=fixture_repo)
    assert strict.returncode == 1


def test_machine_formats_on_stdout(fixture_repo: Path) -> None:
    for fmt, head in (("sarif", '{\n  "$schema"'), ("junit", "<?xml"), ("github", "::")):
        done = gitmoor("-o", fmt, "--root", str(fixture_repo), str(fixture_repo), cwd=fixture_repo)
        assert done.returncode == 1
        assert done.stdout.startswith(head), (fmt, done.stdout[:80])


def test_usage_errors_exit_2(fixture_repo: Path) -> None:
    assert gitmoor("-o", "xml", ".", cwd=fixture_repo).returncode == 2
    missing = gitmoor("no-such-dir", cwd=fixture_repo)
    assert missing.returncode == 2
    assert "not a directory" in missing.stderr
    (fixture_repo / ".gitmoor-lint.yaml").write_text("ignore: [{rules: [nope]}]\n")
    bad_config = gitmoor("--root", ".", "apps/clean", cwd=fixture_repo)
    assert bad_config.returncode == 2
    assert "unknown lint rule 'nope'" in bad_config.stderr
