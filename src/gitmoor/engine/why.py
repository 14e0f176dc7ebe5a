"""``gitmoor app why``: one explanation of why an app is, or is not, synced and healthy.

Neither Argo CD nor Flux says this in one place: a user reads the sync status,
the conditions, the operation state, the project's windows and the history, and
puts them together. ``explain`` does that from the typed status (and what the
caller worked out of other objects: the dependencies, the project's windows, how
far the branch moved past a pin), as a few lines, most important first. It is a
pure function so that every case has a golden test (``tests/unit/engine/test_why.py``)
and the CLI, the API and the web UI show the same text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.engine.automation import Gates

if TYPE_CHECKING:
    from gitmoor.model.application import Application
    from gitmoor.model.status import AppStatus

#: at most this many objects are named in a line about health or drift
SHOWN = 5


def _short(rev: str) -> str:
    return rev[:12] if len(rev) == 40 else rev


def _objects(names: list[str]) -> str:
    more = len(names) - SHOWN
    return "; ".join(names[:SHOWN]) + (f" (and {more} more)" if more > 0 else "")


def explain(
    app: Application,
    status: AppStatus,
    gates: Gates | None = None,
    ahead: tuple[str, int | None] | None = None,
) -> list[str]:
    """The lines of ``app why`` (see the module's docstring).

    ``gates``: the dependency and window gates (``Engine.dependency_gates``,
    ``Engine.window_gate``); ``ahead``: for a pinned app, the commit its target
    names now and how many commits that is past the pin (None: unknown)."""
    gates = gates or Gates()
    policy = app.spec.sync_policy
    auto = policy.automated
    lines: list[str] = []
    out_of_sync = status.sync_status == "OutOfSync"
    conditions = {c.type: c.message for c in status.conditions}

    if policy.suspended:
        lines.append(
            f"automation is suspended: no automated sync or self-heal until "
            f"`gitmoor app resume {app.name}`"
        )
    elif auto is None and out_of_sync:
        lines.append(f"automated sync is off: Git's changes wait for `gitmoor app sync {app.name}`")
    pin = policy.pin
    if pin is not None:
        text = f"pinned at {_short(pin.revision)}"
        if pin.reason:
            text += f" ({pin.reason})"
        if ahead is not None:
            head, n = ahead
            target = app.spec.source.target_revision
            if head == pin.revision:
                text += f"; {target} is at the same commit"
            else:
                count = f" ({n} commit{'s' if n != 1 else ''} ahead)" if n is not None else ""
                text += f"; {target} is at {_short(head)}{count}"
        lines.append(text + f"; `gitmoor app unpin {app.name}` follows the branch again")
    cycle = gates.cycle or conditions.get("DependencyError", "")
    if cycle:
        lines.append(cycle)
    if gates.dependencies and (out_of_sync or "SyncWaiting" in conditions):
        lines.append(gates.dependencies)
    if gates.window:
        text = gates.window
        if gates.window_until is not None and gates.window_until.isoformat() not in text:
            text += f" (automated syncs resume at {gates.window_until.isoformat()})"
        lines.append(text)
    if "InvalidSpecError" in conditions:
        lines.append(f"refused: {conditions['InvalidSpecError']}")
    if "ComparisonError" in conditions:
        lines.append(f"the comparison with Git failed: {conditions['ComparisonError']}")

    state = status.operation_state
    if state is not None and state.phase.value in ("Running", "Terminating"):
        progress = state.progress
        where = ""
        if progress is not None:
            where = f" (stage {progress.stage}" + (
                f", wave {progress.wave})" if progress.stage == "wave" else ")"
            )
        line = f"a sync is {state.phase.value.lower()}{where}: {state.message}"
        if progress is not None and progress.waiting:
            line += "; waiting for " + _objects(
                [f"{w.ref.kind}/{w.ref.name}: {w.message}" for w in progress.waiting]
            )
        lines.append(line)
    elif (
        state is not None
        and state.phase.value in ("Failed", "Error")
        and auto is not None
        and state.sync_result is not None
        and state.sync_result.revision == status.sync_revision
        and out_of_sync
        and state.retry_count >= policy.retry.limit
    ):
        lines.append(
            f"the sync of {_short(state.sync_result.revision)} {state.phase.value.lower()} "
            f"({state.message}) and is not retried (syncPolicy.retry limit "
            f"{policy.retry.limit}): push a fix or run `gitmoor app sync {app.name}`"
        )
    elif out_of_sync and auto is not None and not policy.suspended:
        drifted = [
            f"{r.ref.kind}/{r.ref.name}" for r in status.resources if r.status == "OutOfSync"
        ]
        at_deployed = status.sync_revision == status.deployed_revision
        if at_deployed and not auto.self_heal:
            lines.append(
                f"drift at the deployed commit {_short(status.sync_revision)}, not reverted "
                f"because selfHeal is off: {_objects(drifted)}"
            )
        elif not (cycle or gates.dependencies or gates.window):
            lines.append(
                f"OutOfSync at {_short(status.sync_revision)}: an automated sync is due "
                f"({_objects(drifted)})"
            )

    if status.health_status not in ("", "Healthy"):
        unhealthy = [
            f"{r.ref.kind}/{r.ref.name} {r.health}"
            + (f": {r.health_message}" if r.health_message else "")
            for r in status.resources
            if r.health not in ("", "Healthy")
        ]
        line = f"{status.health_status}"
        if unhealthy:
            line += ": " + _objects(unhealthy)
        elif status.health_message:
            line += f": {status.health_message}"
        lines.append(line)

    if not lines:
        if status.sync_status == "Synced" and status.health_status == "Healthy":
            lines.append(f"Synced and Healthy at {_short(status.sync_revision)}")
        else:
            lines.append(
                f"{status.sync_status} and {status.health_status or 'health unknown'}"
                + (f" at {_short(status.sync_revision)}" if status.sync_revision else "")
            )
    return lines


__all__ = ["explain"]
