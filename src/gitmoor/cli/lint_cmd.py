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
from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import fail, out

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.lint import LintReport


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
    required_rule: Annotated[
        list[str] | None,
        typer.Option(
            "--required-rule",
            metavar="RULE",
            help="a policy rule the apps' project requires (its spec.requiredLintRules; "
            "repeatable, or comma-separated): its findings are errors, and neither the "
            "gitmoor.io/lint-ignore annotation nor .gitmoor-lint.yaml waives them, as at sync time",
        ),
    ] = None,
    kubernetes_version: Annotated[
        str | None,
        typer.Option(
            "--kubernetes-version",
            metavar="X.Y",
            help="check objects against the OpenAPI schemas of this Kubernetes version, "
            "shipped with gitmoor (default: the newest shipped; an unknown one lists them)",
            show_default=False,
        ),
    ] = None,
    compare_overlays: Annotated[
        bool,
        typer.Option(
            "--compare-overlays",
            help="instead of the checks: for each base with several kustomize overlays "
            "under PATH, a table of what differs between them (images per container, "
            "replicas, resource requests and limits, ConfigMap data; Secret keys only, "
            "never values); -o human or json",
        ),
    ] = False,
    server_dry_run: Annotated[
        bool,
        typer.Option(
            "--server-dry-run",
            help="after the offline checks, send every rendered object to the cluster of "
            "--kubeconfig/--context (global options) as a server-side apply with dryRun=All: "
            "admission, quotas, validation rules and served CRDs judge it, nothing is "
            "stored; each refusal is an error (GM301) with the server's message, Secret "
            "values masked; an unreachable cluster exits 2",
        ),
    ] = False,
    dry_run_namespace: Annotated[
        str,
        typer.Option(
            "--dry-run-namespace",
            metavar="NS",
            help="with --server-dry-run: the namespace of namespaced objects that name none",
        ),
    ] = "default",
    root: Annotated[
        Path | None,
        typer.Option(
            help="repository root: files are reported relative to it and "
            ".gitmoor-lint.yaml is read from it (default: the nearest folder above the "
            "first PATH holding .git, else that PATH)"
        ),
    ] = None,
) -> None:
    """Check YAML, OpenAPI schemas and policy rules of every app under PATH, rendered as gitmoor renders it.

    No cluster is needed; SOPS files are checked as they are, without keys.
    Objects are checked against the Kubernetes schemas shipped with gitmoor
    (--kubernetes-version) and custom resources against the CRDs found under PATH.

    With --server-dry-run the cluster of --kubeconfig also judges every object
    (server-side dry-run: admission, quotas, validation; nothing is stored).

    Exit 1 on errors (and warnings with --strict), 0 otherwise, 2 when lint cannot run.

    Turn rules off per object (annotation gitmoor.io/lint-ignore: RULE[,RULE])
    or per repository (.gitmoor-lint.yaml at the root: ignore with path globs, severity).
    """
    from gitmoor.lint import lint as run_lint
    from gitmoor.lint import output as formats
    from gitmoor.lint.required import required_rules
    from gitmoor.model import GitmoorError

    targets = [p.resolve() for p in (paths or [Path.cwd()])]
    for target in targets:
        if not target.is_dir():
            raise fail(f"{target}: not a directory")
    repo_root = (root or _git_root(targets[0]) or targets[0]).resolve()
    for target in targets:
        if not target.is_relative_to(repo_root):
            raise fail(f"{target} is not inside the repository root {repo_root}")
    if compare_overlays and server_dry_run:
        raise fail("--compare-overlays and --server-dry-run do not go together")
    if compare_overlays:
        raise typer.Exit(_compare_overlays(repo_root, targets, output))
    try:
        names = [n for given in required_rule or () for n in given.split(",") if n.strip()]
        report = run_lint(
            repo_root,
            targets,
            required=required_rules(names, "--required-rule"),
            kubernetes_version=kubernetes_version,
        )
    except GitmoorError as e:
        raise fail(str(e)) from None
    if server_dry_run:
        _server_dry_run(report, dry_run_namespace)
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


def _server_dry_run(report: LintReport, namespace: str) -> None:
    """Add the cluster's refusals to ``report``; exit 2 when the cluster cannot
    answer: a pull request must not pass on checks that did not run."""
    from gitmoor.cli._common import run
    from gitmoor.lint import server_dry_run
    from gitmoor.model import GitmoorError

    async def check(kube: KubeClient) -> None:
        try:
            await server_dry_run(kube, report, namespace=namespace)
        except GitmoorError as e:
            raise GitmoorError(f"--server-dry-run: {e}") from e

    run(check)


def _compare_overlays(root: Path, targets: list[Path], output: LintFormat) -> int:
    """Print the overlay comparison; 1 when an overlay does not render, else 0
    (differences are information: which ones are intended is the reader's call)."""
    import json

    from rich.markup import escape
    from rich.table import Table

    from gitmoor.lint.overlays import column_names, compare_overlays
    from gitmoor.model import GitmoorError

    if output not in (LintFormat.human, LintFormat.json):
        raise fail("--compare-overlays prints -o human or -o json")
    try:
        groups = compare_overlays(root, targets)
    except GitmoorError as e:
        raise fail(str(e)) from None
    broken = any(g.errors for g in groups)
    if output is LintFormat.json:
        sys.stdout.write(json.dumps({"groups": [g.to_dict() for g in groups]}, indent=2) + "\n")
        return 1 if broken else 0
    if not groups:
        out.print("no base with two or more overlays under the given paths")
    for group in groups:
        names = column_names(group.overlays)
        out.print(
            f"[bold]{escape(group.base)}[/bold]: {len(group.overlays)} overlays "
            f"({escape(', '.join(group.overlays))})"
        )
        for overlay, message in group.errors.items():
            out.print(
                f"  [red]{escape(overlay)} does not render:[/red] {escape(message)}", markup=True
            )
        if not group.differences:
            out.print("  no differences in images, replicas, resources or config")
            continue
        table = Table("object", "field", *map(escape, names))
        for d in group.differences:
            cells = (d.object, d.field, *(d.values.get(o, "") for o in group.overlays))
            table.add_row(*map(escape, cells))
        out.print(table)
    return 1 if broken else 0


def _git_root(p: Path) -> Path | None:
    for d in [p, *p.parents]:
        if (d / ".git").exists():
            return d
    return None
