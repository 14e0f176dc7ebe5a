"""`gitmoor rollout promote|abort|retry|undo|restart|get`: the Argo Rollouts plugin's verbs.

The same verbs, flags and messages as ``kubectl argo rollouts`` (``promote
[--full]``, ``undo [--to-revision N]``, ``get rollout [--watch]``), over the
kubeconfig's cluster: the writes are :mod:`gitmoor.rollouts.actions`, the view
:mod:`gitmoor.rollouts.info`, imported inside the commands so that ``gitmoor
--help`` stays light.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from gitmoor.cli._common import fail, out, run

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.kube import KubeClient
    from gitmoor.rollouts.actions import Action
    from gitmoor.rollouts.info import RolloutInfo

rollout_cmd = typer.Typer(
    help="Act on Argo Rollouts' Rollouts (promote, abort, retry, undo, restart) and show one "
    "(get), as the `kubectl argo rollouts` plugin does.",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="the Rollout's name")]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="the Rollout's namespace")]

#: the plugin's status icons (info.go)
ICONS = {
    "Progressing": "◌",
    "Error": "⚠",
    "InvalidSpec": "⚠",
    "Paused": "॥",
    "Healthy": "✔",
    "Degraded": "✖",
    "Unknown": "?",
    "ScaledDown": "•",
    "Running": "✔",
    "Completed": "✔",
    "Successful": "✔",
    "Pending": "◌",
    "Terminating": "◌",
    "ContainerCreating": "◌",
    "Failed": "✖",
    "CrashLoopBackOff": "✖",
    "ReplicaFailure": "✖",
    "Inconclusive": "⚠",
}


def _act(action: Action, name: str, namespace: str, *, full: bool = False, to: int = 0) -> None:
    from gitmoor.rollouts.actions import run_action

    async def go(kube: KubeClient) -> str:
        result = await run_action(kube, namespace, name, action, full=full, to_revision=to)
        return result.message

    out.print(escape(run(go)))


@rollout_cmd.command("promote")
def promote(
    name: Name,
    namespace: Namespace = "default",
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="perform a full promotion, skipping the remaining analysis, pauses and steps "
            "(sets status.promoteFull)",
        ),
    ] = False,
) -> None:
    """Promote a Rollout paused at a canary step or before a blue-green switch.

    Clears status.pauseConditions and sets spec.paused false; a canary with no
    pause condition (an analysis step running) moves to its next step."""
    from gitmoor.rollouts.actions import Action

    _act(Action.PROMOTE, name, namespace, full=full)


@rollout_cmd.command("abort")
def abort(name: Name, namespace: Namespace = "default") -> None:
    """Abort a Rollout: traffic goes back to the stable ReplicaSet (status.abort).

    spec.template still holds the new version: `retry` tries it again, `undo`
    puts the previous template back."""
    from gitmoor.rollouts.actions import Action

    _act(Action.ABORT, name, namespace)


@rollout_cmd.command("retry")
def retry(name: Name, namespace: Namespace = "default") -> None:
    """Retry an aborted Rollout (status.abort false)."""
    from gitmoor.rollouts.actions import Action

    _act(Action.RETRY, name, namespace)


@rollout_cmd.command("undo")
def undo(
    name: Name,
    namespace: Namespace = "default",
    to_revision: Annotated[
        int,
        typer.Option(
            "--to-revision",
            min=0,
            help="the revision to go back to (a ReplicaSet's rollout.argoproj.io/revision); "
            "0, the default: the previous one",
        ),
    ] = 0,
) -> None:
    """Put an earlier revision's pod template back into spec.template.

    With GitOps the next sync writes Git's template again: change Git for a
    lasting rollback."""
    from gitmoor.rollouts.actions import Action

    _act(Action.UNDO, name, namespace, to=to_revision)


@rollout_cmd.command("restart")
def restart(name: Name, namespace: Namespace = "default") -> None:
    """Restart the Rollout's pods (spec.restartAt now)."""
    from gitmoor.rollouts.actions import Action

    _act(Action.RESTART, name, namespace)


# ---------------------------------------------------------------------- get


def _icon(status: str) -> str:
    if status.startswith("Init:"):
        return "◌"
    if status.startswith(("Signal:", "ExitCode:")):
        return "✖"
    return ICONS.get(status, " ")


def render(info: RolloutInfo) -> str:
    """The plugin's ``get rollout`` text: the summary, the steps, then the tree of
    revisions with their ReplicaSets, pods and analysis runs, then the Services."""
    from gitmoor.rollouts.info import age

    lines: list[str] = []

    def row(label: str, value: object) -> None:
        lines.append(f"{label:<16} {value}")

    row("Name:", info.name)
    row("Namespace:", info.namespace)
    row("Status:", f"{_icon(info.status)} {info.status}")
    if info.message:
        row("Message:", info.message)
    row("Strategy:", info.strategy or "-")
    if info.strategy == "Canary":
        row("  Step:", info.step or "-")
        row("  SetWeight:", info.set_weight)
        row("  ActualWeight:", info.actual_weight)
    for i, image in enumerate(info.images):
        tags = f" ({', '.join(image.tags)})" if image.tags else ""
        row("Images:" if i == 0 else "", f"{image.image}{tags}")
    lines.append("Replicas:")
    row("  Desired:", info.desired)
    row("  Current:", info.current)
    row("  Updated:", info.updated)
    row("  Ready:", info.ready)
    row("  Available:", info.available)
    if info.steps:
        lines.append("")
        lines.append("Steps:")
        marks = {"done": "✔", "current": "→", "pending": " "}
        for step in info.steps:
            lines.append(f"  {marks[step.state]} {step.index}: {step.text}")
    lines.append("")
    table: list[tuple[str, str, str, str, str]] = [("NAME", "KIND", "STATUS", "AGE", "INFO")]
    table.append(
        (f"⟳ {info.name}", "Rollout", f"{_icon(info.status)} {info.status}", age(info.created), "")
    )
    revisions = sorted(
        {rs.revision for rs in info.replica_sets} | {a.revision for a in info.analysis_runs},
        reverse=True,
    )
    for ri, rev in enumerate(revisions):
        last_rev = ri == len(revisions) - 1
        branch, pad = ("└──", "   ") if last_rev else ("├──", "│  ")
        table.append((f"{branch}# revision:{rev}", "", "", "", ""))
        children: list[tuple[str, object]] = [
            ("rs", rs) for rs in info.replica_sets if rs.revision == rev
        ] + [("ar", a) for a in info.analysis_runs if a.revision == rev]
        for ci, (what, child) in enumerate(children):
            last = ci == len(children) - 1
            cb, cpad = ("└──", "   ") if last else ("├──", "│  ")
            if what == "rs":
                from gitmoor.rollouts.info import ReplicaSetInfo

                assert isinstance(child, ReplicaSetInfo)
                info_col = ",".join(child.roles)
                if child.scale_down_deadline:
                    info_col += f"{',' if info_col else ''}delay:{child.scale_down_deadline}"
                table.append(
                    (
                        f"{pad}{cb}⧉ {child.name}",
                        "ReplicaSet",
                        f"{_icon(child.status)} {child.status}",
                        age(child.created),
                        info_col,
                    )
                )
                for pi, pod in enumerate(child.pods):
                    pb = "└──" if pi == len(child.pods) - 1 else "├──"
                    info_col = f"ready:{pod.ready}"
                    if pod.restarts:
                        info_col += f",restarts:{pod.restarts}"
                    table.append(
                        (
                            f"{pad}{cpad}{pb}□ {pod.name}",
                            "Pod",
                            f"{_icon(pod.status)} {pod.status}",
                            age(pod.created),
                            info_col,
                        )
                    )
            else:
                from gitmoor.rollouts.info import AnalysisRunInfo

                assert isinstance(child, AnalysisRunInfo)
                counts = [
                    f"{sym} {n}"
                    for sym, n in (
                        ("✔", sum(m.successful for m in child.metrics)),
                        ("✖", sum(m.failed for m in child.metrics)),
                        ("⚠", sum(m.inconclusive + m.error for m in child.metrics)),
                    )
                    if n
                ]
                table.append(
                    (
                        f"{pad}{cb}α {child.name}",
                        "AnalysisRun",
                        f"{_icon(child.phase)} {child.phase}",
                        age(child.created),
                        ",".join(counts),
                    )
                )
                rows = [(m, x) for m in child.metrics for x in m.measurements]
                for mi, (metric, m) in enumerate(rows):
                    mb = "└──" if mi == len(rows) - 1 else "├──"
                    table.append(
                        (
                            f"{pad}{cpad}{mb}{metric.name}",
                            "Measurement",
                            f"{_icon(m.phase)} {m.phase}",
                            age(m.finished_at or m.started_at),
                            m.value or m.message,
                        )
                    )
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        lines.append(
            "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:4])).rstrip()
            + (f"  {r[4]}" if r[4] else "")
        )
    if info.services:
        lines.append("")
        lines.append("Services:")
        for svc in info.services:
            if not svc.found:
                target = "(not found)"
            elif not svc.hash:
                target = "(no rollouts-pod-template-hash in its selector)"
            else:
                target = f"→ {svc.hash}" + (f" ({svc.replica_set})" if svc.replica_set else "")
            lines.append(f"  {svc.role:<8} {svc.name}  {target}")
    return "\n".join(lines)


@rollout_cmd.command("get")
def get(
    name: Name,
    namespace: Namespace = "default",
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="print again each time the Rollout changes, until Ctrl-C",
        ),
    ] = False,
    output: Annotated[
        str, typer.Option("--output", "-o", help="text (the plugin's view) or json")
    ] = "text",
) -> None:
    """Show a Rollout, its ReplicaSets, pods, analysis runs and Services.

    The status, strategy and steps (the current one marked), each revision's
    ReplicaSets with their pods and AnalysisRuns with their measurements, and
    which ReplicaSet each Service of the strategy selects."""
    from gitmoor.rollouts.info import read_info

    if output not in ("text", "json"):
        raise fail(f"--output takes text or json, not {output!r}")

    def show(info: RolloutInfo) -> None:
        if output == "json":
            out.print(escape(json.dumps(info.as_json(), indent=2)))
        else:
            out.print(escape(render(info)))

    if not watch:

        async def once(kube: KubeClient) -> RolloutInfo:
            return await read_info(kube, namespace, name)

        show(run(once))
        return

    async def follow(kube: KubeClient) -> None:
        await _watch(kube, namespace, name, show)

    try:
        run(follow)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


async def _watch(
    kube: KubeClient, namespace: str, name: str, show: Callable[[RolloutInfo], None]
) -> None:
    """Print the view, then again at each change of the Rollout or of a ReplicaSet,
    Pod or AnalysisRun of its namespace (the plugin's ``get --watch`` watches the
    same four kinds). One view per burst of events: changes that arrive while a
    view is read are folded into the next one."""
    import asyncio
    import contextlib
    import signal

    from gitmoor.kube import ApiUnavailableError, UnknownKindError
    from gitmoor.rollouts.info import GROUP, VERSION, get_rollout, info_of

    changed = asyncio.Event()
    changed.set()
    # Ctrl-C (or a TERM) ends the watch between two views, and its cleanup is
    # bounded: the watch streams are dropped, not drained.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    async def pump(group: str, version: str, kind: str) -> None:
        try:
            ar = await kube.resource(group, version, kind)
        except UnknownKindError:
            return
        while True:
            try:
                async for ev in kube.watch(ar, namespace, timeout_seconds=240):
                    if ev.type != "BOOKMARK":
                        changed.set()
            except ApiUnavailableError:
                await asyncio.sleep(1)

    pumps = [
        asyncio.create_task(pump(*gvk))
        for gvk in (
            (GROUP, VERSION, "Rollout"),
            ("apps", "v1", "ReplicaSet"),
            ("", "v1", "Pod"),
            (GROUP, VERSION, "AnalysisRun"),
        )
    ]
    last = ""
    try:
        first = True
        while not stop.is_set():
            waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            if stop.is_set():
                break
            changed.clear()
            info = await info_of(kube, await get_rollout(kube, namespace, name))
            text = json.dumps(info.as_json(), sort_keys=True)
            if text != last:
                if not first:
                    out.print("")
                first, last = False, text
                show(info)
                out.file.flush()
            await asyncio.sleep(0.2)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        for t in pumps:
            t.cancel()
        await asyncio.wait(pumps, timeout=2)
