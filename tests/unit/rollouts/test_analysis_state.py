"""The AnalysisRun state machine on plain data, with a fixed clock (golden cases
from Argo Rollouts' analysis/analysis.go rules)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from gitmoor.rollouts import analysis
from gitmoor.rollouts.analysis import ERROR, FAILED, INCONCLUSIVE, RUNNING, SUCCESSFUL

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def web(name: str = "success-rate", **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": {"web": {"url": "http://127.0.0.1:1/x"}}, **fields}


def new_run(*metrics: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"metrics": list(metrics), **spec},
    }


def step(
    run: dict[str, Any], now: datetime, outcomes: dict[str, str] | None = None
) -> tuple[list[str], datetime | None]:
    """What the controller does in one reconcile, with the measurement phases given."""
    p = analysis.plan(run, now)
    for m in p.due:
        phase = (outcomes or {}).get(m.name, SUCCESSFUL)
        message = "boom" if phase == ERROR else ""
        analysis.record(
            run,
            m,
            analysis.measurement(phase, started=now, finished=now, value="1", message=message),
            dry_run=m.name in p.dry_run,
        )
    return [m.name for m in p.due], analysis.conclude(run, p, now)


def status(run: dict[str, Any]) -> dict[str, Any]:
    return run["status"]  # type: ignore[no-any-return]


def result(run: dict[str, Any], name: str = "success-rate") -> dict[str, Any]:
    r = analysis.get_result(run, name)
    assert r is not None
    return r


def test_no_interval_no_count_is_one_measurement() -> None:
    run = new_run(web(successCondition="result > 0"))
    due, nxt = step(run, T0)
    assert due == ["success-rate"]
    assert nxt is None
    assert status(run)["phase"] == SUCCESSFUL
    assert status(run)["startedAt"] == status(run)["completedAt"] == "2026-12-01T12:00:00Z"
    assert result(run)["measurements"] == [
        {
            "phase": SUCCESSFUL,
            "startedAt": "2026-12-01T12:00:00Z",
            "finishedAt": "2026-12-01T12:00:00Z",
            "value": "1",
        }
    ]
    assert status(run)["runSummary"] == {
        "count": 1,
        "successful": 1,
        "failed": 0,
        "inconclusive": 0,
        "error": 0,
    }


def test_count_and_interval_measure_on_time_then_succeed() -> None:
    run = new_run(web(interval="10s", count=3))
    assert step(run, T0) == (["success-rate"], at(10))
    assert status(run)["phase"] == RUNNING
    # not due before the interval has passed: a wake-up early measures nothing
    assert step(run, at(5)) == ([], at(10))
    assert step(run, at(10.5))[0] == ["success-rate"]
    assert step(run, at(21))[0] == ["success-rate"]
    assert status(run)["phase"] == SUCCESSFUL
    assert result(run)["count"] == 3 and result(run)["successful"] == 3
    assert step(run, at(40)) == ([], None)


def test_first_failure_fails_with_upstreams_message() -> None:
    run = new_run(web(interval="10s", count=5))
    step(run, T0, {"success-rate": FAILED})
    assert status(run)["phase"] == FAILED
    assert status(run)["message"] == (
        'Metric "success-rate" assessed Failed due to failed (1) > failureLimit (0)'
    )
    assert result(run)["phase"] == FAILED
    assert step(run, at(20)) == ([], None)  # a finished run measures nothing more


def test_failure_limit_tolerates_failures() -> None:
    run = new_run(web(interval="1s", count=3, failureLimit=1))
    step(run, T0, {"success-rate": FAILED})
    step(run, at(2))
    step(run, at(4))
    assert status(run)["phase"] == SUCCESSFUL
    run = new_run(web(interval="1s", count=3, failureLimit=1))
    step(run, T0, {"success-rate": FAILED})
    step(run, at(2), {"success-rate": FAILED})
    assert status(run)["phase"] == FAILED
    assert "failed (2) > failureLimit (1)" in status(run)["message"]


def test_inconclusive_limit() -> None:
    run = new_run(web(interval="1s", count=3, inconclusiveLimit=1))
    step(run, T0, {"success-rate": INCONCLUSIVE})
    assert status(run)["phase"] == RUNNING
    step(run, at(2), {"success-rate": INCONCLUSIVE})
    assert status(run)["phase"] == INCONCLUSIVE
    assert status(run)["message"] == (
        'Metric "success-rate" assessed Inconclusive due to inconclusive (2) > inconclusiveLimit (1)'
    )


def test_errors_retry_after_ten_seconds_then_error_the_run() -> None:
    run = new_run(web(interval="60s", count=3))
    _, nxt = step(run, T0, {"success-rate": ERROR})
    assert nxt == at(10)  # an error is retried after 10 s, whatever the interval
    for i in range(1, 5):
        assert step(run, at(11 * i), {"success-rate": ERROR})[0] == ["success-rate"]
    assert result(run)["consecutiveError"] == 5 and result(run)["count"] == 0
    assert status(run)["phase"] == ERROR
    assert status(run)["message"] == (
        'Metric "success-rate" assessed Error due to consecutiveErrors (5) > '
        'consecutiveErrorLimit (4): "Error Message: boom"'
    )


def test_a_success_resets_consecutive_errors() -> None:
    run = new_run(web(interval="1s", count=4, consecutiveErrorLimit=1))
    step(run, T0, {"success-rate": ERROR})
    step(run, at(11))
    step(run, at(13), {"success-rate": ERROR})
    assert result(run)["consecutiveError"] == 1 and result(run)["error"] == 2
    assert status(run)["phase"] == RUNNING


def test_initial_delay_counts_from_started_at() -> None:
    run = new_run(web(initialDelay="30s"))
    assert step(run, T0) == ([], at(30))
    assert step(run, at(29)) == ([], at(30))
    assert step(run, at(31))[0] == ["success-rate"]
    assert status(run)["phase"] == SUCCESSFUL


def test_background_runs_until_terminated() -> None:
    run = new_run(web(interval="10s"))  # no count: until terminated
    for i in range(12):
        assert step(run, at(11 * i))[0] == ["success-rate"]
    assert status(run)["phase"] == RUNNING
    # history is bounded: the last 10 measurements (measurementRetention default)
    assert len(result(run)["measurements"]) == 10 and result(run)["count"] == 12
    run["spec"]["terminate"] = True
    assert step(run, at(200)) == ([], None)
    assert status(run)["phase"] == SUCCESSFUL
    assert status(run)["message"] == "Run Terminated"


def test_terminate_before_any_measurement_is_successful() -> None:
    run = new_run(web(initialDelay="1h"), terminate=True)
    assert step(run, T0) == ([], None)
    assert status(run)["phase"] == SUCCESSFUL


def test_measurement_retention_per_metric() -> None:
    run = new_run(
        web(interval="1s"), measurementRetention=[{"metricName": "success.*", "limit": 3}]
    )
    for i in range(5):
        step(run, at(2 * i))
    assert len(result(run)["measurements"]) == 3


def test_one_failed_metric_stops_the_others_and_decides_the_run() -> None:
    run = new_run(web("a", interval="10s"), web("b", interval="1s", count=2, failureLimit=0))
    step(run, T0, {"b": FAILED})
    assert status(run)["phase"] == FAILED
    assert status(run)["message"].startswith('Metric "b" assessed Failed')
    assert result(run, "a")["phase"] == SUCCESSFUL  # terminated by the failure
    assert step(run, at(20)) == ([], None)


def test_worst_phase_wins_in_upstreams_order() -> None:
    run = new_run(
        web("ok"),
        web("err", consecutiveErrorLimit=0),
        web("fail"),
    )
    step(run, T0, {"err": ERROR, "fail": FAILED})
    assert status(run)["phase"] == FAILED  # Failed is worse than Error


def test_dry_run_metric_never_decides() -> None:
    run = new_run(web("a"), web("b"), dryRun=[{"metricName": "b"}])
    step(run, T0, {"b": FAILED})
    assert status(run)["phase"] == SUCCESSFUL
    assert result(run, "b")["dryRun"] is True
    assert (
        result(run, "b")["message"] == "Metric assessed Failed due to failed (1) > failureLimit (0)"
    )
    assert status(run)["dryRunSummary"]["failed"] == 1


def test_resumes_from_status_without_repeating_a_measurement() -> None:
    run = new_run(web(interval="60s", count=2))
    step(run, T0)
    recorded = [dict(m) for m in result(run)["measurements"]]
    # a restarted controller sees only the object: nothing is due before 60 s
    assert step(run, at(30)) == ([], at(60))
    assert result(run)["measurements"] == recorded
    assert step(run, at(61))[0] == ["success-rate"]
    assert status(run)["phase"] == SUCCESSFUL


def test_args_are_substituted_into_the_provider() -> None:
    run = new_run(
        {
            "name": "m",
            "successCondition": "result > {{args.min}}",
            "provider": {"web": {"url": "http://127.0.0.1/{{ args.svc }}"}},
        },
        args=[{"name": "svc", "value": "api"}, {"name": "min", "value": "3"}],
    )
    p = analysis.plan(run, T0)
    assert p.due[0].spec["provider"]["web"]["url"] == "http://127.0.0.1/api"
    assert p.due[0].success_condition == "result > 3"


def test_a_missing_arg_ends_the_run_in_error() -> None:
    run = new_run(web(successCondition="result > {{args.min}}"), args=[{"name": "min"}])
    assert step(run, T0) == ([], None)
    assert status(run)["phase"] == ERROR
    assert (
        status(run)["message"]
        == 'Unable to resolve metric arguments: argument "min" was not supplied'
    )


def test_an_unknown_tag_ends_the_run_in_error() -> None:
    run = new_run(web(successCondition="result > {{args.nope}}"))
    step(run, T0)
    assert (
        status(run)["message"]
        == "Unable to resolve metric arguments: failed to resolve {{args.nope}}"
    )


def test_invalid_specs_as_upstream_validates() -> None:
    cases = [
        (web(count=2), "metrics[0]: interval must be specified when count > 1"),
        (
            web(interval="soon"),
            "metrics[0]: invalid interval string: time: invalid duration 'soon'",
        ),
        ({"name": "x", "provider": {}}, "metrics[0]: no provider specified"),
        (web(failureLimit=-2), "metrics[0]: failureLimit must be >= 0, or -1 to be disabled"),
    ]
    for metric, message in cases:
        run = new_run(metric)
        step(run, T0)
        assert status(run)["phase"] == ERROR
        assert status(run)["message"] == f"Analysis spec invalid: {message}"
    run = new_run()
    step(run, T0)
    assert status(run)["message"] == "Analysis spec invalid: no metrics specified"


def test_a_condition_that_does_not_parse_errors_the_metric_at_once() -> None:
    run = new_run(web(interval="10s", successCondition="result >="))
    p = analysis.plan(run, T0)
    (m,) = p.due
    analysis.fail_metric(
        run,
        m,
        analysis.measurement(ERROR, started=T0, finished=T0, message="successCondition bad"),
    )
    assert analysis.conclude(run, p, T0) is None
    assert status(run)["phase"] == ERROR
    assert (
        status(run)["message"] == 'Metric "success-rate" assessed Error due to successCondition bad'
    )


def test_parse_duration_reads_go_durations() -> None:
    assert analysis.parse_duration("1m30s") == 90
    assert analysis.parse_duration("500ms") == 0.5
    assert analysis.parse_duration("1h") == 3600
    assert analysis.parse_duration("0") == 0


def test_ttl_strategy_by_phase() -> None:
    run = new_run(web(), ttlStrategy={"secondsAfterSuccess": 30, "secondsAfterCompletion": 90})
    assert analysis.ttl_expiry(run) is None  # not finished
    step(run, T0)
    assert analysis.ttl_expiry(run) == at(30)
    run = new_run(web(), ttlStrategy={"secondsAfterSuccess": 30, "secondsAfterCompletion": 90})
    step(run, T0, {"success-rate": FAILED})
    assert analysis.ttl_expiry(run) == at(90)
    run = new_run(web())
    step(run, T0)
    assert analysis.ttl_expiry(run) is None


def test_an_interval_under_a_second_does_not_measure_back_to_back() -> None:
    # "0s" and "1ms" would be due again at once (finishedAt has second precision)
    # and the controller would measure as fast as it loops.
    for interval in ("0s", "1ms"):
        run = new_run(web(interval=interval))
        assert step(run, T0) == (["success-rate"], at(analysis.MIN_INTERVAL))
        assert step(run, T0)[0] == []
        assert step(run, at(0.5))[0] == []
        assert step(run, at(1.5))[0] == ["success-rate"]


def test_a_duration_beyond_gos_range_is_invalid_not_an_overflow() -> None:
    # Go's time.ParseDuration refuses more than int64 nanoseconds (~2562047h);
    # taking it would overflow the datetime of the next measurement.
    run = new_run(web(initialDelay="300000000h"))
    assert step(run, T0) == ([], None)
    assert status(run)["phase"] == ERROR
    assert "invalid startDelay string" in status(run)["message"]


def test_a_huge_answer_is_recorded_cut_and_secrets_masked_before_the_cut() -> None:
    # A web metric without jsonPath records the whole answer (up to 4 MiB): ten
    # of them made the AnalysisRun too large to write, and the run never ended.
    secret = "s3cr3t-token"
    body = "x" * (analysis.MAX_RECORDED - 5) + secret + "y" * 1_000_000
    m = analysis.measurement(SUCCESSFUL, started=T0, finished=T0, value=body, mask=[secret])
    assert len(m["value"]) < analysis.MAX_RECORDED + 100
    assert m["value"].endswith("more characters)")
    # the cut falls inside where the secret was: not a prefix of it is left
    assert "s3cr" not in m["value"] and analysis.MASK[:5] in m["value"]
    run = new_run(web(interval="1s"))
    p = analysis.plan(run, T0)
    for _ in range(12):
        analysis.record(run, p.due[0], m)
    analysis.conclude(run, p, T0)
    assert len(json.dumps(run)) < 100_000
