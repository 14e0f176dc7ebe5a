"""spec.syncPolicy.refreshInterval and retry backoff: parsed into the model, with floors."""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.model import UserInputError
from gitmoor.model.application import RetryPolicy, parse_application, parse_duration


def app_with(policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "a", "namespace": "gitmoor"},
        "spec": {
            "source": {"repoURL": "https://example.com/r"},
            "destination": {"namespace": "d"},
            "syncPolicy": policy,
        },
    }


@pytest.mark.parametrize(
    "text,seconds",
    [("90s", 90), ("3m", 180), ("1h30m", 5400), ("500ms", 0.5), ("5", 5), (2, 2), ("1.5s", 1.5)],
)
def test_durations_go_style_or_bare_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "5 m", "1d", "-3s", "", True])
def test_bad_durations_name_the_field(text: object) -> None:
    with pytest.raises(UserInputError) as err:
        parse_duration(text, "spec.syncPolicy.refreshInterval")
    assert "spec.syncPolicy.refreshInterval" in str(err.value)


def test_policy_fields_are_typed() -> None:
    app = parse_application(
        app_with(
            {
                "refreshInterval": "30s",
                "retry": {
                    "limit": 3,
                    "backoff": {"duration": "200ms", "factor": 3, "maxDuration": "1m"},
                },
            }
        )
    )
    policy = app.spec.sync_policy
    assert policy.refresh_interval == 30
    assert policy.retry == RetryPolicy(limit=3, duration=0.2, factor=3, max_duration=60)
    assert [policy.retry.delay(n) for n in range(4)] == pytest.approx([0.2, 0.6, 1.8, 5.4])


def test_defaults_when_absent() -> None:
    policy = parse_application(app_with({})).spec.sync_policy
    assert policy.refresh_interval is None
    assert policy.retry == RetryPolicy()


@pytest.mark.parametrize(
    "policy,field",
    [
        ({"refreshInterval": "500ms"}, "spec.syncPolicy.refreshInterval"),
        ({"refreshInterval": "0s"}, "spec.syncPolicy.refreshInterval"),
        ({"retry": {"limit": 5, "backoff": {"duration": "10ms"}}}, "backoff.duration"),
        ({"retry": {"backoff": {"maxDuration": "50ms"}}}, "backoff.maxDuration"),
        ({"retry": {"backoff": {"duration": 0}}}, "backoff.duration"),
        ({"retry": {"backoff": {"factor": 0.5}}}, "backoff.factor"),
        ({"retry": "always"}, "spec.syncPolicy.retry"),
        ({"retry": {"limit": -1}}, "retry.limit"),
        ({"retry": {"limit": 1.5}}, "retry.limit"),
    ],
)
def test_values_below_the_floors_are_refused_naming_the_field(
    policy: dict[str, Any], field: str
) -> None:
    with pytest.raises(UserInputError) as err:
        parse_application(app_with(policy))
    text = str(err.value)
    assert field in text
    assert "\n" not in text


def test_the_floors_themselves_are_accepted() -> None:
    policy = parse_application(
        app_with({"refreshInterval": "1s", "retry": {"backoff": {"duration": "100ms"}}})
    ).spec.sync_policy
    assert policy.refresh_interval == 1
    assert policy.retry.duration == pytest.approx(0.1)


def test_a_huge_backoff_factor_reaches_the_cap_instead_of_overflowing() -> None:
    policy = RetryPolicy(limit=5, duration=1.0, factor=1e200, max_duration=180.0)
    assert [policy.delay(n) for n in range(4)] == [1.0, 180.0, 180.0, 180.0]
