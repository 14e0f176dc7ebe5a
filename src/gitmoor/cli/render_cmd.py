"""`gitmoor render PATH`: the YAML gitmoor would apply, rendered locally without a cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from gitmoor.cli._common import err, fail
from gitmoor.model import GitmoorError


def render(
    path: Annotated[
        Path, typer.Argument(help="the app's directory (plain YAML, kustomization or Helm chart)")
    ],
    root: Annotated[
        Path | None,
        typer.Option(
            help="repository root (default: the nearest folder above PATH holding .git, else PATH)"
        ),
    ] = None,
    release_name: Annotated[str, typer.Option(help="Helm release name")] = "release-name",
    namespace: Annotated[str, typer.Option(help="Helm --namespace")] = "",
    values: Annotated[
        list[str] | None,
        typer.Option("--values", "-f", help="Helm value file, relative to PATH (repeatable)"),
    ] = None,
) -> None:
    """Render PATH locally, without a cluster, and print the YAML gitmoor would apply."""
    from gitmoor.cli import output
    from gitmoor.render import RenderOptions, render_app

    target = path.resolve()
    repo_root = (root or _git_root(target) or target).resolve()
    try:
        rel = target.relative_to(repo_root).as_posix() or "."
        result = render_app(
            repo_root,
            rel,
            "local",
            RenderOptions(
                release_name=release_name, namespace=namespace, value_files=tuple(values or ())
            ),
        )
    except ValueError:
        raise fail(f"{path} is not inside the repository root {repo_root}") from None
    except GitmoorError as e:
        raise fail(str(e)) from None
    for w in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}", markup=True)
    sys.stdout.write(output.yaml_dump_all([m.obj for m in result.manifests]))


def _git_root(p: Path) -> Path | None:
    for d in [p, *p.parents]:
        if (d / ".git").exists():
            return d
    return None
