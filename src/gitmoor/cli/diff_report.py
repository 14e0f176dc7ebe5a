"""How `gitmoor app diff` and `gitmoor diff --local` show a comparison: as text
(unified diffs, as ``kubectl diff``) or as markdown for a pull-request comment.

The markdown is in the shape of the comments CI bots post for Argo CD
(argocd-diff-preview, the Atlantis-like actions): a summary table, one row per
app (objects added, changed, removed), then each object's diff folded in a
``<details>`` block, so a large change does not bury the conversation. The diffs
are the engine's, masked by the app's Redactor: nothing here sees a value.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from gitmoor.cli._common import err, out
from gitmoor.model import SyncStatus

if TYPE_CHECKING:
    from rich.console import Console

    from gitmoor.engine import Comparison


class Change(Enum):
    """What a sync would do to one object."""

    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class ObjectChange:
    ref: str
    change: Change
    #: why the object differs when no diff says it (a dry-run refused, an error)
    message: str
    #: the masked unified diff, "" when there is none to show
    diff: str


@dataclass(frozen=True, slots=True)
class AppReport:
    """One app's diff: its objects that differ, or the error that stopped it."""

    app: str
    revision: str
    changes: tuple[ObjectChange, ...] = ()
    #: the render's warnings, already scrubbed of the app's secret values
    warnings: tuple[str, ...] = ()
    #: the error that stopped the comparison, already scrubbed
    error: str | None = None
    counts: dict[Change, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        counts = dict.fromkeys(Change, 0)
        for c in self.changes:
            counts[c.change] += 1
        object.__setattr__(self, "counts", counts)


def changes_of(comparison: Comparison) -> tuple[ObjectChange, ...]:
    """The objects a sync would change: Argo CD's OutOfSync set, each labelled as
    ``argocd app diff`` labels it (missing live: added; no longer in Git: removed)."""
    found: list[ObjectChange] = []
    for r in comparison.resources:
        if r.sync is SyncStatus.SYNCED:
            continue
        if r.requires_pruning:
            change = Change.REMOVED
        elif r.health.status.value == "Missing":
            change = Change.ADDED
        else:
            change = Change.CHANGED
        diff = r.diff.diff if r.diff is not None else ""
        found.append(ObjectChange(str(r.ref), change, r.message, diff))
    return tuple(found)


def print_text(console: Console, changes: tuple[ObjectChange, ...]) -> None:
    """The unified diffs, each under a header line when the diff alone does not
    say what happens (created, pruned, or a message)."""
    from gitmoor.cli import output

    for c in changes:
        header = None
        if c.change is Change.REMOVED:
            header = "requires pruning: no longer in Git"
        elif c.change is Change.ADDED:
            header = "missing: will be created"
        elif c.message:
            header = c.message
        if header is not None:
            console.print(
                f"[bold]===== {escape(c.ref)} ({escape(header)}) =====[/bold]", markup=True
            )
        if c.diff:
            output.print_diff(console, c.diff)


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text`` (CommonMark), so a
    diff quoting a fence cannot close the block early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _cell(text: str) -> str:
    return html.escape(text).replace("|", "\\|")


def markdown(reports: list[AppReport], title: str = "gitmoor diff") -> str:
    """The pull-request comment: a summary table, then per app its objects' diffs,
    each in a collapsible ``<details>`` block with a ``diff`` fenced block."""
    lines = [f"## {title}", "", "| App | Revision | Added | Changed | Removed |"]
    lines.append("| --- | --- | ---: | ---: | ---: |")
    for r in reports:
        if r.error is not None:
            lines.append(f"| `{_cell(r.app)}` | {_cell(r.revision)} | error | error | error |")
            continue
        n = r.counts
        lines.append(
            f"| `{_cell(r.app)}` | {_cell(r.revision)} "
            f"| {n[Change.ADDED]} | {n[Change.CHANGED]} | {n[Change.REMOVED]} |"
        )
    for r in reports:
        lines += ["", f"### {_cell(r.app)}", ""]
        if r.error is not None:
            lines.append(f"**error:** {_cell(r.error)}")
            continue
        for w in r.warnings:
            lines.append(f"> **warning:** {_cell(w)}")
        if r.warnings:
            lines.append("")
        if not r.changes:
            lines.append("No differences.")
            continue
        for c in r.changes:
            lines.append(f"<details><summary>{html.escape(c.ref)} ({c.change.value})</summary>")
            lines.append("")
            if c.message:
                lines += [_cell(c.message), ""]
            if c.diff:
                fence = _fence(c.diff)
                lines += [f"{fence}diff", c.diff.rstrip("\n"), fence, ""]
            lines.append("</details>")
    return "\n".join(lines) + "\n"


def show_reports(reports: list[AppReport], output_format: str) -> int:
    """Print the reports; the exit code: 2 if any app failed, else 1 if any object
    differs, else 0 (``kubectl diff``'s codes)."""
    if output_format == "markdown":
        # Plain bytes: rich would read markup, emoji codes and wrap lines in a diff.
        typer.echo(markdown(reports), nl=False)
    for r in reports:
        if output_format == "text":
            if len(reports) > 1:
                out.print(f"[bold]##### app {escape(r.app)} #####[/bold]", markup=True)
            for w in r.warnings:
                err.print(f"[yellow]warning:[/yellow] {escape(w)}", markup=True)
            if r.error is None:
                print_text(out, r.changes)
        if r.error is not None:
            err.print(f"[red]error:[/red] {escape(r.app)}: {escape(r.error)}", markup=True)
            continue
        n = len(r.changes)
        summary = f"{n} object(s) differ" if n else "no differences"
        prefix = f"{r.app}: " if len(reports) > 1 else ""
        err.print(f"{prefix}{summary} at revision {r.revision}", markup=False, highlight=False)
    if any(r.error is not None for r in reports):
        return 2
    return 1 if any(r.changes for r in reports) else 0
