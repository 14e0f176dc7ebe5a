"""Sync windows on plain data and fixed clocks: Argo CD's ``CanSync`` rules, the
time each verdict holds until, time zones across clock changes, and the parsing
of ``spec.syncWindows`` (errors name the field)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitmoor.engine.windows import (
    active_windows,
    automated_verdict,
    is_active,
    manual_verdict,
)
from gitmoor.model import UserInputError
from gitmoor.model.application import Application, parse_application
from gitmoor.model.project import (
    AppProject,
    SyncWindow,
    parse_appproject,
    parse_go_duration,
)

HOME = "https://kubernetes.default.svc"


def project(*windows: dict[str, Any]) -> AppProject:
    return parse_appproject(
        {
            "metadata": {"name": "prod", "namespace": "gitmoor"},
            "spec": {"syncWindows": list(windows)},
        }
    )


def app(name: str = "guestbook", namespace: str = "web", cluster: str = "") -> Application:
    dest: dict[str, str] = {"namespace": namespace}
    if cluster:
        dest["name"] = cluster
    return parse_application(
        {
            "metadata": {"name": name, "namespace": "gitmoor"},
            "spec": {"source": {"repoURL": "https://git.example/r.git"}, "destination": dest},
        }
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def w(kind: str, schedule: str, duration: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "schedule": schedule, "duration": duration}
    out.update(extra)
    out.setdefault("applications", ["*"])
    return out


NIGHTLY_DENY = w("deny", "0 22 * * *", "1h")
OFFICE_ALLOW = w("allow", "0 9 * * 1-5", "8h", timeZone="Europe/Berlin")

# (id, windows, now, automated (allowed, until), manual (allowed, until))
# 2026-12-01 is a Tuesday; Berlin is UTC+1 in December.
CASES: list[
    tuple[str, list[dict[str, Any]], str, tuple[bool, str | None], tuple[bool, str | None]]
] = [
    ("no window: always", [], "2026-12-01T22:30:00Z", (True, None), (True, None)),
    (
        "inside a deny window",
        [NIGHTLY_DENY],
        "2026-12-01T22:30:00Z",
        (False, "2026-12-01T23:00:00Z"),
        (False, "2026-12-01T23:00:00Z"),
    ),
    (
        "deny: active from the minute it fires",
        [NIGHTLY_DENY],
        "2026-12-01T22:00:00Z",
        (False, "2026-12-01T23:00:00Z"),
        (False, "2026-12-01T23:00:00Z"),
    ),
    (
        "deny: closed at its end",
        [NIGHTLY_DENY],
        "2026-12-01T23:00:00Z",
        (True, "2026-12-02T22:00:00Z"),
        (True, "2026-12-02T22:00:00Z"),
    ),
    (
        "deny: a second before it opens",
        [NIGHTLY_DENY],
        "2026-12-01T21:59:59Z",
        (True, "2026-12-01T22:00:00Z"),
        (True, "2026-12-01T22:00:00Z"),
    ),
    (
        "deny with manualSync lets manual syncs through",
        [w("deny", "0 22 * * *", "1h", manualSync=True)],
        "2026-12-01T22:30:00Z",
        (False, "2026-12-01T23:00:00Z"),
        (True, None),
    ),
    (
        "every active deny must allow manual syncs",
        [w("deny", "0 22 * * *", "1h", manualSync=True), w("deny", "0 21 * * *", "3h")],
        "2026-12-01T22:30:00Z",
        (False, "2026-12-02T00:00:00Z"),
        (False, "2026-12-02T00:00:00Z"),
    ),
    (
        "inside an allow window (Berlin office hours)",
        [OFFICE_ALLOW],
        "2026-12-01T10:00:00Z",
        (True, "2026-12-01T16:00:00Z"),
        (True, "2026-12-01T16:00:00Z"),
    ),
    (
        "outside every allow window",
        [OFFICE_ALLOW],
        "2026-12-01T20:00:00Z",
        (False, "2026-12-02T08:00:00Z"),
        (False, "2026-12-02T08:00:00Z"),
    ),
    (
        "outside allow windows on a weekend",
        [OFFICE_ALLOW],
        "2026-12-05T12:00:00Z",
        (False, "2026-12-07T08:00:00Z"),
        (False, "2026-12-07T08:00:00Z"),
    ),
    (
        "deny wins over an active allow",
        [OFFICE_ALLOW, w("deny", "0 10 * * *", "1h")],
        "2026-12-01T10:30:00Z",
        (False, "2026-12-01T11:00:00Z"),
        (False, "2026-12-01T11:00:00Z"),
    ),
    (
        "allow with manualSync: manual syncs pass outside it",
        [w("allow", "0 9 * * 1-5", "8h", manualSync=True)],
        "2026-12-01T20:00:00Z",
        (False, "2026-12-02T09:00:00Z"),
        (True, None),
    ),
    (
        "every inactive allow must allow manual syncs",
        [w("allow", "0 9 * * *", "1h", manualSync=True), w("allow", "0 12 * * *", "1h")],
        "2026-12-01T20:00:00Z",
        (False, "2026-12-02T09:00:00Z"),
        (False, "2026-12-02T09:00:00Z"),
    ),
    (
        "only deny windows, none active",
        [NIGHTLY_DENY],
        "2026-12-01T12:00:00Z",
        (True, "2026-12-01T22:00:00Z"),
        (True, "2026-12-01T22:00:00Z"),
    ),
    (
        "a window for other apps does not apply",
        [w("deny", "0 22 * * *", "1h", applications=["billing-*"])],
        "2026-12-01T22:30:00Z",
        (True, None),
        (True, None),
    ),
    (
        "a deny longer than its period never closes",
        [w("deny", "* * * * *", "1h")],
        "2026-12-01T22:30:00Z",
        (False, None),
        (False, None),
    ),
    (
        "overlapping occurrences close at the end of the last",
        [w("deny", "*/5 9-17 * * 1-5", "10m")],
        "2026-12-01T10:00:00Z",
        (False, "2026-12-01T18:05:00Z"),
        (False, "2026-12-01T18:05:00Z"),
    ),
    (
        "the deny ends, the allow opens later",
        [OFFICE_ALLOW, w("deny", "0 7 * * *", "3h")],
        "2026-12-02T07:30:00Z",
        (False, "2026-12-02T10:00:00Z"),
        (False, "2026-12-02T10:00:00Z"),
    ),
    (
        "a schedule that never fires is never active",
        [w("deny", "0 0 30 2 *", "1h")],
        "2026-12-01T00:30:00Z",
        (True, None),
        (True, None),
    ),
]


@pytest.mark.parametrize(
    ("windows", "now", "auto", "manual"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_verdicts(
    windows: list[dict[str, Any]],
    now: str,
    auto: tuple[bool, str | None],
    manual: tuple[bool, str | None],
) -> None:
    p, a, t = project(*windows), app(), at(now)
    for got, (allowed, until) in (
        (automated_verdict(p, a, HOME, t), auto),
        (manual_verdict(p, a, HOME, t), manual),
    ):
        assert got.allowed is allowed
        assert got.until == (at(until) if until else None)
        assert (got.message == "") is allowed


def test_messages_name_the_window_and_when_it_opens() -> None:
    p, a = project(NIGHTLY_DENY), app()
    now = at("2026-12-01T22:30:00Z")
    assert automated_verdict(p, a, HOME, now).message == (
        "sync window deny 0 22 * * * (1h, UTC) is active until 2026-12-01T23:00:00Z"
    )
    assert manual_verdict(p, a, HOME, now).message == (
        "sync window deny 0 22 * * * (1h, UTC) forbids manual sync; "
        "it opens at 2026-12-01T23:00:00Z"
    )
    outside = automated_verdict(project(OFFICE_ALLOW), a, HOME, at("2026-12-01T20:00:00Z"))
    assert outside.message == "outside every allow window; the next opens at 2026-12-02T08:00:00Z"
    forever = manual_verdict(project(w("deny", "* * * * *", "1h")), a, HOME, now)
    assert "forbids manual sync; it is always active" in forever.message
    later = automated_verdict(
        project(OFFICE_ALLOW, w("deny", "0 7 * * *", "3h")), a, HOME, at("2026-12-02T07:30:00Z")
    )
    # The allow window opens at 08:00 but the deny holds until 10:00: both are said.
    assert later.message == (
        "sync window deny 0 7 * * * (3h, UTC) is active until 2026-12-02T10:00:00Z"
    )
    inside_deny_before_allow = automated_verdict(
        project(OFFICE_ALLOW, w("deny", "0 6 * * *", "1h")), a, HOME, at("2026-12-02T06:30:00Z")
    )
    assert inside_deny_before_allow.message == (
        "sync window deny 0 6 * * * (1h, UTC) is active until 2026-12-02T07:00:00Z; "
        "syncs may run from 2026-12-02T08:00:00Z"
    )


@pytest.mark.parametrize(
    ("window", "target", "applies"),
    [
        ({"applications": ["guest*"]}, app(), True),
        ({"applications": ["billing"]}, app(), False),
        ({"namespaces": ["web"]}, app(), True),
        ({"namespaces": ["w?b"]}, app(), True),
        ({"namespaces": ["prod-*"]}, app(), False),
        # clusters: the registered name (in-cluster for the home one) or the server URL
        ({"clusters": ["in-cluster"]}, app(), True),
        ({"clusters": ["https://kubernetes.default.*"]}, app(), True),
        ({"clusters": ["eu-*"]}, app(cluster="eu-west"), True),
        ({"clusters": ["eu-*"]}, app(cluster="us-east"), False),
        # default: any list that matches is enough
        ({"applications": ["billing"], "namespaces": ["web"]}, app(), True),
        # andOperator: every list that is set must match
        ({"applications": ["billing"], "namespaces": ["web"], "andOperator": True}, app(), False),
        ({"applications": ["guest*"], "namespaces": ["web"], "andOperator": True}, app(), True),
        # "!" is no negation in windows (Argo CD's globMatch without allowNegation)
        ({"applications": ["!billing"]}, app(), False),
        # a window that names nothing applies to nothing
        ({}, app(), False),
    ],
)
def test_which_apps_a_window_applies_to(
    window: dict[str, Any], target: Application, applies: bool
) -> None:
    body = {"kind": "deny", "schedule": "* * * * *", "duration": "1h", **window}
    verdict = automated_verdict(project(body), target, HOME, at("2026-12-01T12:00:00Z"))
    assert verdict.allowed is not applies


def _window(schedule: str, duration: str, zone: str) -> SyncWindow:
    return project(w("deny", schedule, duration, timeZone=zone)).sync_windows[0]


@pytest.mark.parametrize(
    ("schedule", "duration", "zone", "now", "active"),
    [
        # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer: the
        # zone's offset on that date, not today's (Argo CD shifts by today's).
        ("0 9 * * *", "1h", "America/New_York", "2026-01-15T14:30:00Z", True),
        ("0 9 * * *", "1h", "America/New_York", "2026-01-15T13:30:00Z", False),
        ("0 9 * * *", "1h", "America/New_York", "2026-07-15T13:30:00Z", True),
        ("0 9 * * *", "1h", "America/New_York", "2026-07-15T14:30:00Z", False),
        # Berlin springs forward on 2026-03-29 (02:00 -> 03:00): 02:30 does not
        # exist and fires at 03:00 CEST (01:00 UTC)
        ("30 2 * * *", "1h", "Europe/Berlin", "2026-03-29T01:30:00Z", True),
        ("30 2 * * *", "1h", "Europe/Berlin", "2026-03-29T02:00:00Z", False),
        # Berlin falls back on 2026-10-25 (03:00 -> 02:00): 02:30 CEST is 00:30 UTC;
        # the repeated 02:30 CET (01:30 UTC) does not open a nightly window again
        ("30 2 * * *", "1h", "Europe/Berlin", "2026-10-25T01:00:00Z", True),
        ("30 2 * * *", "1h", "Europe/Berlin", "2026-10-25T01:45:00Z", False),
        # ... but an hourly schedule runs in the repeated hour as in any other
        ("30 * * * *", "20m", "Europe/Berlin", "2026-10-25T01:40:00Z", True),
        # duration is elapsed time: 01:00 CET + 3h is 05:00 CEST on the spring day
        ("0 1 * * *", "3h", "Europe/Berlin", "2026-03-29T02:59:00Z", True),
        ("0 1 * * *", "3h", "Europe/Berlin", "2026-03-29T03:00:00Z", False),
        # Asia/Kolkata (UTC+05:30)
        ("0 9 * * *", "30m", "Asia/Kolkata", "2026-12-01T03:35:00Z", True),
        ("0 9 * * *", "30m", "Asia/Kolkata", "2026-12-01T04:00:00Z", False),
    ],
)
def test_time_zones_and_clock_changes(
    schedule: str, duration: str, zone: str, now: str, active: bool
) -> None:
    assert is_active(_window(schedule, duration, zone), at(now)) is active


def test_active_windows_lists_each_with_its_next_change() -> None:
    p = project(NIGHTLY_DENY, OFFICE_ALLOW, w("deny", "* * * * *", "1h"))
    rows = active_windows(p, at("2026-12-01T22:30:00Z"))
    assert [(x.kind, on, t) for x, on, t in rows] == [
        ("deny", True, at("2026-12-01T23:00:00Z")),  # closes
        ("allow", False, at("2026-12-02T08:00:00Z")),  # opens
        ("deny", True, None),  # always open
    ]


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        automated_verdict(project(NIGHTLY_DENY), app(), HOME, datetime(2026, 12, 1, 22, 30))


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (w("maybe", "0 22 * * *", "1h"), "spec.syncWindows[1].kind: 'maybe' is not allow or deny"),
        (w("deny", "@daily", "1h"), "spec.syncWindows[1].schedule: bad cron '@daily'"),
        (w("deny", "0 22 * * * *", "1h"), "spec.syncWindows[1].schedule: bad cron"),
        (w("deny", "0 25 * * *", "1h"), "hour field '25' is outside 0-23"),
        (w("deny", "0 0 L * *", "1h"), "day of month field 'L' names an unknown value"),
        (w("deny", "0 22 * * 5-1", "1h"), "has a range that runs backwards"),
        (w("deny", "0 22 * * *", "1d"), "spec.syncWindows[1].duration: '1d' is not a positive"),
        (w("deny", "0 22 * * *", "-1h"), "spec.syncWindows[1].duration"),
        (w("deny", "0 22 * * *", ""), "spec.syncWindows[1].duration"),
        # beyond Go's int64 nanoseconds (~292 years): Go refuses it, and the
        # window's end would overflow datetime arithmetic
        (w("deny", "0 22 * * *", "87600000h"), "spec.syncWindows[1].duration"),
        (
            w("deny", "0 22 * * *", "1h", timeZone="Mars/Olympus"),
            "spec.syncWindows[1].timeZone: 'Mars/Olympus' is not a known time zone",
        ),
        (w("deny", "0 22 * * *", "1h", manualSync="yes"), "spec.syncWindows[1].manualSync must be"),
        (
            w("deny", "0 22 * * *", "1h", applications="web"),
            "spec.syncWindows[1].applications must",
        ),
    ],
)
def test_parse_errors_name_the_field(window: dict[str, Any], message: str) -> None:
    with pytest.raises(UserInputError) as e:
        project(NIGHTLY_DENY, window)
    assert message in str(e.value)
    assert "AppProject gitmoor/prod" in str(e.value)


def test_windows_round_trip_through_the_spec() -> None:
    body = {
        "kind": "allow",
        "schedule": "0 9 * jan-mar mon-fri",
        "duration": "1h30m",
        "applications": ["web-*"],
        "namespaces": ["prod"],
        "clusters": ["in-cluster"],
        "manualSync": True,
        "timeZone": "Europe/Berlin",
        "andOperator": True,
        "description": "office hours",
    }
    p = project(body)
    assert p.spec()["syncWindows"] == [body]
    assert parse_appproject(p.to_manifest()).sync_windows == p.sync_windows
    assert project(w("deny", "0 22 * * *", "1h", timeZone="UTC")).sync_windows[0].time_zone == ""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("90m", 5400), ("1h30m", 5400), ("1.5h", 5400), ("300ms", 0.3), ("45s", 45)],
)
def test_go_durations(text: str, seconds: float) -> None:
    parsed = parse_go_duration(text)
    assert parsed is not None
    assert parsed.total_seconds() == seconds


def test_now_is_converted_to_utc() -> None:
    from zoneinfo import ZoneInfo

    berlin = datetime(2026, 12, 1, 23, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 22:30 UTC
    verdict = automated_verdict(project(NIGHTLY_DENY), app(), HOME, berlin)
    assert not verdict.allowed
    assert verdict.until == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
