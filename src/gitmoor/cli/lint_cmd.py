"""`gitmoor lint [PATH...]`: the pre-merge checks of a repository, without a cluster.

Exit codes, as linters (ruff, kube-linter) and ``kubectl diff`` use them: 0
when nothing fails, 1 when a finding fails (an error; a warning too with
``--strict``), 2 when lint itself cannot run (a usage error, a path outside
the repository, a broken ``.gitmoor-lint.yaml``).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gitmoor.cli._common import fail, out


class LintFormat(StrEnum):
    human = "human"
    json = "json"
    sarif = "sarif"
    junit = "junit"
    github = "github"


def lint(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="PATH",
            help="directories to lint: every app below them (a chart, a kustomization, a "
            "directory of manifests) is found and checked (default: the current directory)",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        LintFormat,
        typer.Option(
            "--output",
            "-o",
            help="human (grouped by file, coloured), json, sarif (SARIF 2.1.0 for code "
            "scanning), junit (JUnit XML for CI reports) or github (Actions annotations)",
        ),
    ] = LintFormat.human,
    strict: Annotated[
        bool, typer.Option("--strict", help="warnings fail the run too (exit 1)")
    ] = False,
    root: Annotated[
        Path | None,
        typer.Option(
            help="repository root: files are reported relative to it and "
            ".gitmoor-lint.yaml is read from it (default: the nearest folder above the "
            "first PATH holding .git, else that PATH)"
        ),
    ] = None,
) -> None:
    """Check YAML and policy rules of every app under PATH, rendered as gitmoor renders it.

    No cluster is needed; SOPS files are checked as they are, without keys.

    Exit 1 on errors (and warnings with --strict), 0 otherwise, 2 when lint cannot run.

    Turn rules off per object (annotation gitmoor.io/lint-ignore: RULE[,RULE])
    or per repository (.gitmoor-lint.yaml at the root: ignore with path globs, severity).
    """
    from gitmoor.lint import lint as run_lint
    from gitmoor.lint import output as formats
    from gitmoor.model import GitmoorError

    targets = [p.resolve() for p in (paths or [Path.cwd()])]
    for target in targets:
        if not target.is_dir():
            raise fail(f"{target}: not a directory")
    repo_root = (root or _git_root(targets[0]) or targets[0]).resolve()
    for target in targets:
        if not target.is_relative_to(repo_root):
            raise fail(f"{target} is not inside the repository root {repo_root}")
    try:
        report = run_lint(repo_root, targets)
    except GitmoorError as e:
        raise fail(str(e)) from None
    if output is LintFormat.human:
        formats.human(report, repo_root, out)
    else:
        text = {
            LintFormat.json: formats.to_json,
            LintFormat.sarif: formats.to_sarif,
            LintFormat.junit: formats.to_junit,
            LintFormat.github: formats.to_github,
        }[output](report)
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    failing = report.errors() + (report.warnings() if strict else 0)
    if failing:
        raise typer.Exit(1)


def _git_root(p: Path) -> Path | None:
    for d in [p, *p.parents]:
        if (d / ".git").exists():
            return d
    return None
