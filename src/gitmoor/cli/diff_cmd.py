"""`gitmoor diff --local PATH (--app NAME | --all-apps)`: a working tree against the cluster.

The pre-merge half of `gitmoor app diff`: render the files on disk instead of a
commit and compare them with the live objects exactly as a sync would, through
the same engine path (``Engine.desired(app, local=…)``, then ``Engine.diff``):
the app's project rules, decryption keys, ``prepare`` and the server-side
dry-run all apply, and Secrets are masked by the app's Redactor.

What PATH is, as Argo CD's ``argocd app diff --local PATH`` has it:

- with ``--app``, PATH is the app's directory. The render's path checks stop at
  the repository root, which is PATH minus the app's ``spec.source.path`` (PATH
  must end with it), or ``--local-repo-root`` (Argo CD's flag of that name);
- with ``--all-apps``, PATH is the repository root, and an app is picked when its
  ``spec.source.path`` is a directory under PATH and, when the working tree has
  an ``origin`` remote, its ``spec.source.repoURL`` names that same repository.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, err, fail, make_engine, run
from gitmoor.cli.app_cmd import DiffFormat, check_diff_format, diff_report_of
from gitmoor.cli.diff_report import show_reports

if TYPE_CHECKING:
    from gitmoor.cli.diff_report import AppReport
    from gitmoor.engine import LocalTree
    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application


def diff(
    local: Annotated[
        Path,
        typer.Option(
            "--local",
            help="the working tree to render: the app's directory with --app, the "
            "repository root with --all-apps",
            file_okay=False,
            exists=True,
            resolve_path=True,
        ),
    ],
    app_name: Annotated[
        str | None, typer.Option("--app", help="the Application to compare the working tree for")
    ] = None,
    all_apps: Annotated[
        bool,
        typer.Option(
            "--all-apps",
            help="every Application whose spec.source.path is a directory of the working "
            "tree (and whose repoURL is its origin remote, when it has one)",
        ),
    ] = False,
    local_repo_root: Annotated[
        Path | None,
        typer.Option(
            "--local-repo-root",
            help="the repository root, with --app (default: --local minus the app's "
            "spec.source.path); kustomize and helm read nothing outside it",
            file_okay=False,
            exists=True,
            resolve_path=True,
        ),
    ] = None,
    output_format: DiffFormat = "text",
) -> None:
    """Show what syncing a working tree would change, before it is merged.

    Renders the files under --local (not a commit) with the app's settings and
    decryption keys, then compares them with the live cluster by server-side
    dry-run, as `gitmoor app diff` does; Secret values are masked. Needs the
    kubeconfig path (a gitmoor server cannot read your working tree).

    Exit code 0: no differences; 1: differences; 2: error.
    """
    check_diff_format(output_format)
    if (app_name is None) == (not all_apps):
        raise fail("give either --app NAME or --all-apps")
    if all_apps and local_repo_root is not None:
        raise fail("--local-repo-root goes with --app; with --all-apps, --local is the root")
    from gitmoor.engine import store

    async def one(kube: KubeClient) -> list[AppReport]:
        assert app_name is not None
        engine = make_engine(kube)
        app = await store.get_app(kube, app_name, State.namespace)
        tree = local_tree(app, local, local_repo_root)
        return [await diff_report_of(engine, app, local=tree)]

    async def every(kube: KubeClient) -> list[AppReport]:
        from gitmoor.cli.diff_report import AppReport
        from gitmoor.engine import LocalTree, scrub_message
        from gitmoor.model import GitmoorError

        engine = make_engine(kube)
        picked = apps_in_tree(await store.list_apps(kube, State.namespace), local)
        reports: list[AppReport] = []
        for app in picked:
            tree = LocalTree(local, _app_path(app))
            try:
                reports.append(await diff_report_of(engine, app, local=tree))
            except GitmoorError as e:
                # One app's failure (its project refuses it, its render breaks)
                # does not hide the others' diffs; the exit code says 2.
                reports.append(AppReport(app.name, "", error=scrub_message(app, str(e))))
        return reports

    reports = run(one if app_name is not None else every)
    if not reports:
        err.print(f"no Application in {State.namespace} has its path in {local}")
        raise typer.Exit(0)
    raise typer.Exit(show_reports(reports, output_format))


def _app_path(app: Application) -> str:
    path = PurePosixPath(app.spec.source.path or ".")
    return "." if str(path) in ("", ".") else str(path)


def local_tree(app: Application, local: Path, root: Path | None) -> LocalTree:
    """The working tree of ``app`` at ``local`` (its directory): the repository root
    and the app's path inside it (see the module docstring)."""
    from gitmoor.engine import LocalTree
    from gitmoor.model import UserInputError

    if root is not None:
        if not local.is_relative_to(root):
            raise UserInputError(f"--local {local} is not inside --local-repo-root {root}")
        rel = local.relative_to(root).as_posix()
        return LocalTree(root, rel or ".")
    path = _app_path(app)
    if path == ".":
        return LocalTree(local, ".")
    parts = PurePosixPath(path).parts
    if len(local.parts) <= len(parts) or local.parts[-len(parts) :] != parts:
        raise UserInputError(
            f"--local {local} does not end with application {app.name}'s path {path!r}: "
            "give the app's directory, or the repository root as --local-repo-root"
        )
    return LocalTree(local.parents[len(parts) - 1], path)


def apps_in_tree(apps: list[Application], root: Path) -> list[Application]:
    """The apps ``--all-apps`` compares: path a directory under ``root``, and the
    repository the tree's ``origin`` names, when it has one."""
    from gitmoor.source import origin_url

    origin = origin_url(root)
    wanted = _identity(origin) if origin is not None else None
    picked = []
    for app in apps:
        target = (root / _app_path(app)).resolve()
        if not target.is_dir() or not target.is_relative_to(root):
            continue
        if wanted is not None and _identity(app.spec.source.repo_url) != wanted:
            continue
        picked.append(app)
    return picked


def _identity(url: str) -> str:
    """A repository's identity, for comparing an app's repoURL with the tree's
    origin: ``normalize_repo_url``; a local path (``git clone /srv/repo``) as the
    file:// URL it is."""
    from gitmoor.model import UserInputError
    from gitmoor.source import normalize_repo_url

    if url.startswith("/"):
        url = Path(url).as_uri()
    try:
        return normalize_repo_url(url)
    except (UserInputError, ValueError):
        return url
