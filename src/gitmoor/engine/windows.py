"""Sync windows: may an app sync now, and if not, until when?

Argo CD's rules (``pkg/apis/application/v1alpha1/types.go``: ``SyncWindows.Matches``,
``Active``, ``InactiveAllows``, ``CanSync``), on the windows of the app's
project that apply to it (:meth:`gitmoor.model.project.SyncWindow.matches`):

1. No window applies: sync.
2. A deny window is active: refused. A manual sync passes only when *every*
   active deny window says ``manualSync: true`` (``hasDeny``). Deny wins over
   allow.
3. An allow window is active: sync.
4. Allow windows apply but none is active: refused; a manual sync passes only
   when every one of them says ``manualSync: true``.
5. Otherwise (only deny windows, none active): sync.

Deliberate differences from Argo CD, each about time rather than the rules:

- **Time zones.** The schedule is read on the wall clock of ``timeZone``, as
  cron itself does, at the date in question: ``0 9 * * *`` in New York opens
  at 14:00 UTC in winter and 13:00 UTC in summer. Argo CD shifts the schedule
  by the zone's offset *now* (``scheduleOffsetByTimeZone``), so it opens an
  hour off for half the year. On the day clocks go forward, a time that does not
  exist fires at the first minute after the gap (croniter's rule; ``30 2`` in
  Berlin fires at 03:00); on the day they go back, a repeated wall time fires
  once, unless the hour field is ``*`` (Vixie cron's rule), so a nightly window
  is not open twice. ``duration`` is elapsed time.
- **The edge.** A window is active from the minute it fires (inclusive) until
  ``duration`` later (exclusive): ``t <= now < t + duration``. Argo CD's
  ``schedule.Next(now - duration).Before(now)`` excludes the instant of firing
  itself, a difference of less than a second.
- **syncOverrun** (letting a running sync finish into a deny window) is not
  modelled: gitmoor checks windows when an operation starts, not between steps.

Pure functions on plain data and a given clock: no I/O, so every case has a
golden test with a fixed ``now`` (``tests/unit/engine/test_windows.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from gitmoor.model import UserInputError
from gitmoor.model.project import IN_CLUSTER, cron_expression

if TYPE_CHECKING:
    from gitmoor.model.application import Application
    from gitmoor.model.project import AppProject, SyncWindow

#: how far ahead ``until`` looks for the verdict to change
HORIZON = timedelta(days=366)
#: window boundaries visited while looking (each costs a croniter step or two)
_MAX_STEPS = 100
#: a window's occurrences that run into each other are followed this many jumps
#: (each one ``duration`` long at least) to find where the run ends
_MAX_CHAIN = 200
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    """May the app sync now, and why not."""

    allowed: bool
    #: "" when allowed; else the window that refuses and when that ends
    message: str
    #: when the verdict may change (the deny ends, the next allow opens), aware
    #: UTC; None: no change within :data:`HORIZON`
    until: datetime | None


class SyncWindowClosed(UserInputError):
    """A manual sync or rollback that the project's sync windows forbid now (Argo
    CD: "cannot sync: blocked by sync window"). ``until``: when it may run."""

    def __init__(
        self, message: str, *, concerns: str | None = None, until: datetime | None
    ) -> None:
        super().__init__(message, concerns=concerns)
        self.until = until


# ---------------------------------------------------------------- one window


def _repeated(t: datetime, w: SyncWindow) -> bool:
    """Is ``t`` the second pass of a wall time the clocks went back over, in a
    schedule with a fixed hour (Vixie cron runs such a job once)?"""
    if t.fold == 0 or w.schedule.split()[1] == "*":
        return False
    return t.replace(fold=0).utcoffset() != t.utcoffset()


@functools.lru_cache(maxsize=256)
def _schedule(schedule: str, zone: str) -> croniter:
    """One croniter per schedule and zone, moved with ``set_current``: building one
    costs four times a step, and a verdict takes many steps."""
    tz = ZoneInfo(zone) if zone else UTC
    return croniter(cron_expression(schedule), datetime(2000, 1, 1, tzinfo=tz))


def _walk(w: SyncWindow, start: datetime, forward: bool) -> datetime | None:
    """The first firing of ``w`` strictly after (or before) ``start``, skipping the
    second pass of a repeated wall time (:func:`_repeated`); None beyond the horizon."""
    it = _schedule(w.schedule, w.time_zone)
    it.set_current(start.astimezone(w.zone), force=True)
    limit = start + HORIZON if forward else start - HORIZON
    try:
        while True:
            t: datetime = it.get_next(datetime) if forward else it.get_prev(datetime)
            if (t.astimezone(UTC) > limit) if forward else (t.astimezone(UTC) < limit):
                return None
            if not _repeated(t, w):
                return t.astimezone(UTC)
    except CroniterBadDateError:  # a schedule that never fires (0 0 30 2 *)
        return None


@functools.lru_cache(maxsize=4096)
def last_start(w: SyncWindow, at: datetime) -> datetime | None:
    """The latest time ``w``'s schedule fires at or before ``at`` (UTC), or None."""
    return _walk(w, at + _TICK, forward=False)


@functools.lru_cache(maxsize=4096)
def next_start(w: SyncWindow, after: datetime) -> datetime | None:
    """The first time ``w``'s schedule fires strictly after ``after`` (UTC), or None."""
    return _walk(w, after, forward=True)


def is_active(w: SyncWindow, now: datetime) -> bool:
    """Is ``w`` open at ``now``: did it fire at some ``t`` with ``t <= now < t + duration``?
    (The latest firing is enough: a later one would end later.)"""
    t = last_start(w, now)
    return t is not None and now < t + w.length


def _always_open(w: SyncWindow) -> bool:
    """Does ``w`` never close, because each occurrence lasts until the next one
    starts? Decided for schedules that repeat daily (day of month, month and day
    of week all ``*``) from the widest gap between their times of day, plus an
    hour where a clock change can widen it (a zone with a fixed hour field).
    Other schedules are followed occurrence by occurrence (:func:`open_until`)."""
    fields = cron_expression(w.schedule).split()
    if any(f != "*" for f in fields[2:]):
        return False
    expanded = croniter.expand(" ".join(fields))[0]
    minutes = [m for m in expanded[0] if isinstance(m, int)] or list(range(60))
    hours = [h for h in expanded[1] if isinstance(h, int)] or list(range(24))
    times = sorted(h * 60 + m for h in hours for m in minutes)
    widest = max(b - a for a, b in zip(times, [*times[1:], times[0] + 1440], strict=True))
    slack = 0 if not w.time_zone or fields[1] == "*" else 60
    return w.length >= timedelta(minutes=widest + slack)


@functools.lru_cache(maxsize=1024)
def open_until(w: SyncWindow, now: datetime) -> datetime | None:
    """When the window ``w``, active at ``now``, closes: the end of the run of its
    occurrences that overlap or touch. None when it does not close within
    :data:`_MAX_CHAIN` occurrences (a window at least as long as the gap between
    its firings is always open), or when it is not active."""
    start = last_start(w, now)
    if start is None or now >= start + w.length or _always_open(w):
        return None
    end = start + w.length
    for _ in range(_MAX_CHAIN):
        # A firing at or before the end (inclusive: one at the very end touches)
        # carries the window on; the latest such one ends the run latest.
        latest = last_start(w, end)
        if latest is None or latest + w.length <= end:
            return end
        end = latest + w.length
    return None


def boundary(w: SyncWindow, now: datetime) -> datetime | None:
    """The next time ``w`` opens or closes after ``now`` (None: not within the horizon)."""
    return open_until(w, now) if is_active(w, now) else next_start(w, now)


# ---------------------------------------------------------------- the rules


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("sync windows need an aware time")
    return now.astimezone(UTC)


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def applying(project: AppProject, app: Application, server: str) -> list[SyncWindow]:
    """The project's windows that apply to ``app`` (Argo CD's ``Matches``), in order.

    The cluster is matched by its registered name (``in-cluster`` for the home
    cluster, the name projects use for it) and by ``server``, the destination's
    API server URL, as Argo CD matches ``clusters`` against both.
    """
    dest = app.spec.destination
    return [
        w
        for w in project.sync_windows
        if w.matches(app.name, dest.namespace, dest.name or IN_CLUSTER, server)
    ]


def _refusal(windows: list[SyncWindow], now: datetime, manual: bool) -> SyncWindow | None:
    """The window that refuses a sync at ``now`` (None: the sync may run): ``CanSync``."""
    active = [w for w in windows if is_active(w, now)]
    denies = [w for w in active if w.kind == "deny"]
    if denies:
        if manual and all(w.manual_sync for w in denies):
            return None
        return next((w for w in denies if not (manual and w.manual_sync)), denies[0])
    if any(w.kind == "allow" for w in active):
        return None
    allows = [w for w in windows if w.kind == "allow"]  # none of them active
    if allows and not (manual and all(w.manual_sync for w in allows)):
        return next((w for w in allows if not (manual and w.manual_sync)), allows[0])
    return None


def _change(
    windows: list[SyncWindow], now: datetime, manual: bool, allowed: bool
) -> datetime | None:
    """The first window boundary after ``now`` at which the verdict differs from
    ``allowed``: the verdict only changes where a window opens or closes."""
    at = now
    for _ in range(_MAX_STEPS):
        edges = [b for w in windows if (b := boundary(w, at)) is not None]
        if not edges:
            return None
        at = min(edges)
        if at - now > HORIZON:
            return None
        if (_refusal(windows, at, manual) is None) != allowed:
            return at
    return None


def _verdict(windows: list[SyncWindow], now: datetime, manual: bool) -> WindowVerdict:
    now = _utc(now)
    blocking = _refusal(windows, now, manual)
    if blocking is None:
        return WindowVerdict(True, "", _change(windows, now, manual, True) if windows else None)
    until = _change(windows, now, manual, False)
    if until is not None:
        opens = f"it opens at {_stamp(until)}"
    elif blocking.kind == "deny" and _always_open(blocking):
        opens = "it is always active (each occurrence lasts until the next begins)"
    else:
        opens = "no opening was found ahead"
    if blocking.kind == "deny":
        closes = open_until(blocking, now)
        if manual:
            message = f"sync window {blocking.text} forbids manual sync; {opens}"
        elif closes is None:
            message = f"sync window {blocking.text} " + (
                "is always active (each occurrence lasts until the next begins)"
                if _always_open(blocking)
                else "is active; no end was found ahead"
            )
        else:
            message = f"sync window {blocking.text} is active until {_stamp(closes)}"
            if until is not None and until != closes:
                message += f"; syncs may run from {_stamp(until)}"
    else:
        starts = [t for w in windows if w.kind == "allow" if (t := next_start(w, now))]
        nearest = (
            f"the next opens at {_stamp(min(starts))}" if starts else "none opens within a year"
        )
        if manual:
            message = (
                f"outside every allow window, and sync window {blocking.text} forbids manual "
                f"sync; {nearest}"
            )
        else:
            message = f"outside every allow window; {nearest}"
        if until is not None and starts and until != min(starts):
            message += f"; syncs may run from {_stamp(until)}"
    return WindowVerdict(False, message, until)


def automated_verdict(
    project: AppProject, app: Application, server: str, now: datetime
) -> WindowVerdict:
    """May an automated sync of ``app`` start at ``now``? (``CanSync(false)``; the
    controller skips the sync and says until when, as Argo CD's ``autoSync`` does
    not run while ``CanSync`` is false.)"""
    return _verdict(applying(project, app, server), now, manual=False)


def manual_verdict(
    project: AppProject, app: Application, server: str, now: datetime
) -> WindowVerdict:
    """May a manual sync (or rollback) of ``app`` start at ``now``? (``CanSync(true)``:
    Argo CD's API answers "cannot sync: blocked by sync window" otherwise.)"""
    return _verdict(applying(project, app, server), now, manual=True)


def active_windows(
    project: AppProject, now: datetime
) -> list[tuple[SyncWindow, bool, datetime | None]]:
    """Each of the project's windows, whether it is active at ``now``, and when it
    next closes (active) or opens (inactive); None: not within a year.
    ``gitmoor proj windows list`` shows these."""
    now = _utc(now)
    out: list[tuple[SyncWindow, bool, datetime | None]] = []
    for w in project.sync_windows:
        active = is_active(w, now)
        out.append((w, active, open_until(w, now) if active else next_start(w, now)))
    return out


__all__ = [
    "HORIZON",
    "SyncWindowClosed",
    "WindowVerdict",
    "active_windows",
    "applying",
    "automated_verdict",
    "boundary",
    "is_active",
    "last_start",
    "manual_verdict",
    "next_start",
    "open_until",
]
