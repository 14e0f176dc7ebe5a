"""The `gitmoor` command.

Every command that talks to a cluster takes ``--kubeconfig``/``--context``
(default: ``$KUBECONFIG``, then ``~/.kube/config``, then the pod's service
account) and ``--apps-namespace`` (where Applications live, default gitmoor).

Exit codes: 0 success, 1 failure (and, for ``app diff``, "there are
differences", as ``kubectl diff``), 2 an error (bad input, cluster unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import gitmoor
from gitmoor.cli import output
from gitmoor.engine import store
from gitmoor.engine.app import Engine
from gitmoor.engine.clusters import ClusterRegistry
from gitmoor.engine.compare import DryRunCache, compare_app
from gitmoor.engine.repos import add_repo, list_repos, remove_repo
from gitmoor.engine.sync import Action, SyncEvent, SyncOptions, SyncResult
from gitmoor.kube import KubeClient, default_config
from gitmoor.model import GitmoorError, SyncStatus, UserInputError
from gitmoor.model.application import (
    DEFAULT_NAMESPACE,
    AppSource,
    Automated,
    Destination,
    HelmSource,
    application_manifest,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")

app = typer.Typer(
    name="gitmoor",
    help="GitOps continuous delivery: keep each cluster moored to its Git state.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app_cmd = typer.Typer(
    help="Create, inspect, diff, sync, roll back and delete Applications.", no_args_is_help=True
)
repo_cmd = typer.Typer(
    help="Credentials for Git repositories (stored as Kubernetes Secrets).", no_args_is_help=True
)
app.add_typer(app_cmd, name="app")
app.add_typer(repo_cmd, name="repo")


def _register_cluster_cmd() -> None:
    from gitmoor.cli.cluster_cmd import cluster_cmd
    from gitmoor.cli.proj_cmd import proj_cmd

    app.add_typer(cluster_cmd, name="cluster")
    app.add_typer(proj_cmd, name="proj")


def _register_health_cmd() -> None:
    from gitmoor.cli.health_cmd import health

    app.command("health")(health)


# Piped output keeps whole lines (tables at their natural width) for grep and scripts.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 10_000)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Ctx:
    kubeconfig: str | None
    context: str | None
    namespace: str
    verbose: bool
    clusters: ClusterRegistry | None = None


State = Ctx(None, None, DEFAULT_NAMESPACE, False)


def _engine(kube: KubeClient) -> Engine:
    """The engine for one command: apps in the selected namespace, destinations
    resolved through the registered clusters."""
    # A verdict cache for the command's life: the refresh after a sync then needs
    # no dry-run of what the sync itself just applied.
    return Engine(kube, namespace=State.namespace, clusters=State.clusters, dry_runs=DryRunCache())


@app.callback()
def _main(
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="kubeconfig context (default: current)")
    ] = None,
    apps_namespace: Annotated[
        str, typer.Option("--apps-namespace", "-N", help="namespace of the Applications")
    ] = DEFAULT_NAMESPACE,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log engine events (key=value) to stderr")
    ] = False,
    allow_file_repos: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-file-repos",
            metavar="DIR",
            help="allow file:// repositories under DIR (repeatable; also "
            "$GITMOOR_ALLOW_FILE_REPOS, ':'-separated); file:// is refused otherwise",
        ),
    ] = None,
) -> None:
    from gitmoor.source import allow_file_repos as allow_roots

    allow_roots(allow_file_repos or ())
    State.kubeconfig, State.context, State.namespace, State.verbose = (
        kubeconfig,
        context,
        apps_namespace,
        verbose,
    )
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", markup=True)
    return typer.Exit(code)


def run(fn: Callable[[KubeClient], Awaitable[T]]) -> T:
    """Run ``fn`` with a client of the selected cluster; GitmoorErrors become one sentence and exit 2."""

    async def main() -> T:
        cfg = default_config(State.kubeconfig, State.context)
        async with KubeClient(cfg) as kube:
            State.clusters = ClusterRegistry(kube, namespace=State.namespace)
            try:
                return await fn(kube)
            finally:
                await State.clusters.aclose()
                State.clusters = None

    try:
        return asyncio.run(main())
    except GitmoorError as e:
        raise fail(str(e)) from None


# ---------------------------------------------------------------- top level


@app.command()
def version() -> None:
    """Print gitmoor's version."""
    out.print(f"gitmoor {gitmoor.__version__}")


@app.command()
def install() -> None:
    """Install the Application and AppProject CRDs, create the Applications' namespace
    and the `default` project (everything permitted, as Argo CD's default; an existing
    one is left as it is)."""

    async def go(kube: KubeClient) -> bool:
        return await store.install(kube, State.namespace)

    created = run(go)
    out.print(
        "installed: CustomResourceDefinitions applications.gitmoor.io and "
        f"appprojects.gitmoor.io, namespace {State.namespace}, project default "
        + ("(created)" if created else "(kept as it is)")
    )


@app.command()
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


@app.command()
def controller(
    interval: Annotated[
        float,
        typer.Option(
            help="seconds between refreshes of an app (spec.syncPolicy.refreshInterval overrides)"
        ),
    ] = 180.0,
    workers: Annotated[int, typer.Option(help="apps processed at once")] = 4,
    listen: Annotated[
        str, typer.Option(help="address of the webhook/metrics server (HOST:PORT; empty: none)")
    ] = "127.0.0.1:8081",
    replica_id: Annotated[
        str,
        typer.Option(
            "--replica-id",
            help="share apps with other replicas under this id (a Lease each); empty: run alone",
        ),
    ] = "",
    lease_seconds: Annotated[
        int,
        typer.Option(help="with --replica-id: seconds before a dead replica's apps are taken over"),
    ] = 15,
    self_heal_debounce: Annotated[
        float, typer.Option(help="seconds between a sync and a self-heal of the same app")
    ] = 5.0,
    allow_file_repos: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-file-repos",
            metavar="DIR",
            help="allow file:// repositories under DIR (repeatable; also "
            "$GITMOOR_ALLOW_FILE_REPOS); file:// is refused otherwise",
        ),
    ] = None,
    webhook_allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--webhook-allow-unsigned",
            help="accept webhooks of providers with no secret configured (refused with 401 "
            "otherwise); such pushes never use the priority lane",
        ),
    ] = False,
    webhook_burst: Annotated[
        int,
        typer.Option(help="webhook refreshes of one repository allowed at once", min=1),
    ] = 5,
    webhook_interval: Annotated[
        float,
        typer.Option(
            help="then one webhook refresh per repository every this many seconds; pushes "
            "over the limit are answered 202 and coalesce into one delayed refresh (0: no limit)",
            min=0,
        ),
    ] = 10.0,
) -> None:
    """Run the controller: sync automated apps, heal drift, run requested operations,
    keep every app's status current; serve POST /api/webhook, GET /metrics, GET /healthz."""
    from gitmoor.controller.ratelimit import RefreshLimits
    from gitmoor.controller.service import serve_controller
    from gitmoor.source import allow_file_repos as allow_roots

    logging.getLogger().setLevel(logging.INFO)
    allow_roots(allow_file_repos or ())

    async def go(kube: KubeClient) -> None:
        await serve_controller(
            kube,
            State.namespace,
            interval=interval,
            workers=workers,
            listen=listen,
            replica_id=replica_id,
            lease_seconds=lease_seconds,
            self_heal_debounce=self_heal_debounce,
            webhook_allow_unsigned=webhook_allow_unsigned,
            webhook_limits=RefreshLimits(burst=webhook_burst, interval=webhook_interval),
        )

    with contextlib.suppress(KeyboardInterrupt):
        run(go)


# ---------------------------------------------------------------- app


def _bool(text: str, what: str) -> bool:
    if text.lower() in ("true", "yes", "1", "on"):
        return True
    if text.lower() in ("false", "no", "0", "off"):
        return False
    raise fail(f"{what} takes true or false, not {text!r}")


@app_cmd.command("create")
def app_create(
    name: Annotated[
        str | None,
        typer.Argument(help="the Application's name (with --from-argocd: default, the file's)"),
    ] = None,
    repo: Annotated[
        str | None,
        typer.Option(help="Git repository URL (https, ssh, git@host:org/repo, file://)"),
    ] = None,
    path: Annotated[str, typer.Option(help="path of the app inside the repository")] = ".",
    revision: Annotated[
        str, typer.Option(help="branch, tag, commit SHA or semver constraint over tags")
    ] = "HEAD",
    dest_namespace: Annotated[str, typer.Option(help="namespace to deploy into")] = "default",
    dest_name: Annotated[
        str, typer.Option(help="registered cluster name (default: this cluster)")
    ] = "",
    project: Annotated[
        str,
        typer.Option(
            help="the AppProject whose rules the app keeps (repositories, destinations, kinds; "
            "see `gitmoor proj`)"
        ),
    ] = "default",
    auto_sync: Annotated[
        bool, typer.Option("--auto-sync", help="sync automatically on changes")
    ] = False,
    auto_prune: Annotated[
        bool,
        typer.Option("--auto-prune", help="with --auto-sync, prune what Git no longer declares"),
    ] = False,
    self_heal: Annotated[
        bool, typer.Option("--self-heal", help="with --auto-sync, revert drift in the cluster")
    ] = False,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="with --auto-sync, allow syncing an empty render")
    ] = False,
    sync_option: Annotated[
        list[str] | None,
        typer.Option("--sync-option", help="e.g. CreateNamespace=true (repeatable)"),
    ] = None,
    helm_release: Annotated[
        str, typer.Option(help="Helm release name (default: the app's name)")
    ] = "",
    helm_values: Annotated[
        list[str] | None, typer.Option("--values", help="Helm value file in the repo (repeatable)")
    ] = None,
    upsert: Annotated[bool, typer.Option("--upsert", help="update the app if it exists")] = False,
    from_argocd: Annotated[
        Path | None,
        typer.Option(
            "--from-argocd",
            metavar="FILE",
            help="convert the Argo CD Application (argoproj.io/v1alpha1) in FILE: source, "
            "Helm values, destination, project, syncPolicy, ignoreDifferences; prints a "
            "warning line for each field not carried over and refuses fields gitmoor cannot "
            "honour (several sources, plugins, Jsonnet, Helm repository charts). Only NAME "
            "and --upsert combine with it",
        ),
    ] = None,
) -> None:
    """Create an Application, from options or from an Argo CD Application (--from-argocd)."""
    if from_argocd is not None:
        given = {
            "--repo": repo is not None,
            "--path": path != ".",
            "--revision": revision != "HEAD",
            "--dest-namespace": dest_namespace != "default",
            "--dest-name": bool(dest_name),
            "--project": project != "default",
            "--auto-sync": auto_sync,
            "--auto-prune": auto_prune,
            "--self-heal": self_heal,
            "--allow-empty": allow_empty,
            "--sync-option": bool(sync_option),
            "--helm-release": bool(helm_release),
            "--values": bool(helm_values),
        }
        if any(given.values()):
            flags = ", ".join(flag for flag, on in given.items() if on)
            raise fail(f"--from-argocd takes the whole app from FILE; leave out {flags}")
        from gitmoor.cli.argocd import convert_argocd, load_argocd_file

        try:
            converted = convert_argocd(
                load_argocd_file(from_argocd), apps_namespace=State.namespace, name=name
            )
        except GitmoorError as e:
            raise fail(str(e)) from None
        for w in converted.warnings:
            err.print(f"[yellow]warning:[/yellow] {w}", markup=True)
        _save_app(converted.manifest, upsert)
        return
    if name is None or repo is None:
        raise fail("app create needs NAME and --repo (or --from-argocd FILE)")
    manifest = application_manifest(
        name,
        State.namespace,
        AppSource(
            repo_url=repo,
            path=path,
            target_revision=revision,
            helm=HelmSource(release_name=helm_release, value_files=tuple(helm_values or ())),
        ),
        Destination(namespace=dest_namespace, name=dest_name),
        project=project,
        automated=Automated(prune=auto_prune, self_heal=self_heal, allow_empty=allow_empty)
        if auto_sync
        else None,
        sync_options=tuple(sync_option or ()),
    )
    _save_app(manifest, upsert)


def _check_repo_url(url: str) -> None:
    """Refuse a malformed URL or one with credentials before it is stored in a spec."""
    from gitmoor.source import check_repo_url

    try:
        check_repo_url(url)
    except GitmoorError as e:
        raise fail(str(e)) from None


def _save_app(manifest: dict[str, Any], upsert: bool) -> None:
    _check_repo_url(str(((manifest.get("spec") or {}).get("source") or {}).get("repoURL") or ""))

    async def go(kube: KubeClient) -> None:
        await store.save_app(kube, manifest, upsert=upsert)

    run(go)
    name = manifest["metadata"]["name"]
    out.print(f"application {name} {'saved' if upsert else 'created'}")


@app_cmd.command("list")
def app_list(
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, wide, json or yaml")
    ] = "table",
) -> None:
    """List Applications with their sync and health status."""
    apps = run(lambda kube: store.list_apps(kube, State.namespace))
    output.print_apps(out, apps, output_format)


@app_cmd.command("get")
def app_get(
    name: str,
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, wide, json or yaml")
    ] = "table",
    refresh: Annotated[
        bool, typer.Option("--refresh", help="recompute status from Git and the cluster first")
    ] = False,
) -> None:
    """Show one Application: source, status, resources, last operation, conditions."""

    async def go(kube: KubeClient) -> Any:
        a = await store.get_app(kube, name, State.namespace)
        if refresh:
            a, _ = await _engine(kube).refresh(a)
        return a

    output.print_app(out, run(go), output_format)


@app_cmd.command("diff")
def app_diff(
    name: str,
    revision: Annotated[
        str | None, typer.Option(help="compare this revision instead of the target")
    ] = None,
) -> None:
    """Show what a sync would change, as unified diffs (Secret values masked).

    Exit code 0: no differences; 1: differences; 2: error (as `kubectl diff`).
    """

    async def go(kube: KubeClient) -> int:
        from gitmoor.engine.app import inventory

        engine = _engine(kube)
        a = await store.get_app(kube, name, State.namespace)
        desired = await engine.desired(a, revision)
        for w in desired.warnings:
            err.print(f"[yellow]warning:[/yellow] {w}", markup=True)
        cmp = await compare_app(
            a, desired.revision, desired.manifests, await engine.dest(a), inventory(a)
        )
        changed = 0
        for r in cmp.resources:
            if r.sync is SyncStatus.SYNCED:
                continue
            changed += 1
            if r.requires_pruning:
                out.print(
                    f"[bold]===== {r.ref} (requires pruning: no longer in Git) =====[/bold]",
                    markup=True,
                )
            elif r.health.status.value == "Missing":
                out.print(
                    f"[bold]===== {r.ref} (missing: will be created) =====[/bold]", markup=True
                )
            elif r.message:
                out.print(f"[bold]===== {r.ref} ({r.message}) =====[/bold]", markup=True)
            if r.diff is not None and r.diff.diff:
                output.print_diff(out, r.diff.diff)
        summary = f"{changed} object(s) differ" if changed else "no differences"
        err.print(f"{summary} at revision {desired.revision[:12]}")
        return 1 if changed else 0

    raise typer.Exit(run(go))


def _parse_resource(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise fail(
            f"--resource takes GROUP:KIND:NAME (GROUP empty for core kinds, e.g. :ConfigMap:cfg), not {spec!r}"
        )
    return parts[0], parts[1], parts[2]


def _printer(quiet: bool) -> Callable[[SyncEvent], None]:
    styles = {
        Action.CREATED: "green",
        Action.CONFIGURED: "yellow",
        Action.UNCHANGED: "dim",
        Action.PRUNED: "magenta",
        Action.PRUNE_SKIPPED: "dim",
        Action.FAILED: "red",
        Action.HOOK_SUCCEEDED: "green",
        Action.HOOK_FAILED: "red",
    }

    def show(ev: SyncEvent) -> None:
        if ev.kind == "warning":
            # Even when quiet: an annotation overruled or ignored changes what the sync does.
            err.print(f"[yellow]warning:[/yellow] {ev.message}", markup=True)
            return
        if quiet:
            return
        if ev.kind == "wave":
            out.print(f"[bold]{ev.message}[/bold]", markup=True)
        elif ev.result is not None:
            style = styles.get(ev.result.action, "")
            # Fields taken follow, one line each ("taken" events), so grep finds them.
            shown = ev.result.message if not ev.result.taken else ""
            if ev.result.taken and ev.result.message.startswith("dry run"):
                shown = "dry run"
            msg = f" — {shown}" if shown else ""
            # Escaped: server messages and field paths carry brackets
            # (containers[name="web"]) that rich would take for markup.
            out.print(
                f"  [{style}]{ev.result.action.value:<14}[/{style}] "
                + escape(f"{ev.result.ref}{msg}"),
                markup=True,
            )
        else:
            out.print(f"  {ev.message}", markup=False)

    return show


def _finish(result: SyncResult) -> None:
    if result.ok:
        out.print(
            f"[green]{result.phase.value}[/green]: "
            + escape(f"{result.message} (revision {result.revision[:12]})"),
            markup=True,
        )
        return
    err.print(f"[red]{result.phase.value}[/red]: " + escape(result.message), markup=True)
    raise typer.Exit(1 if result.phase.value == "Failed" else 2)


@app_cmd.command("sync")
def app_sync(
    name: str,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would change; write nothing")
    ] = False,
    prune: Annotated[
        bool | None,
        typer.Option(
            "--prune/--no-prune",
            help="delete what Git no longer declares (default: the app's automated.prune)",
        ),
    ] = None,
    force_conflicts: Annotated[
        bool | None,
        typer.Option(
            "--force-conflicts/--no-force-conflicts",
            help="take the fields Git declares from other field managers (kubectl scale, "
            "kubectl edit) and print each taken field; the default, as in Argo CD and Flux, "
            "unless the app's sync options say ForceConflicts=false. --no-force-conflicts "
            "refuses instead: the sync fails naming each field and its manager",
            show_default=False,
        ),
    ] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", help="sync only GROUP:KIND:NAME (repeatable)")
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="sync this revision instead of the target")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="seconds to wait for the health of each wave")
    ] = 300.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the outcome")] = False,
    via_controller: Annotated[
        bool, typer.Option("--async", help="only request the sync; the controller runs it")
    ] = False,
) -> None:
    """Sync an app: apply (server-side) wave by wave, wait for health, prune.

    Runs here and records the outcome in the app's status (operationState,
    history), as the controller would; --async requests it from the controller.
    Fields Git declares that another field manager holds are taken, each printed
    as a line ("took spec.replicas from kubectl").
    """
    only = frozenset(_parse_resource(r) for r in resource) if resource else None

    async def go(kube: KubeClient) -> SyncResult | None:
        a = await store.get_app(kube, name, State.namespace)
        auto = a.spec.sync_policy.automated
        do_prune = prune if prune is not None else bool(auto and auto.prune)
        if via_controller:
            await store.set_operation(
                kube,
                a,
                {
                    "sync": {
                        "revision": revision or a.spec.source.target_revision,
                        "prune": do_prune,
                        "dryRun": dry_run,
                        "resources": [{"group": g, "kind": k, "name": n} for g, k, n in only or ()],
                    }
                    # Only when given: absent, the controller follows the app's choice.
                    | ({} if force_conflicts is None else {"forceConflicts": force_conflicts}),
                    "initiatedBy": {"username": _whoami()},
                },
            )
            return None
        options = SyncOptions.for_app(
            a,
            prune=do_prune,
            dry_run=dry_run,
            force_conflicts=force_conflicts,
            only=only,
            timeout=timeout,
        )
        return await _engine(kube).sync(
            a, options, revision=revision, initiated_by=_whoami(), progress=_printer(quiet)
        )

    result = run(go)
    if result is None:
        out.print(
            f"sync of {name} requested; the controller will run it (see `gitmoor app get {name}`)"
        )
        return
    _finish(result)


def _whoami() -> str:
    return os.environ.get("GITMOOR_USER") or os.environ.get("USER") or "cli"


@app_cmd.command("history")
def app_history(
    name: str,
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """List the app's deployed revisions (the IDs that rollback takes)."""
    a = run(lambda kube: store.get_app(kube, name, State.namespace))
    history = list(a.status.get("history") or [])
    if output_format in ("json", "yaml"):
        output.dump(out, history, output_format)
        return
    t = Table("ID", "DEPLOYED AT", "REVISION", "INITIATED BY", box=None)
    for h in reversed(history):
        t.add_row(
            str(h.get("id")),
            str(h.get("deployedAt", "")),
            str(h.get("revision", ""))[:12],
            str(h.get("initiatedBy", "")),
        )
    out.print(t)


@app_cmd.command("rollback")
def app_rollback(
    name: str,
    history_id: Annotated[int, typer.Argument(help="history ID (see `gitmoor app history`)")],
    prune: Annotated[
        bool, typer.Option("--prune/--no-prune", help="delete what that revision does not declare")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="seconds to wait for the health of each wave")
    ] = 300.0,
    force_conflicts: Annotated[
        bool | None,
        typer.Option(
            "--force-conflicts/--no-force-conflicts",
            help="take fields that other field managers hold (the default unless the app "
            "says ForceConflicts=false); --no-force-conflicts fails on such a conflict",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Sync the revision of a history entry, and switch automated sync off so the
    controller does not roll forward again (re-enable with `app set --auto-sync=true`)."""

    async def go(kube: KubeClient) -> SyncResult:
        a = await store.get_app(kube, name, State.namespace)
        if a.spec.sync_policy.automated is not None:
            err.print(
                f"automated sync of {name} is switched off for the rollback; "
                f"`gitmoor app set {name} --auto-sync=true` re-enables it"
            )
        return await _engine(kube).rollback(
            a,
            history_id,
            initiated_by=_whoami(),
            progress=_printer(quiet),
            # allowEmpty off: a rollback switches automation (and its policy) off.
            options=SyncOptions.for_app(
                a,
                prune=prune,
                timeout=timeout,
                allow_empty=False,
                force_conflicts=force_conflicts,
            ),
        )

    _finish(run(go))


@app_cmd.command("delete")
def app_delete(
    name: str,
    cascade: Annotated[
        str,
        typer.Option(
            help="true: also delete the app's resources (only those it owns); false: keep them"
        ),
    ] = "true",
) -> None:
    """Delete an Application, and with it the resources it deployed unless --cascade=false."""
    do_cascade = _bool(cascade, "--cascade")

    async def go(kube: KubeClient) -> list[Any]:
        a = await store.get_app(kube, name, State.namespace)
        return await _engine(kube).delete(a, cascade=do_cascade)

    deleted = run(go)
    for ref in deleted:
        out.print(f"  deleted {ref}")
    out.print(f"application {name} deleted" + ("" if do_cascade else " (its resources were kept)"))


@app_cmd.command("set")
def app_set(
    name: str,
    revision: Annotated[str | None, typer.Option(help="targetRevision")] = None,
    path: Annotated[str | None, typer.Option(help="source path")] = None,
    repo: Annotated[str | None, typer.Option(help="source repoURL")] = None,
    dest_namespace: Annotated[str | None, typer.Option(help="destination namespace")] = None,
    auto_sync: Annotated[str | None, typer.Option("--auto-sync", help="true or false")] = None,
    auto_prune: Annotated[str | None, typer.Option("--auto-prune", help="true or false")] = None,
    self_heal: Annotated[str | None, typer.Option("--self-heal", help="true or false")] = None,
) -> None:
    """Change an Application's spec."""
    source: dict[str, Any] = {}
    if revision is not None:
        source["targetRevision"] = revision
    if path is not None:
        source["path"] = path
    if repo is not None:
        _check_repo_url(repo)
        source["repoURL"] = repo
    patch: dict[str, Any] = {}
    if source:
        patch["source"] = source
    if dest_namespace is not None:
        patch["destination"] = {"namespace": dest_namespace}

    async def go(kube: KubeClient) -> None:
        a = await store.get_app(kube, name, State.namespace)
        auto = a.spec.sync_policy.automated
        if auto_sync is not None and not _bool(auto_sync, "--auto-sync"):
            patch["syncPolicy"] = {"automated": None}
        elif auto_sync is not None or auto_prune is not None or self_heal is not None:
            if auto is None and auto_sync is None:
                raise UserInputError(f"{name} has no automated sync; add --auto-sync=true")
            patch["syncPolicy"] = {
                "automated": {
                    "prune": _bool(auto_prune, "--auto-prune")
                    if auto_prune is not None
                    else bool(auto and auto.prune),
                    "selfHeal": _bool(self_heal, "--self-heal")
                    if self_heal is not None
                    else bool(auto and auto.self_heal),
                    "allowEmpty": bool(auto and auto.allow_empty),
                }
            }
        if not patch:
            raise UserInputError("nothing to set: give at least one option")
        await store.patch_spec(kube, a, patch)

    run(go)
    out.print(f"application {name} updated")


def _set_suspended(name: str, suspended: bool) -> None:
    async def go(kube: KubeClient) -> None:
        a = await store.get_app(kube, name, State.namespace)
        await store.patch_spec(kube, a, {"syncPolicy": {"suspended": suspended}})

    run(go)


@app_cmd.command("suspend")
def app_suspend(name: str) -> None:
    """Pause the app's automation (automated sync and self-heal); status keeps being refreshed."""
    _set_suspended(name, True)
    out.print(
        f"application {name} suspended: no automated sync or self-heal until `gitmoor app resume {name}`"
    )


@app_cmd.command("resume")
def app_resume(name: str) -> None:
    """Resume the app's automation after `app suspend`."""
    _set_suspended(name, False)
    out.print(f"application {name} resumed")


# ---------------------------------------------------------------- repo


@repo_cmd.command("add")
def repo_add(
    url: Annotated[
        str, typer.Argument(help="repository URL, or a prefix shared by many repositories")
    ],
    username: Annotated[str | None, typer.Option(help="https user name")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="https password or token (or $GITMOOR_REPO_PASSWORD)",
            envvar="GITMOOR_REPO_PASSWORD",
        ),
    ] = None,
    ssh_private_key_path: Annotated[Path | None, typer.Option(help="ssh private key file")] = None,
    known_hosts_path: Annotated[
        Path | None, typer.Option(help="OpenSSH known_hosts file for the server")
    ] = None,
    insecure_ignore_host_key: Annotated[
        bool, typer.Option("--insecure-ignore-host-key", help="skip ssh host key checks")
    ] = False,
    project: Annotated[
        str,
        typer.Option(
            help="only this project's apps use these credentials (they win over unscoped "
            "ones for that project's apps; other projects never use them)"
        ),
    ] = "",
) -> None:
    """Store credentials for a repository URL (prefix) as a labelled Secret."""
    from gitmoor.source import parse_repo_url

    try:
        parse_repo_url(url)
    except GitmoorError as e:
        raise fail(str(e)) from None
    key = ssh_private_key_path.read_text() if ssh_private_key_path else None
    known = known_hosts_path.read_text() if known_hosts_path else None

    async def go(kube: KubeClient) -> str:
        return await add_repo(
            kube,
            url,
            username=username,
            password=password,
            ssh_private_key=key,
            known_hosts=known,
            insecure_ignore_host_key=insecure_ignore_host_key,
            namespace=State.namespace,
            project=project,
        )

    secret = run(go)
    scope = f" for project {project}" if project else ""
    out.print(f"repository {url} added{scope} (Secret {State.namespace}/{secret})")


@repo_cmd.command("list")
def repo_list(
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """List repositories with stored credentials (never the credentials themselves)."""
    repos = run(lambda kube: list_repos(kube, State.namespace))
    if output_format in ("json", "yaml"):
        output.dump(
            out,
            [
                {"url": r.url, "auth": r.auth, "secret": r.name}
                | ({"project": r.project} if r.project else {})
                for r in repos
            ],
            output_format,
        )
        return
    t = Table("URL", "AUTH", "PROJECT", "SECRET", box=None)
    for r in repos:
        t.add_row(r.url, r.auth, r.project or "-", r.name)
    out.print(t)


@repo_cmd.command("rm")
def repo_rm(
    url: str,
    project: Annotated[
        str, typer.Option(help="remove the credentials scoped to this project")
    ] = "",
) -> None:
    """Remove a repository's credentials."""
    if not run(lambda kube: remove_repo(kube, url, State.namespace, project)):
        raise fail(
            f"no credentials stored for {url}" + (f" in project {project}" if project else ""), 1
        )
    out.print(f"repository {url} removed")


_register_cluster_cmd()
_register_health_cmd()


def main() -> None:
    app()


if __name__ == "__main__":
    # Run the copy imported under its own name: under `python -m` this file is
    # __main__, a second module whose State the command groups in other modules
    # (cluster_cmd, proj_cmd import gitmoor.cli.main) would not see.
    from gitmoor.cli.main import main as _imported_main

    _imported_main()


__all__ = ["app", "json"]
