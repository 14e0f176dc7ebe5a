"""How the CLI shows apps: tables for people, JSON/YAML for tools."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

    from gitmoor.model.application import Application

_SYNC_STYLE = {"Synced": "green", "OutOfSync": "yellow", "Unknown": "dim"}
_HEALTH_STYLE = {
    "Healthy": "green",
    "Progressing": "cyan",
    "Degraded": "red",
    "Suspended": "blue",
    "Missing": "yellow",
    "Unknown": "dim",
}


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, as people write them in manifests."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def yaml_dump_all(docs: list[Any]) -> str:
    return yaml.dump_all(docs, Dumper=_BlockDumper, sort_keys=False)


def dump(console: Console, data: Any, fmt: str) -> None:
    if fmt == "json":
        console.print(json.dumps(data, indent=2, sort_keys=False), markup=False, highlight=False)
    else:
        console.print(yaml.safe_dump(data, sort_keys=False).rstrip(), markup=False, highlight=False)


def _styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value or "-", style=styles.get(value, ""))


def _check_format(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise SystemExit(f"error: --output takes one of {', '.join(allowed)}, not {fmt!r}")


@dataclass(frozen=True)
class AppRow:
    """One line of ``app list``: what the table shows, from an Application (the
    kubeconfig path) or from the API's summary (the server path), so both print
    the same table."""

    name: str
    sync: str
    health: str
    destination: str
    revision: str
    repo: str = ""
    path: str = ""
    target: str = ""
    auto: str = ""
    last_op: str = "-"


def app_row(a: Application) -> AppRow:
    st = a.status
    auto = a.spec.sync_policy.automated
    return AppRow(
        name=a.name,
        sync=st.get("sync", {}).get("status", ""),
        health=st.get("health", {}).get("status", ""),
        destination=a.spec.destination.namespace
        + (f"@{a.spec.destination.name}" if a.spec.destination.name else ""),
        revision=str(st.get("sync", {}).get("revision", "")),
        repo=a.spec.source.repo_url,
        path=a.spec.source.path,
        target=a.spec.source.target_revision,
        auto=("auto" + ("+prune" if auto.prune else "") + ("+heal" if auto.self_heal else ""))
        if auto
        else "manual",
        last_op=str(st.get("operationState", {}).get("phase", "-")),
    )


def print_apps(console: Console, apps: list[Application], fmt: str) -> None:
    _check_format(fmt, ("table", "wide", "json", "yaml"))
    if fmt in ("json", "yaml"):
        dump(console, [a.raw for a in apps], fmt)
        return
    print_app_rows(console, [app_row(a) for a in apps], wide=fmt == "wide")


def print_app_rows(console: Console, rows: list[AppRow], *, wide: bool) -> None:
    cols = ["NAME", "SYNC", "HEALTH", "DESTINATION", "REVISION"]
    if wide:
        cols += ["REPO", "PATH", "TARGET", "AUTO", "LAST OP"]
    t = Table(*cols, box=None)
    for r in rows:
        row: list[str | Text] = [
            r.name,
            _styled(r.sync, _SYNC_STYLE),
            _styled(r.health, _HEALTH_STYLE),
            r.destination,
            r.revision[:12] or "-",
        ]
        if wide:
            row += [r.repo, r.path, r.target, r.auto, r.last_op]
        t.add_row(*row)
    console.print(t)


@dataclass(frozen=True)
class AppView:
    """What ``app get`` shows, from either path (see :class:`AppRow`).

    ``last_op`` is (phase, message, finishedAt); ``resources`` are entries shaped
    like ``status.resources`` (kind, group, namespace, name, status, health,
    requiresPruning, message)."""

    name: str
    project: str
    repo: str
    path: str
    target: str
    destination: str
    sync_policy: str
    sync: str
    health: str
    revision: str = ""
    health_message: str = ""
    last_op: tuple[str, str, str] | None = None
    conditions: tuple[tuple[str, str], ...] = ()
    resources: tuple[dict[str, Any], ...] = ()


def app_view(a: Application) -> AppView:
    st = a.status
    src = a.spec.source
    auto = a.spec.sync_policy.automated
    sync = st.get("sync", {})
    health = st.get("health", {})
    op = st.get("operationState")
    return AppView(
        name=f"{a.namespace}/{a.name}",
        project=a.spec.project,
        repo=src.repo_url,
        path=src.path,
        target=src.target_revision,
        destination=f"namespace={a.spec.destination.namespace}"
        + (f" cluster={a.spec.destination.name}" if a.spec.destination.name else ""),
        sync_policy=(
            f"automated (prune={auto.prune}, selfHeal={auto.self_heal})" if auto else "manual"
        )
        + (
            f" options={list(a.spec.sync_policy.sync_options)}"
            if a.spec.sync_policy.sync_options
            else ""
        ),
        sync=sync.get("status", "Unknown"),
        health=health.get("status", "Unknown"),
        revision=sync.get("revision") or "",
        health_message=health.get("message") or "",
        last_op=(
            str(op.get("phase")),
            str(op.get("message", "")),
            str(op.get("finishedAt", "-")),
        )
        if op
        else None,
        conditions=tuple(
            (str(c.get("type")), str(c.get("message"))) for c in st.get("conditions") or []
        ),
        resources=tuple(st.get("resources") or []),
    )


def print_app(console: Console, a: Application, fmt: str) -> None:
    _check_format(fmt, ("table", "wide", "json", "yaml"))
    if fmt in ("json", "yaml"):
        dump(console, a.raw, fmt)
        return
    print_app_view(console, app_view(a))


def print_app_view(console: Console, v: AppView) -> None:
    console.print(f"[bold]Name:[/bold]        {v.name}", markup=True)
    console.print(f"[bold]Project:[/bold]     {v.project}", markup=True)
    console.print(
        f"[bold]Source:[/bold]      {v.repo} path={v.path} targetRevision={v.target}",
        markup=True,
    )
    console.print(f"[bold]Destination:[/bold] {v.destination}", markup=True)
    console.print(f"[bold]Sync policy:[/bold] {v.sync_policy}", markup=True)
    line = Text("Status:      ", style="bold")
    line.append_text(_styled(v.sync, _SYNC_STYLE))
    line.append(" / ")
    line.append_text(_styled(v.health, _HEALTH_STYLE))
    if v.revision:
        line.append(f"  revision {v.revision[:12]}")
    if v.health_message:
        line.append(f"  ({v.health_message})")
    console.print(line)
    if v.last_op is not None:
        phase, message, finished = v.last_op
        console.print(
            f"[bold]Last op:[/bold]     {phase} — {message} (finished {finished})", markup=True
        )
    for ctype, message in v.conditions:
        console.print(f"[bold red]Condition:[/bold red]   {ctype}: {message}", markup=True)
    if v.resources:
        t = Table("KIND", "NAMESPACE", "NAME", "SYNC", "HEALTH", "MESSAGE", box=None)
        for r in v.resources:
            h = r.get("health") or {}
            t.add_row(
                (f"{r.get('kind')}.{r['group']}" if r.get("group") else str(r.get("kind"))),
                r.get("namespace", ""),
                r.get("name", ""),
                _styled(r.get("status", ""), _SYNC_STYLE),
                _styled(h.get("status", ""), _HEALTH_STYLE),
                ("requires pruning " if r.get("requiresPruning") else "")
                + (r.get("message") or h.get("message") or ""),
            )
        console.print(t)


def print_diff(console: Console, diff: str) -> None:
    for line in diff.splitlines():
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        console.print(Text(line, style=style))
