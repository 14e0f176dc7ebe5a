"""`gitmoor app create|list|get|diff|sync|terminate-op|history|rollback|unpin|why|delete|set|suspend|resume`.

Applications, spelt like Argo CD's ``argocd app …``. The commands are thin: the
engine (:class:`gitmoor.engine.app.Engine`) and the store do the work, imported
inside each command so that ``gitmoor --help`` does not load them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from gitmoor.cli import app_remote
from gitmoor.cli._common import State, err, fail, make_engine, out, parse_bool, run, whoami
from gitmoor.model import GitmoorError, UserInputError
from gitmoor.model.application import (
    AppSource,
    Automated,
    Destination,
    HelmSource,
    application_manifest,
)
from gitmoor.model.redaction import Decryption

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.cli.diff_report import AppReport
    from gitmoor.engine import AppDeletion, Engine, LocalTree, SyncEvent, SyncResult, TreeNode
    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application

app_cmd = typer.Typer(
    help="Create, inspect, diff, sync, roll back and delete Applications.", no_args_is_help=True
)


#: ``-o`` of ``app diff`` and ``diff --local``
DiffFormat = Annotated[
    str,
    typer.Option(
        "--output",
        "-o",
        help="text (unified diffs) or markdown (a summary table and collapsible "
        "diffs, for a pull-request comment)",
    ),
]


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
    decryption_secret: Annotated[
        str,
        typer.Option(
            "--decryption-secret",
            metavar="SECRET",
            help="decrypt SOPS-encrypted files with the age keys (*.agekey entries) of this "
            "Secret in the apps namespace (spec.source.decryption; see `gitmoor secret`)",
        ),
    ] = "",
    upsert: Annotated[bool, typer.Option("--upsert", help="update the app if it exists")] = False,
    finalizer: Annotated[
        bool,
        typer.Option(
            "--finalizer/--no-finalizer",
            help="add resources-finalizer.gitmoor.io: when the app is deleted by any means "
            "(a parent app pruning it, kubectl delete), the controller deletes the objects it "
            "owns first (Argo CD's resources-finalizer). Without it only `app delete` cascades",
        ),
    ] = False,
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
            "--decryption-secret": bool(decryption_secret),
            "--finalizer": finalizer,
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
            decryption=Decryption(decryption_secret) if decryption_secret else None,
        ),
        Destination(namespace=dest_namespace, name=dest_name),
        project=project,
        automated=Automated(prune=auto_prune, self_heal=self_heal, allow_empty=allow_empty)
        if auto_sync
        else None,
        sync_options=tuple(sync_option or ()),
    )
    if finalizer:
        if app_remote.client() is not None:
            # The API's create body has no metadata to carry it: refuse rather than
            # create an app that silently keeps its objects when deleted.
            raise fail(
                "--finalizer reaches the cluster directly; it is not sent through --server yet"
            )
        from gitmoor.engine import RESOURCES_FINALIZER

        manifest["metadata"]["finalizers"] = [RESOURCES_FINALIZER]
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
    if (api := app_remote.client()) is not None:
        return app_remote.create(api, manifest, upsert)
    from gitmoor.engine import store

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
    if (api := app_remote.client()) is not None:
        return app_remote.list_apps(api, output_format)
    from gitmoor.cli import output
    from gitmoor.engine import store

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
    tree: Annotated[
        bool,
        typer.Option(
            "--tree",
            help="app of apps: show the app with the Applications and ApplicationSets it "
            "declares, and theirs (each with sync, health and its own object count); a "
            "cycle is marked, not followed",
        ),
    ] = False,
    depth: Annotated[
        int, typer.Option(min=0, help="with --tree, how many levels of children to show")
    ] = 5,
) -> None:
    """Show one Application: source, status, resources, last operation, conditions."""
    if tree:
        return _print_tree(name, output_format, depth)
    if (api := app_remote.client()) is not None:
        return app_remote.get_app(api, name, output_format, refresh)
    from gitmoor.cli import output
    from gitmoor.engine import store

    async def go(kube: KubeClient) -> Any:
        engine = make_engine(kube)
        a = await store.get_app(kube, name, State.namespace)
        if refresh:
            a, _ = await engine.refresh(a)
        # Every object, also those an app of more than 100 keeps in its inventory.
        resources = await engine.resources(a)
        return dataclasses.replace(a, raw={**a.raw, "status": {**a.status, "resources": resources}})

    output.print_app(out, run(go), output_format)


def _print_tree(name: str, output_format: str, depth: int) -> None:
    """``app get NAME --tree``: one line per app, children indented under their parent."""
    if output_format not in ("table", "wide", "json", "yaml"):
        raise fail(f"--output takes one of table, wide, json, yaml, not {output_format!r}")
    if app_remote.client() is not None:
        raise fail("--tree reads the cluster directly; it is not served through --server yet")
    from gitmoor.cli import output

    root: TreeNode = run(lambda kube: make_engine(kube).tree(name, depth=depth))
    if output_format in ("json", "yaml"):
        output.dump(out, root.to_dict(), output_format)
        return

    def line(node: TreeNode, prefix: str, branch: str) -> None:
        objects = "" if node.objects is None else f"  {node.objects} objects"
        note = f"  ({node.note})" if node.note else ""
        kind = "" if node.kind == "Application" else f"{node.kind} "
        out.print(
            f"{prefix}{branch}{kind}{node.name}  {node.sync}  {node.health}{objects}{note}",
            markup=False,
            highlight=False,
        )
        inner = prefix + ("" if not branch else ("   " if branch == "└─ " else "│  "))
        for i, child in enumerate(node.children):
            line(child, inner, "└─ " if i == len(node.children) - 1 else "├─ ")

    line(root, "", "")


@app_cmd.command("diff")
def app_diff(
    name: str,
    revision: Annotated[
        str | None,
        typer.Option(
            help="compare this revision instead of the target: a branch, a tag or a "
            "commit (its full SHA)"
        ),
    ] = None,
    output_format: DiffFormat = "text",
) -> None:
    """Show what a sync would change, as unified diffs.

    Secret values, and the fields the app's and its project's spec.redactions
    name, are masked (<redacted:…>): an unchanged value shows the same mask on
    both sides, a changed one two different masks, never the value.

    Exit code 0: no differences; 1: differences; 2: error (as `kubectl diff`).
    """
    check_diff_format(output_format)
    if (api := app_remote.client()) is not None:
        raise typer.Exit(app_remote.diff(api, name, revision, output_format))
    from gitmoor.engine import store

    async def go(kube: KubeClient) -> AppReport:
        engine = make_engine(kube)
        a = await store.get_app(kube, name, State.namespace)
        return await diff_report_of(engine, a, revision=revision)

    from gitmoor.cli.diff_report import show_reports

    report = run(go)
    raise typer.Exit(show_reports([report], output_format))


def check_diff_format(output_format: str) -> None:
    if output_format not in ("text", "markdown"):
        raise fail(f"unknown output format {output_format!r}: text or markdown")


async def diff_report_of(
    engine: Engine, app: Application, *, revision: str | None = None, local: LocalTree | None = None
) -> AppReport:
    """The app's diff at ``revision`` or of the working tree ``local``: what `app diff`
    and `diff --local` show, through the one engine path (``Engine.desired``, then
    ``Engine.diff``)."""
    from gitmoor.cli.diff_report import AppReport, changes_of
    from gitmoor.engine import LOCAL_REVISION, scrub_message

    desired = await engine.desired(app, revision, local=local)
    # The diff first: comparing teaches the app's Redactor the values a
    # warning (kustomize's, helm's) might quote.
    cmp = await engine.diff(app, desired=desired)
    warnings = tuple(scrub_message(app, w, desired.project) for w in desired.warnings)
    shown = desired.revision if desired.revision == LOCAL_REVISION else desired.revision[:12]
    return AppReport(app.name, shown, changes_of(cmp), warnings)


def _parse_resource(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise fail(
            f"--resource takes GROUP:KIND:NAME (GROUP empty for core kinds, e.g. :ConfigMap:cfg), not {spec!r}"
        )
    return parts[0], parts[1], parts[2]


def _printer(quiet: bool) -> Callable[[SyncEvent], None]:
    from gitmoor.engine import Action

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
        float,
        typer.Option(
            help="seconds to wait for the health of each wave (through a server: for the "
            "whole operation)"
        ),
    ] = 300.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the outcome")] = False,
    via_controller: Annotated[
        bool, typer.Option("--async", help="only request the sync; the controller runs it")
    ] = False,
    ignore_dependencies: Annotated[
        bool,
        typer.Option(
            "--ignore-dependencies",
            help="sync even though apps the app's spec.dependsOn names are not Synced and "
            "Healthy (without it such a sync is refused, naming them)",
        ),
    ] = False,
) -> None:
    """Sync an app: apply (server-side) wave by wave, wait for health, prune.

    An app whose spec.dependsOn names apps that are not Synced and Healthy at their
    target is not synced: the command says which ("waiting for db (Progressing)")
    and stops, unless --ignore-dependencies.

    Runs here and records the outcome in the app's status (operationState,
    history), as the controller would; --async requests it from the controller.
    Fields Git declares that another field manager holds are taken, each printed
    as a line ("took spec.replicas from kubectl").

    Through a server (after `gitmoor login`): the controller runs the sync and
    this command follows it until it ends (at most --timeout seconds), printing
    each change of its phase; --prune is then off unless given, as `argocd app sync`.
    """
    only = frozenset(_parse_resource(r) for r in resource) if resource else None
    if (api := app_remote.client()) is not None:
        return app_remote.sync(
            api,
            name,
            dry_run=dry_run,
            prune=prune,
            force_conflicts=force_conflicts,
            resources=sorted(only) if only else None,
            revision=revision,
            timeout=timeout,
            quiet=quiet,
            wait=not via_controller,
        )
    from gitmoor.engine import SyncOptions, store

    async def go(kube: KubeClient) -> SyncResult | None:
        a = await store.get_app(kube, name, State.namespace)
        auto = a.spec.sync_policy.automated
        do_prune = prune if prune is not None else bool(auto and auto.prune)
        if via_controller:
            if not dry_run:
                # Refused here, as the API server refuses it, rather than by the
                # controller after the command has returned.
                await make_engine(kube).check_window(a)
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
                    | ({} if force_conflicts is None else {"forceConflicts": force_conflicts})
                    | ({"ignoreDependencies": True} if ignore_dependencies else {}),
                    "initiatedBy": {"username": whoami()},
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
        return await make_engine(kube).sync(
            a,
            options,
            revision=revision,
            initiated_by=whoami(),
            progress=_printer(quiet),
            ignore_dependencies=ignore_dependencies,
        )

    result = run(go)
    if result is None:
        out.print(
            f"sync of {name} requested; the controller will run it (see `gitmoor app get {name}`)"
        )
        return
    _finish(result)


@app_cmd.command("terminate-op")
def app_terminate_op(
    name: Annotated[str, typer.Argument(help="the Application whose operation to stop")],
) -> None:
    """Ask the app's running operation to stop between steps (as `argocd app terminate-op`).

    Sets the operation's phase to Terminating; whoever runs it (the controller,
    or `gitmoor app sync` in another terminal) stops before its next step, and
    what it already applied stays applied. Exit code 1 when no operation is running.
    """
    if (api := app_remote.client()) is not None:
        return app_remote.terminate(api, name)
    from gitmoor.engine import store

    async def go(kube: KubeClient) -> bool:
        a = await store.get_app(kube, name, State.namespace)
        return await make_engine(kube).terminate(a)

    if not run(go):
        # Argo CD refuses the same request ("No operation is in progress"); a
        # script that meant to stop something learns that nothing was running.
        raise fail(f"no operation is running for {name}", 1)
    out.print(f"operation of {name} asked to terminate")


@app_cmd.command("history")
def app_history(
    name: str,
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """List the app's deployed revisions (the IDs that rollback takes)."""
    if (api := app_remote.client()) is not None:
        return app_remote.history(api, name, output_format)
    from rich.table import Table

    from gitmoor.cli import output
    from gitmoor.engine import store

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
        float,
        typer.Option(
            help="seconds to wait for the health of each wave (through a server: for the "
            "whole operation)"
        ),
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
    pin: Annotated[
        bool,
        typer.Option(
            "--pin",
            help="keep automated sync on and pin the app to that revision "
            "(spec.syncPolicy.pin): new commits are not applied until `gitmoor app unpin`",
        ),
    ] = False,
) -> None:
    """Sync the revision of a history entry, and switch automated sync off so the
    controller does not roll forward again (re-enable with `app set --auto-sync=true`).
    A pinned app is unpinned too (it says so): status then compares with the target.

    With --pin, automation stays on and the app is pinned to that revision instead:
    a new commit shows as "pinned at X; main is at Y (n commits ahead)" and is not
    applied; drift from the pinned revision is still healed (selfHeal);
    `gitmoor app unpin NAME` follows the branch again.

    Through a server, the controller runs it and this command follows it, as `app sync`."""
    if (api := app_remote.client()) is not None:
        return app_remote.rollback(
            api,
            name,
            history_id,
            prune=prune,
            force_conflicts=force_conflicts,
            timeout=timeout,
            quiet=quiet,
            pin=pin,
        )
    from gitmoor.engine import SyncOptions, store

    async def go(kube: KubeClient) -> SyncResult:
        a = await store.get_app(kube, name, State.namespace)
        if pin:
            err.print(
                f"{name} is pinned to history entry {history_id}; automated sync stays on. "
                f"`gitmoor app unpin {name}` follows the branch again"
            )
        else:
            if a.spec.sync_policy.automated is not None:
                err.print(
                    f"automated sync of {name} is switched off for the rollback; "
                    f"`gitmoor app set {name} --auto-sync=true` re-enables it"
                )
            if (old := a.spec.sync_policy.pin) is not None:
                err.print(
                    f"{name} is no longer pinned (was at {old.revision[:12]}): a rollback "
                    "without --pin removes the pin; `--pin` keeps the app pinned instead"
                )
        return await make_engine(kube).rollback(
            a,
            history_id,
            initiated_by=whoami(),
            progress=_printer(quiet),
            pin=pin,
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


@app_cmd.command("unpin")
def app_unpin(
    name: Annotated[str, typer.Argument(help="the Application pinned by `app rollback --pin`")],
) -> None:
    """Remove the app's pin (spec.syncPolicy.pin): it follows its target revision again,
    and automated sync applies the branch's newest commit."""
    if app_remote.client() is not None:
        raise fail(
            "unpin is not available through the server yet; run with --core and a kubeconfig",
            2,
        )
    from gitmoor.engine import store

    async def go(kube: KubeClient) -> bool:
        a = await store.get_app(kube, name, State.namespace)
        if a.spec.sync_policy.pin is None:
            return False
        await make_engine(kube).unpin(a)
        return True

    if not run(go):
        out.print(f"application {name} is not pinned")
        return
    out.print(f"application {name} unpinned: it follows its target revision again")


@app_cmd.command("why")
def app_why(
    name: str,
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="text, json or yaml")
    ] = "text",
) -> None:
    """Say why the app is, or is not, synced and healthy now, in a few lines.

    From its status, its dependencies (spec.dependsOn), its project's sync windows
    and its pin: suspended; pinned ("pinned at X; main is at Y (n commits ahead)");
    a sync window and until when; dependencies not ready; a failed commit not
    retried; a project refusal; a comparison error; a sync running and its step;
    drift with selfHeal off; the objects that are not healthy, with their
    messages; otherwise "Synced and Healthy at <revision>". The API
    (GET /api/v1/applications/NAME/why) and the web UI show the same text."""
    if output_format not in ("text", "json", "yaml"):
        raise fail(f"unknown output format {output_format!r}: use text, json or yaml", 2)
    if (api := app_remote.client()) is not None:
        return app_remote.why(api, name, output_format)
    from gitmoor.cli import output
    from gitmoor.engine import store

    async def go(kube: KubeClient) -> list[str]:
        a = await store.get_app(kube, name, State.namespace)
        return await make_engine(kube).why(a)

    lines = run(go)
    if output_format in ("json", "yaml"):
        output.dump(out, {"name": name, "lines": lines}, output_format)
        return
    for line in lines:
        out.print(escape(line))


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
    """Delete an Application, and with it the resources it deployed unless --cascade=false.

    If a resource cannot be deleted (an API error), the Application is kept and the
    command fails naming it: run it again once the cause is fixed. If the
    Application's destination cluster is no longer registered, the Application is
    deleted and its resources, which cannot be reached, are left there (as Argo CD
    does): the command says "left N objects on unreachable cluster X"."""
    do_cascade = parse_bool(cascade, "--cascade")
    if (api := app_remote.client()) is not None:
        return app_remote.delete(api, name, do_cascade)
    from gitmoor.engine import store

    async def go(kube: KubeClient) -> AppDeletion:
        a = await store.get_app(kube, name, State.namespace)
        return await make_engine(kube).delete(a, cascade=do_cascade)

    result = run(go)
    for ref in result.deleted:
        out.print(f"  deleted {ref}")
    for ref in result.left:
        out.print(f"  left {ref}")
    if result.note:
        out.print(result.note)
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
    """Change an Application's spec.

    Through a server (after `gitmoor login`), only the automation options: the
    API does not show the whole spec that changing a source field would replace."""
    if (api := app_remote.client()) is not None:
        given = {
            "--revision": revision,
            "--path": path,
            "--repo": repo,
            "--dest-namespace": dest_namespace,
        }
        return app_remote.set_app(
            api,
            name,
            spec_options=[flag for flag, value in given.items() if value is not None],
            auto_sync=None if auto_sync is None else parse_bool(auto_sync, "--auto-sync"),
            auto_prune=None if auto_prune is None else parse_bool(auto_prune, "--auto-prune"),
            self_heal=None if self_heal is None else parse_bool(self_heal, "--self-heal"),
        )
    from gitmoor.engine import store

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
        if auto_sync is not None and not parse_bool(auto_sync, "--auto-sync"):
            patch["syncPolicy"] = {"automated": None}
        elif auto_sync is not None or auto_prune is not None or self_heal is not None:
            if auto is None and auto_sync is None:
                raise UserInputError(f"{name} has no automated sync; add --auto-sync=true")
            patch["syncPolicy"] = {
                "automated": {
                    "prune": parse_bool(auto_prune, "--auto-prune")
                    if auto_prune is not None
                    else bool(auto and auto.prune),
                    "selfHeal": parse_bool(self_heal, "--self-heal")
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
    if (api := app_remote.client()) is not None:
        return app_remote.set_suspended(api, name, suspended)
    from gitmoor.engine import store

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
