"""`gitmoor proj create|get|list|delete|add-destination|add-source|allow-cluster-resource|deny-cluster-resource|windows`.

AppProjects, shaped and spelt like Argo CD's (``argocd proj …``): what the
Applications of a project may use. The rules themselves are enforced by the
engine (``gitmoor.engine.projects``); these commands only edit the objects.

Edits of a list (a destination, a source, a kind) read the project, change it
and write it back with its resourceVersion, so that two people editing one
project at once both land instead of one list replacing the other.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, fail, out, run
from gitmoor.model import GitmoorError, UserInputError
from gitmoor.model.project import (
    DEFAULT_PROJECT,
    AppProject,
    DestinationServiceAccount,
    GroupKind,
    ProjectDestination,
)
from gitmoor.model.redaction import Decryption

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.kube import KubeClient

proj_cmd = typer.Typer(
    help="AppProjects: the repositories, destinations and kinds a project's Applications "
    "may use, and the ServiceAccount their syncs impersonate (Argo CD's AppProject).",
    no_args_is_help=True,
)


def _destination(cluster: str, namespace: str) -> ProjectDestination:
    """A cluster is a registered name (``in-cluster`` for the home one) or, when it
    holds ``://``, an API server URL (Argo CD's ``server``); both may be globs."""
    if "://" in cluster:
        return ProjectDestination(namespace=namespace, server=cluster)
    return ProjectDestination(namespace=namespace, name=cluster)


def _parse_dest(text: str) -> ProjectDestination:
    cluster, sep, namespace = text.partition(",")
    if not sep or not cluster or not namespace:
        raise UserInputError(
            f"--dest takes CLUSTER,NAMESPACE (e.g. in-cluster,team-a-*), not {text!r}"
        )
    return _destination(cluster, namespace)


def _parse_sa(text: str) -> DestinationServiceAccount:
    parts = text.split(",")
    if len(parts) != 3 or not all(parts):
        raise UserInputError(
            "--dest-service-account takes CLUSTER,NAMESPACE,SERVICEACCOUNT "
            f"(e.g. in-cluster,team-a-*,deployer), not {text!r}"
        )
    cluster, namespace, account = parts
    if "://" in cluster:
        return DestinationServiceAccount(account, namespace=namespace, server=cluster)
    return DestinationServiceAccount(account, namespace=namespace, name=cluster)


def _parse_kind(text: str, flag: str) -> GroupKind:
    group, sep, kind = text.rpartition("/")
    if not sep or not kind:
        raise UserInputError(
            f"{flag} takes GROUP/KIND ('' for the core group: /Namespace; globs allowed), "
            f"not {text!r}"
        )
    return GroupKind(group, kind)


def _rows(p: AppProject) -> dict[str, object]:
    return {"name": p.name, **p.spec()}


@proj_cmd.command("create")
def proj_create(
    name: Annotated[str, typer.Argument(help="the project's name (spec.project of its apps)")],
    description: Annotated[str, typer.Option(help="what the project is for")] = "",
    src: Annotated[
        list[str] | None,
        typer.Option(
            "--src",
            "-s",
            help="permitted repository URL glob (repeatable; '!' in front denies; '*' any)",
        ),
    ] = None,
    dest: Annotated[
        list[str] | None,
        typer.Option(
            "--dest",
            "-d",
            help="permitted destination CLUSTER,NAMESPACE (repeatable; globs; CLUSTER is a "
            "registered name, in-cluster, or a server URL; '!' in front denies)",
        ),
    ] = None,
    allow_cluster_resource: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-cluster-resource",
            help="permitted cluster-scoped GROUP/KIND (repeatable; none by default)",
        ),
    ] = None,
    deny_namespaced_resource: Annotated[
        list[str] | None,
        typer.Option(
            "--deny-namespaced-resource",
            help="refused namespaced GROUP/KIND (repeatable; every namespaced kind is "
            "permitted by default)",
        ),
    ] = None,
    dest_service_account: Annotated[
        list[str] | None,
        typer.Option(
            "--dest-service-account",
            help="CLUSTER,NAMESPACE,SERVICEACCOUNT: syncs to that destination impersonate "
            "the account (NAME in the destination namespace, or NAMESPACE:NAME); repeatable",
        ),
    ] = None,
    decryption_secret: Annotated[
        str,
        typer.Option(
            "--decryption-secret",
            metavar="SECRET",
            help="decrypt the SOPS files of apps that name no decryption of their own with "
            "the age keys of this Secret in the apps namespace (spec.decryption)",
        ),
    ] = "",
    require_encrypted_secrets: Annotated[
        bool,
        typer.Option(
            "--require-encrypted-secrets",
            help="refuse a render that holds a Secret not encrypted in Git with SOPS",
        ),
    ] = False,
    require_lint_rule: Annotated[
        list[str] | None,
        typer.Option(
            "--require-lint-rule",
            metavar="RULE",
            help="a gitmoor lint policy rule (id such as GM102, or slug such as image-tag) "
            "every app's render must pass before it syncs (spec.requiredLintRules; "
            "repeatable; the gitmoor.io/lint-ignore annotation does not waive it)",
        ),
    ] = None,
    upsert: Annotated[
        bool, typer.Option("--upsert", help="replace the project if it exists")
    ] = False,
) -> None:
    """Create a project. With no --src or --dest it permits nothing: add them."""
    from gitmoor.lint.required import required_rules
    from gitmoor.settings import create_project

    try:
        lint_rules = required_rules(require_lint_rule or (), "--require-lint-rule")
        project = AppProject(
            name=name,
            namespace=State.namespace,
            description=description,
            source_repos=tuple(src or ()),
            destinations=tuple(_parse_dest(d) for d in dest or ()),
            cluster_resource_whitelist=tuple(
                _parse_kind(k, "--allow-cluster-resource") for k in allow_cluster_resource or ()
            ),
            namespace_resource_blacklist=tuple(
                _parse_kind(k, "--deny-namespaced-resource") for k in deny_namespaced_resource or ()
            ),
            destination_service_accounts=tuple(_parse_sa(s) for s in dest_service_account or ()),
            decryption=Decryption(decryption_secret) if decryption_secret else None,
            require_encrypted_secrets=require_encrypted_secrets,
            required_lint_rules=tuple(r.id for r in lint_rules),
        )
    except GitmoorError as e:
        raise fail(str(e)) from None
    run(lambda kube: create_project(kube, project, upsert=upsert))
    out.print(f"project {name} {'saved' if upsert else 'created'}")


@proj_cmd.command("list")
def proj_list(
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """List projects with their sources and destinations."""
    from rich.table import Table

    from gitmoor.cli import output
    from gitmoor.settings import list_projects

    if output_format not in ("table", "json", "yaml"):
        raise fail(f"--output takes table, json or yaml, not {output_format!r}")
    projects = run(lambda kube: list_projects(kube, State.namespace))
    if output_format in ("json", "yaml"):
        output.dump(out, [_rows(p) for p in projects], output_format)
        return
    t = Table("NAME", "DESCRIPTION", "SOURCES", "DESTINATIONS", "CLUSTER KINDS", box=None)
    for p in projects:
        t.add_row(
            p.name,
            p.description,
            ", ".join(p.source_repos) or "-",
            ", ".join(_dest_text(d) for d in p.destinations) or "-",
            ", ".join(_kind_text(g) for g in p.cluster_resource_whitelist) or "-",
        )
    out.print(t)


def _dest_text(d: ProjectDestination) -> str:
    return f"{d.server or d.name or 'in-cluster'},{d.namespace}"


def _kind_text(g: GroupKind) -> str:
    return f"{g.group}/{g.kind}"


@proj_cmd.command("get")
def proj_get(
    name: str,
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """Show one project."""
    from gitmoor.cli import output
    from gitmoor.settings import get_project

    if output_format not in ("table", "json", "yaml"):
        raise fail(f"--output takes table, json or yaml, not {output_format!r}")
    project = run(lambda kube: get_project(kube, name, State.namespace))
    if project is None:
        raise fail(f"project {name} not found in {State.namespace}", 1)
    if output_format in ("json", "yaml"):
        output.dump(out, project.raw or project.to_manifest(), output_format)
        return
    lines = [
        ("Name", f"{project.namespace}/{project.name}"),
        ("Description", project.description or "-"),
        ("Sources", ", ".join(project.source_repos) or "- (none permitted)"),
        (
            "Destinations",
            ", ".join(_dest_text(d) for d in project.destinations) or "- (none permitted)",
        ),
        (
            "Cluster kinds",
            "allowed: "
            + (", ".join(map(_kind_text, project.cluster_resource_whitelist)) or "none")
            + (
                "; denied: " + ", ".join(map(_kind_text, project.cluster_resource_blacklist))
                if project.cluster_resource_blacklist
                else ""
            ),
        ),
        (
            "Namespaced",
            (
                "allowed: all"
                if project.namespace_resource_whitelist is None
                else "allowed: "
                + (", ".join(map(_kind_text, project.namespace_resource_whitelist)) or "none")
            )
            + (
                "; denied: " + ", ".join(map(_kind_text, project.namespace_resource_blacklist))
                if project.namespace_resource_blacklist
                else ""
            ),
        ),
        (
            "Sync as",
            ", ".join(
                f"{s.server or s.name or 'in-cluster'},{s.namespace} -> {s.default_service_account}"
                for s in project.destination_service_accounts
            )
            or "- (gitmoor's own identity)",
        ),
        (
            "Secrets",
            (
                f"decrypted with Secret {project.decryption.secret_name}"
                if project.decryption
                else "no decryption of its own"
            )
            + ("; must be encrypted in Git" if project.require_encrypted_secrets else "")
            + (f"; {len(project.redactions)} redaction rule(s)" if project.redactions else ""),
        ),
        ("Lint rules", ", ".join(project.required_lint_rules) or "- (none required)"),
        ("Sync windows", _windows_summary(project)),
    ]
    for label, value in lines:
        out.print(f"{label + ':':<15}{value}", markup=False)


@proj_cmd.command("delete")
def proj_delete(name: str) -> None:
    """Delete a project. Refused while Applications use it (as Argo CD refuses)."""
    from gitmoor.engine import store
    from gitmoor.settings import delete_project

    async def go(kube: KubeClient) -> bool:
        users = [
            a.name for a in await store.list_apps(kube, State.namespace) if a.spec.project == name
        ]
        if users:
            raise UserInputError(
                f"project {name} is used by {len(users)} application(s): {', '.join(users)}; "
                "move or delete them first"
            )
        return await delete_project(kube, name, State.namespace)

    if not run(go):
        raise fail(f"project {name} not found in {State.namespace}", 1)
    note = (
        " (apps naming it get Argo CD's default: everything permitted)"
        if name == DEFAULT_PROJECT
        else ""
    )
    out.print(f"project {name} deleted{note}")


def _update(name: str, change: Callable[[AppProject], AppProject], what: str) -> None:
    from gitmoor.settings import update_project

    run(lambda kube: update_project(kube, name, State.namespace, change))
    out.print(f"project {name}: {what}")


@proj_cmd.command("add-destination")
def proj_add_destination(
    project: str,
    cluster: Annotated[
        str, typer.Argument(help="a registered cluster name, in-cluster, or a server URL (glob)")
    ],
    namespace: Annotated[str, typer.Argument(help="namespace glob, e.g. team-a-*")],
) -> None:
    """Permit deploying to NAMESPACE of CLUSTER ('!' in front of either denies)."""
    dest = _destination(cluster, namespace)

    def change(p: AppProject) -> AppProject:
        if dest in p.destinations:
            return p
        return dataclasses.replace(p, destinations=(*p.destinations, dest))

    _update(project, change, f"destination {_dest_text(dest)} added")


@proj_cmd.command("add-source")
def proj_add_source(
    project: str,
    url: Annotated[str, typer.Argument(help="repository URL glob ('!' in front denies)")],
) -> None:
    """Permit a repository (or a glob of them)."""

    def change(p: AppProject) -> AppProject:
        if url in p.source_repos:
            return p
        return dataclasses.replace(p, source_repos=(*p.source_repos, url))

    _update(project, change, f"source {url} added")


@proj_cmd.command("allow-cluster-resource")
def proj_allow_cluster_resource(
    project: str,
    group: Annotated[str, typer.Argument(help="API group ('' for the core group; glob)")],
    kind: Annotated[str, typer.Argument(help="kind (glob)")],
) -> None:
    """Permit a cluster-scoped kind: add it to clusterResourceWhitelist and drop it from
    clusterResourceBlacklist (as `argocd proj allow-cluster-resource`)."""
    gk = GroupKind(group, kind)

    def change(p: AppProject) -> AppProject:
        allowed = p.cluster_resource_whitelist
        return dataclasses.replace(
            p,
            cluster_resource_whitelist=allowed if gk in allowed else (*allowed, gk),
            cluster_resource_blacklist=tuple(g for g in p.cluster_resource_blacklist if g != gk),
        )

    _update(project, change, f"cluster-scoped {group}/{kind} allowed")


@proj_cmd.command("deny-cluster-resource")
def proj_deny_cluster_resource(
    project: str,
    group: Annotated[str, typer.Argument(help="API group ('' for the core group; glob)")],
    kind: Annotated[str, typer.Argument(help="kind (glob)")],
) -> None:
    """Refuse a cluster-scoped kind: drop it from clusterResourceWhitelist and add it to
    clusterResourceBlacklist (as `argocd proj deny-cluster-resource`)."""
    gk = GroupKind(group, kind)

    def change(p: AppProject) -> AppProject:
        denied = p.cluster_resource_blacklist
        return dataclasses.replace(
            p,
            cluster_resource_whitelist=tuple(g for g in p.cluster_resource_whitelist if g != gk),
            cluster_resource_blacklist=denied if gk in denied else (*denied, gk),
        )

    _update(project, change, f"cluster-scoped {group}/{kind} denied")


# ---------------------------------------------------------------- sync windows

windows_cmd = typer.Typer(
    help="Sync windows: when the project's apps may sync (Argo CD's `argocd proj windows`). "
    "An active deny window, or allow windows none of which is active, stops automated "
    "syncs and refuses manual ones unless the window says --manual-sync.",
    no_args_is_help=True,
)
proj_cmd.add_typer(windows_cmd, name="windows")


def _windows_summary(project: AppProject) -> str:
    from datetime import UTC, datetime

    from gitmoor.engine import active_windows

    if not project.sync_windows:
        return "- (syncs at any time)"
    active = [w.text for w, on, _ in active_windows(project, datetime.now(UTC)) if on]
    return (
        f"{len(project.sync_windows)}, active now: "
        + (", ".join(active) or "none")
        + (f" (see `gitmoor proj windows list {project.name}`)")
    )


def _stamp(t: object) -> str:
    from datetime import UTC, datetime

    if not isinstance(t, datetime):
        return "-"
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@windows_cmd.command("list")
def windows_list(
    project: Annotated[str, typer.Argument(help="the project whose windows to show")],
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """List the project's sync windows: ID (what `delete` takes), whether each is active
    now, and when it next closes (active) or opens (inactive), in UTC."""
    from datetime import UTC, datetime

    from rich.table import Table

    from gitmoor.cli import output
    from gitmoor.engine import active_windows
    from gitmoor.settings import get_project

    if output_format not in ("table", "json", "yaml"):
        raise fail(f"--output takes table, json or yaml, not {output_format!r}")
    found = run(lambda kube: get_project(kube, project, State.namespace))
    if found is None:
        raise fail(f"project {project} not found in {State.namespace}", 1)
    rows = active_windows(found, datetime.now(UTC))
    if output_format in ("json", "yaml"):
        output.dump(
            out,
            [
                {
                    "id": i,
                    "active": on,
                    ("closesAt" if on else "opensAt"): _stamp(t) if t else None,
                    **w.to_dict(),
                }
                for i, (w, on, t) in enumerate(rows)
            ],
            output_format,
        )
        return
    if not rows:
        out.print(f"project {project} has no sync windows: its apps may sync at any time")
        return
    t = Table(
        "ID",
        "STATUS",
        "KIND",
        "SCHEDULE",
        "DURATION",
        "TIME ZONE",
        "APPLICATIONS",
        "NAMESPACES",
        "CLUSTERS",
        "MANUAL SYNC",
        "NEXT",
        box=None,
    )
    for i, (w, on, when) in enumerate(rows):
        t.add_row(
            str(i),
            "Active" if on else "Inactive",
            w.kind,
            w.schedule,
            w.duration,
            w.time_zone or "UTC",
            ",".join(w.applications) or "-",
            ",".join(w.namespaces) or "-",
            ",".join(w.clusters) or "-",
            "Enabled" if w.manual_sync else "Disabled",
            (f"closes {_stamp(when)}" if on else f"opens {_stamp(when)}")
            if when
            else ("always open" if on else "not within a year"),
        )
    out.print(t)


@windows_cmd.command("add")
def windows_add(
    project: Annotated[str, typer.Argument(help="the project to add the window to")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="allow or deny")],
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule",
            help="when the window opens: five-field cron (minute hour day-of-month month "
            "day-of-week), e.g. '0 22 * * *'",
        ),
    ],
    duration: Annotated[
        str, typer.Option("--duration", help="how long it stays open: 1h, 30m, 1h30m")
    ],
    applications: Annotated[
        list[str] | None,
        typer.Option("--applications", help="application name glob it applies to (repeatable)"),
    ] = None,
    namespaces: Annotated[
        list[str] | None,
        typer.Option("--namespaces", help="destination namespace glob (repeatable)"),
    ] = None,
    clusters: Annotated[
        list[str] | None,
        typer.Option(
            "--clusters",
            help="destination cluster glob: a registered name, in-cluster, or a server URL "
            "(repeatable)",
        ),
    ] = None,
    manual_sync: Annotated[
        bool,
        typer.Option("--manual-sync", help="let manual syncs through while this window blocks"),
    ] = False,
    time_zone: Annotated[
        str, typer.Option("--time-zone", help="IANA zone the schedule is read in (default UTC)")
    ] = "",
    and_operator: Annotated[
        bool,
        typer.Option(
            "--use-and-operator",
            help="apply only to apps every given list matches (default: any list)",
        ),
    ] = False,
    description: Annotated[str, typer.Option(help="why the window exists")] = "",
) -> None:
    """Add a sync window (as `argocd proj windows add`). It applies to the apps that
    --applications, --namespaces or --clusters match: give at least one."""
    from gitmoor.model.project import parse_sync_window

    if not (applications or namespaces or clusters):
        raise fail(
            "give --applications, --namespaces or --clusters: a window that names none applies to no app"
        )
    raw: dict[str, object] = {
        "kind": kind,
        "schedule": schedule,
        "duration": duration,
        "applications": applications or [],
        "namespaces": namespaces or [],
        "clusters": clusters or [],
        "manualSync": manual_sync,
        "timeZone": time_zone,
        "andOperator": and_operator,
        "description": description,
    }
    try:
        window = parse_sync_window(raw, "window")
    except GitmoorError as e:
        raise fail(str(e)) from None

    def change(p: AppProject) -> AppProject:
        return dataclasses.replace(p, sync_windows=(*p.sync_windows, window))

    _update(project, change, f"sync window {window.text} added")


@windows_cmd.command("delete")
def windows_delete(
    project: Annotated[str, typer.Argument(help="the project")],
    window_id: Annotated[int, typer.Argument(metavar="ID", help="the ID `windows list` shows")],
) -> None:
    """Delete a sync window by its ID (its position in `windows list`)."""

    def change(p: AppProject) -> AppProject:
        if not 0 <= window_id < len(p.sync_windows):
            raise UserInputError(
                f"project {project} has no sync window {window_id} "
                f"(it has {len(p.sync_windows)}; see `gitmoor proj windows list {project}`)"
            )
        return dataclasses.replace(
            p, sync_windows=p.sync_windows[:window_id] + p.sync_windows[window_id + 1 :]
        )

    _update(project, change, f"sync window {window_id} deleted")


def _set_manual(project: str, window_id: int, enabled: bool) -> None:
    def change(p: AppProject) -> AppProject:
        if not 0 <= window_id < len(p.sync_windows):
            raise UserInputError(f"project {project} has no sync window {window_id}")
        windows = list(p.sync_windows)
        windows[window_id] = dataclasses.replace(windows[window_id], manual_sync=enabled)
        return dataclasses.replace(p, sync_windows=tuple(windows))

    state = "enabled" if enabled else "disabled"
    _update(project, change, f"manual sync {state} on sync window {window_id}")


@windows_cmd.command("enable-manual-sync")
def windows_enable_manual_sync(
    project: str, window_id: Annotated[int, typer.Argument(metavar="ID")]
) -> None:
    """Let manual syncs through window ID while it blocks (manualSync: true)."""
    _set_manual(project, window_id, True)


@windows_cmd.command("disable-manual-sync")
def windows_disable_manual_sync(
    project: str, window_id: Annotated[int, typer.Argument(metavar="ID")]
) -> None:
    """Refuse manual syncs while window ID blocks (manualSync: false)."""
    _set_manual(project, window_id, False)
