"""How the CLI shows apps: tables for people, JSON/YAML for tools."""

from __future__ import annotations

import json
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


def print_apps(console: Console, apps: list[Application], fmt: str) -> None:
    _check_format(fmt, ("table", "wide", "json", "yaml"))
    if fmt in ("json", "yaml"):
        dump(console, [a.raw for a in apps], fmt)
        return
    cols = ["NAME", "SYNC", "HEALTH", "DESTINATION", "REVISION"]
    if fmt == "wide":
        cols += ["REPO", "PATH", "TARGET", "AUTO", "LAST OP"]
    t = Table(*cols, box=None)
    for a in apps:
        st = a.status
        row: list[str | Text] = [
            a.name,
            _styled(st.get("sync", {}).get("status", ""), _SYNC_STYLE),
            _styled(st.get("health", {}).get("status", ""), _HEALTH_STYLE),
            a.spec.destination.namespace
            + (f"@{a.spec.destination.name}" if a.spec.destination.name else ""),
            str(st.get("sync", {}).get("revision", ""))[:12] or "-",
        ]
        if fmt == "wide":
            auto = a.spec.sync_policy.automated
            row += [
                a.spec.source.repo_url,
                a.spec.source.path,
                a.spec.source.target_revision,
                ("auto" + ("+prune" if auto.prune else "") + ("+heal" if auto.self_heal else ""))
                if auto
                else "manual",
                str(st.get("operationState", {}).get("phase", "-")),
            ]
        t.add_row(*row)
    console.print(t)


def print_app(console: Console, a: Application, fmt: str) -> None:
    _check_format(fmt, ("table", "wide", "json", "yaml"))
    if fmt in ("json", "yaml"):
        dump(console, a.raw, fmt)
        return
    st = a.status
    src = a.spec.source
    console.print(f"[bold]Name:[/bold]        {a.namespace}/{a.name}", markup=True)
    console.print(f"[bold]Project:[/bold]     {a.spec.project}", markup=True)
    console.print(
        f"[bold]Source:[/bold]      {src.repo_url} path={src.path} targetRevision={src.target_revision}",
        markup=True,
    )
    console.print(
        f"[bold]Destination:[/bold] namespace={a.spec.destination.namespace}"
        + (f" cluster={a.spec.destination.name}" if a.spec.destination.name else ""),
        markup=True,
    )
    auto = a.spec.sync_policy.automated
    console.print(
        "[bold]Sync policy:[/bold] "
        + (f"automated (prune={auto.prune}, selfHeal={auto.self_heal})" if auto else "manual")
        + (
            f" options={list(a.spec.sync_policy.sync_options)}"
            if a.spec.sync_policy.sync_options
            else ""
        ),
        markup=True,
    )
    sync = st.get("sync", {})
    health = st.get("health", {})
    line = Text("Status:      ", style="bold")
    line.append_text(_styled(sync.get("status", "Unknown"), _SYNC_STYLE))
    line.append(" / ")
    line.append_text(_styled(health.get("status", "Unknown"), _HEALTH_STYLE))
    if sync.get("revision"):
        line.append(f"  revision {sync['revision'][:12]}")
    if health.get("message"):
        line.append(f"  ({health['message']})")
    console.print(line)
    op = st.get("operationState")
    if op:
        console.print(
            f"[bold]Last op:[/bold]     {op.get('phase')} — {op.get('message', '')} "
            f"(finished {op.get('finishedAt', '-')})",
            markup=True,
        )
    for c in st.get("conditions") or []:
        console.print(
            f"[bold red]Condition:[/bold red]   {c.get('type')}: {c.get('message')}", markup=True
        )
    resources = st.get("resources") or []
    if resources:
        t = Table("KIND", "NAMESPACE", "NAME", "SYNC", "HEALTH", "MESSAGE", box=None)
        for r in resources:
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
