"""The AnalysisRun state machine: which measurement is due, and what the run is.

Pure functions over the AnalysisRun object (Argo Rollouts' spelling, the
contract between slices): no I/O, the clock is a parameter, so every rule is
tested on plain data. The controller (``analysis_controller``) calls
:func:`plan`, takes the due measurements with ``providers``, and hands them
to :func:`conclude`, which records them, assesses the metrics and the run,
trims the history and says when the next measurement is due.

The rules are Argo Rollouts' ``analysis/analysis.go``:

- a metric without ``interval`` and ``count`` measures once; with
  ``interval`` and no ``count`` (or ``count: 0``) it measures until the run
  is terminated (background analysis); ``count > 1`` needs an ``interval``;
- ``initialDelay`` counts from ``status.startedAt``;
- a measurement that errored is retried after 10 s, whatever the interval;
- ``failureLimit`` (default 0: the first failure fails the metric; -1
  disables it), ``inconclusiveLimit`` (default 0), ``consecutiveErrorLimit``
  (default 4) and ``consecutiveSuccessLimit`` (default 0: off) decide when a
  metric ends early; reaching ``count`` ends it Successful;
- one metric Failed, Error or Inconclusive terminates the run: the other
  metrics take no new measurement; ``spec.terminate`` does the same, and
  ends a run that has nothing worse Successful ("Run Terminated");
- the run's phase, once every metric is done, is the worst metric phase in
  the order Successful < Running < Pending < Inconclusive < Error < Failed;
  dry-run metrics are measured and reported but never decide the run;
- ``status.message`` names the metric that decided, e.g.
  ``Metric "success-rate" assessed Failed due to failed (1) > failureLimit (0)``;
- each metric keeps its last 10 measurements (``measurementRetention``);
- a finished run with ``spec.ttlStrategy`` is deleted once its time is up.

Timestamps are written at second precision, as ``metav1.Time`` is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gitmoor.model import JSONDict, UserInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

PENDING = "Pending"
RUNNING = "Running"
SUCCESSFUL = "Successful"
FAILED = "Failed"
ERROR = "Error"
INCONCLUSIVE = "Inconclusive"
#: Argo Rollouts' AnalysisPhase values
PHASES = (PENDING, RUNNING, SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE)
COMPLETED = frozenset({SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE})
#: best to worst (``utils/analysis.analysisStatusOrder``)
_ORDER = (SUCCESSFUL, RUNNING, PENDING, INCONCLUSIVE, ERROR, FAILED)

DEFAULT_MEASUREMENT_RETENTION = 10
DEFAULT_ERROR_RETRY = 10.0
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
#: the shortest wait between two measurements of a metric. Upstream compares
#: finishedAt (second precision) + interval with the clock, so an interval under
#: a second (``0s``, ``1ms``) is due at once and the run re-measures as fast as
#: its controller can loop; gitmoor waits at least this long instead.
MIN_INTERVAL = 1.0
#: Go's time.ParseDuration range (int64 nanoseconds); longer is "invalid duration"
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9
#: the value a secretKeyRef arg takes while the spec is validated, as upstream
#: (``getResolvedMetricsWithoutSecrets``): the secret itself is read only to measure
SECRET_PLACEHOLDER = "temp-for-secret"


class AnalysisSpecError(UserInputError):
    """The run's metrics or args cannot be used; the run ends in Error."""


class ArgumentError(AnalysisSpecError):
    """An arg has no value, or a ``{{...}}`` tag names none."""


def worse(a: str, b: str) -> bool:
    """Is ``b`` a worse phase than ``a``?"""
    rank = {p: i for i, p in enumerate(_ORDER)}
    return rank.get(b, 0) > rank.get(a, 0)


# --------------------------------------------------------------------- time


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``30s``, ``1m30s``, ``500ms``), as
    ``time.ParseDuration`` reads the ``interval`` and ``initialDelay`` fields."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not s or pos != len(s) or total > MAX_DURATION_SECONDS:
        raise AnalysisSpecError(f"time: invalid duration {text!r}")
    return sign * total


def timestamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# --------------------------------------------------------------------- spec


def _int_or_string(value: Any, default: int, what: str) -> int:
    """An IntOrString field (``count: 5`` or ``count: "{{args.n}}"`` once resolved)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise AnalysisSpecError(f"{what} must be an integer, not {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError as e:
        raise AnalysisSpecError(f"{what} must be an integer, not {value!r}") from e


@dataclass(frozen=True)
class Metric:
    """One metric of ``spec.metrics``, its args resolved and validated."""

    name: str
    #: seconds between measurements; None: measure once (``interval`` omitted)
    interval: float | None
    initial_delay: float | None
    #: the effective count; None: until terminated
    count: int | None
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    consecutive_success_limit: int
    success_condition: str
    failure_condition: str
    #: the resolved metric as the run spells it (the providers read ``provider``)
    spec: JSONDict = field(compare=False)

    @classmethod
    def parse(cls, spec: JSONDict) -> Metric:
        """Validate as upstream's ``ValidateMetric``, with its messages."""
        name = str(spec.get("name") or "")
        if not name:
            raise AnalysisSpecError("metric has no name")
        count = _int_or_string(spec.get("count"), 0, "count")
        failure_limit = _int_or_string(spec.get("failureLimit"), 0, "failureLimit")
        success_limit = _int_or_string(
            spec.get("consecutiveSuccessLimit"), 0, "consecutiveSuccessLimit"
        )
        inconclusive_limit = _int_or_string(spec.get("inconclusiveLimit"), 0, "inconclusiveLimit")
        error_limit = _int_or_string(
            spec.get("consecutiveErrorLimit"),
            DEFAULT_CONSECUTIVE_ERROR_LIMIT,
            "consecutiveErrorLimit",
        )
        if success_limit < 0:
            raise AnalysisSpecError("consecutiveSuccessLimit must be >= 0")
        if failure_limit < -1:
            raise AnalysisSpecError("failureLimit must be >= 0, or -1 to be disabled")
        if success_limit == 0 and failure_limit == -1:
            raise AnalysisSpecError(
                "failureLimit and consecutiveSuccessLimit cannot both be disabled"
            )
        if inconclusive_limit < 0:
            raise AnalysisSpecError("inconclusiveLimit must be >= 0")
        if error_limit < 0:
            raise AnalysisSpecError("consecutiveErrorLimit must be >= 0")
        if count > 0:
            if failure_limit >= 0 and count < failure_limit + success_limit:
                raise AnalysisSpecError(
                    f"count ({count}) must be >= failureLimit + consecutiveSuccessLimit "
                    f"({failure_limit} + {success_limit}) if both >= 0"
                )
            if failure_limit < 0 and count < success_limit:
                raise AnalysisSpecError("count must be >= consecutiveSuccessLimit")
            if count < inconclusive_limit:
                raise AnalysisSpecError("count must be >= inconclusiveLimit")
        interval_text = str(spec.get("interval") or "")
        if count > 1 and not interval_text:
            raise AnalysisSpecError("interval must be specified when count > 1")
        try:
            interval = parse_duration(interval_text) if interval_text else None
        except AnalysisSpecError as e:
            raise AnalysisSpecError(f"invalid interval string: {e.message}") from e
        delay_text = str(spec.get("initialDelay") or "")
        try:
            delay = parse_duration(delay_text) if delay_text else None
        except AnalysisSpecError as e:
            raise AnalysisSpecError(f"invalid startDelay string: {e.message}") from e
        provider = spec.get("provider") or {}
        kinds = [k for k, v in provider.items() if v] if isinstance(provider, dict) else []
        if not kinds:
            raise AnalysisSpecError("no provider specified")
        if len(kinds) > 1:
            raise AnalysisSpecError("multiple providers specified")
        # EffectiveCount: no count and no interval is one measurement; an
        # interval without a count measures until terminated.
        effective: int | None = count if count > 0 else (None if interval_text else 1)
        return cls(
            name=name,
            interval=interval,
            initial_delay=delay,
            count=effective,
            failure_limit=failure_limit,
            inconclusive_limit=inconclusive_limit,
            consecutive_error_limit=error_limit,
            consecutive_success_limit=success_limit,
            success_condition=str(spec.get("successCondition") or ""),
            failure_condition=str(spec.get("failureCondition") or ""),
            spec=spec,
        )


_TAG = re.compile(r"\{\{(.*?)\}\}")


def substitute(text: str, values: dict[str, str]) -> str:
    """``{{args.NAME}}`` replaced by the arg's value; any other tag is an error,
    as upstream's ``ResolveArgs`` (fasttemplate with ``{{``/``}}``)."""

    def one(m: re.Match[str]) -> str:
        tag = m.group(1).strip()
        if tag.startswith("args.") and tag[5:] in values:
            return values[tag[5:]]
        raise ArgumentError(f"failed to resolve {{{{{m.group(1)}}}}}")

    return _TAG.sub(one, text)


def _substitute_all(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, list):
        return [_substitute_all(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_all(v, values) for k, v in value.items()}
    return value


def arg_values(args: list[JSONDict], secrets: dict[str, str] | None = None) -> dict[str, str]:
    """name → value of the run's ``spec.args``. A ``secretKeyRef`` arg takes its
    value from ``secrets`` (name → value, read by the controller just before a
    measurement) or, when None, the placeholder used to validate the spec."""
    values: dict[str, str] = {}
    for arg in args:
        name = str(arg.get("name") or "")
        if arg.get("value") is not None:
            values[name] = str(arg["value"])
            continue
        ref = (arg.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            if secrets is None:
                values[name] = SECRET_PLACEHOLDER
            elif name in secrets:
                values[name] = secrets[name]
            else:
                raise ArgumentError(f'argument "{name}" was not supplied')
            continue
        raise ArgumentError(f'argument "{name}" was not supplied')
    return values


def resolve_metric(metric: JSONDict, values: dict[str, str]) -> JSONDict:
    resolved = _substitute_all(metric, values)
    assert isinstance(resolved, dict)
    return resolved


def parse_metrics(run: JSONDict, secrets: dict[str, str] | None = None) -> list[Metric]:
    """The run's metrics, args resolved and validated (``ValidateMetrics``)."""
    spec = run.get("spec") or {}
    values = arg_values(list(spec.get("args") or []), secrets)
    raw = list(spec.get("metrics") or [])
    if not raw:
        raise AnalysisSpecError("no metrics specified")
    out: list[Metric] = []
    seen: set[str] = set()
    resolved = [resolve_metric(m, values) for m in raw]
    for i, m in enumerate(resolved):
        name = m.get("name")
        if name in seen:
            raise AnalysisSpecError(f"metrics[{i}]: duplicate name '{name}'")
        seen.add(str(name))
        try:
            out.append(Metric.parse(m))
        except AnalysisSpecError as e:
            raise AnalysisSpecError(f"metrics[{i}]: {e.message}") from e
    return out


def _matching(entries: list[JSONDict], metrics: list[Metric], what: str) -> dict[str, JSONDict]:
    """Metric name → the dryRun / measurementRetention entry naming it
    (``*`` for every metric, else a regular expression, as upstream)."""
    out: dict[str, JSONDict] = {}
    for entry in entries:
        pattern = str(entry.get("metricName") or "")
        if not pattern:
            raise AnalysisSpecError(f"{what}[].metricName is empty")
        for m in metrics:
            if pattern == "*":
                out[m.name] = entry
                continue
            try:
                if re.search(pattern, m.name):
                    out[m.name] = entry
            except re.error as e:
                raise AnalysisSpecError(f"{what} metricName {pattern!r}: {e}") from e
    return out


# --------------------------------------------------------------------- status


def metric_results(run: JSONDict) -> list[JSONDict]:
    status = run.setdefault("status", {})
    results: list[JSONDict] | None = status.get("metricResults")
    if not isinstance(results, list):
        results = []
        status["metricResults"] = results
    return results


def get_result(run: JSONDict, name: str) -> JSONDict | None:
    for r in (run.get("status") or {}).get("metricResults") or []:
        if r.get("name") == name:
            assert isinstance(r, dict)
            return r
    return None


def last_measurement(run: JSONDict, name: str) -> JSONDict | None:
    result = get_result(run, name)
    measurements = (result or {}).get("measurements") or []
    return measurements[-1] if measurements else None


def is_terminating(run: JSONDict) -> bool:
    """Asked to stop, or a (non-dry-run) metric already ended the run early."""
    if (run.get("spec") or {}).get("terminate"):
        return True
    return any(
        not r.get("dryRun") and r.get("phase") in (FAILED, ERROR, INCONCLUSIVE)
        for r in (run.get("status") or {}).get("metricResults") or []
    )


#: the most of a measurement's value or message recorded. A web metric without a
#: jsonPath records the whole answer (up to providers.MAX_BODY); ten of those kept
#: per metric would push the AnalysisRun past the API server's object size limit,
#: every status write would be refused and the run would never end. The
#: conditions see the whole result; only the record is cut.
MAX_RECORDED = 4096


def _recorded(text: str) -> str:
    if len(text) <= MAX_RECORDED:
        return text
    return text[:MAX_RECORDED] + f"... ({len(text) - MAX_RECORDED} more characters)"


#: what a secretKeyRef arg's value is replaced with in a recorded value or message
MASK = "*****"


def measurement(
    phase: str,
    *,
    started: datetime,
    finished: datetime,
    value: str = "",
    message: str = "",
    mask: Sequence[str] = (),
) -> JSONDict:
    """A measurement as recorded: the ``mask`` strings (secret values) replaced,
    then cut to MAX_RECORDED (in that order, so no cut leaves part of a secret)."""
    m: JSONDict = {
        "phase": phase,
        "startedAt": timestamp(started),
        "finishedAt": timestamp(finished),
    }
    for secret in mask:
        if secret:
            value, message = value.replace(secret, MASK), message.replace(secret, MASK)
    if value:
        m["value"] = _recorded(value)
    if message:
        m["message"] = _recorded(message)
    return m


# --------------------------------------------------------------------- the step


@dataclass
class Plan:
    """What one reconcile of a run does. ``error``: the run ends Error with it."""

    metrics: list[Metric] = field(default_factory=list)
    due: list[Metric] = field(default_factory=list)
    dry_run: frozenset[str] = frozenset()
    retention: dict[str, int] = field(default_factory=dict)
    error: str = ""


def _due(run: JSONDict, metric: Metric, terminating: bool, now: datetime) -> bool:
    """``generateMetricTasks`` for one metric."""
    result = get_result(run, metric.name)
    if result is not None and result.get("phase") in COMPLETED:
        return False
    last = last_measurement(run, metric.name)
    if terminating:
        return False
    if last is None:
        if metric.initial_delay:
            started = parse_time((run.get("status") or {}).get("startedAt"))
            if started is None or started + timedelta(seconds=metric.initial_delay) > now:
                return False
        return True
    if metric.count is not None and int((result or {}).get("count") or 0) >= metric.count:
        return False
    finished = parse_time(last.get("finishedAt"))
    if finished is None:
        # never written by gitmoor (its providers finish in one call): measure again
        return True
    return now > finished + timedelta(seconds=_interval_after(metric, last))


def _interval_after(metric: Metric, last: JSONDict) -> float:
    if last.get("phase") == ERROR or metric.interval is None:
        return DEFAULT_ERROR_RETRY
    return max(metric.interval, MIN_INTERVAL)


def plan(run: JSONDict, now: datetime) -> Plan:
    """Validate the run and list the metrics to measure now (sets ``startedAt``)."""
    status = run.setdefault("status", {})
    if status.get("phase") in COMPLETED:
        return Plan()
    status.setdefault("startedAt", timestamp(now))
    spec = run.get("spec") or {}
    try:
        metrics = parse_metrics(run)
    except ArgumentError as e:
        return Plan(error=f"Unable to resolve metric arguments: {e.message}")
    except AnalysisSpecError as e:
        return Plan(error=f"Analysis spec invalid: {e.message}")
    try:
        dry = _matching(list(spec.get("dryRun") or []), metrics, "dryRun")
        keep = _matching(
            list(spec.get("measurementRetention") or []), metrics, "measurementRetention"
        )
    except AnalysisSpecError as e:
        return Plan(error=f"Analysis spec invalid: {e.message}")
    retention = {
        name: int(e.get("limit") or 0) for name, e in keep.items() if int(e.get("limit") or 0) > 0
    }
    terminating = is_terminating(run)
    due = [m for m in metrics if _due(run, m, terminating, now)]
    return Plan(metrics, due, frozenset(dry), retention)


def record(run: JSONDict, metric: Metric, m: JSONDict, *, dry_run: bool = False) -> None:
    """Append a finished measurement and count it (``runMeasurements``)."""
    results = metric_results(run)
    result = next((r for r in results if r.get("name") == metric.name), None)
    if result is None:
        result = {"name": metric.name, "phase": RUNNING}
        if dry_run:
            result["dryRun"] = True
        results.append(result)
    phase = m.get("phase")
    counters = ("count", "successful", "failed", "inconclusive", "error", "consecutiveError")
    for c in (*counters, "consecutiveSuccess"):
        result[c] = int(result.get(c) or 0)
    if phase == SUCCESSFUL:
        result["successful"] += 1
        result["count"] += 1
        result["consecutiveError"] = 0
        result["consecutiveSuccess"] += 1
    elif phase in (FAILED, INCONCLUSIVE):
        result["failed" if phase == FAILED else "inconclusive"] += 1
        result["count"] += 1
        result["consecutiveError"] = 0
        result["consecutiveSuccess"] = 0
    elif phase == ERROR:
        result["error"] += 1
        result["consecutiveError"] += 1
        result["consecutiveSuccess"] = 0
    result.setdefault("measurements", []).append(m)


def fail_metric(run: JSONDict, metric: Metric, m: JSONDict, *, dry_run: bool = False) -> None:
    """Record an Error measurement that no retry can mend (a condition that does
    not parse) and end the metric Error at once, rather than after
    ``consecutiveErrorLimit`` retries of an expression that will never parse."""
    record(run, metric, m, dry_run=dry_run)
    result = get_result(run, metric.name)
    assert result is not None
    result["phase"] = ERROR
    result["message"] = str(m.get("message") or "")


def _failure_inconclusive_or_error(metric: Metric, result: JSONDict) -> tuple[str, str]:
    """``assessMetricFailureInconclusiveOrError``: the last rule that holds wins."""
    phase, message = "", ""
    failed = int(result.get("failed") or 0)
    if metric.failure_limit >= 0 and failed > metric.failure_limit:
        phase = FAILED
        message = f"failed ({failed}) > failureLimit ({metric.failure_limit})"
    inconclusive = int(result.get("inconclusive") or 0)
    if inconclusive > metric.inconclusive_limit:
        phase = INCONCLUSIVE
        message = f"inconclusive ({inconclusive}) > inconclusiveLimit ({metric.inconclusive_limit})"
    errors = int(result.get("consecutiveError") or 0)
    if errors > metric.consecutive_error_limit:
        phase = ERROR
        message = (
            f"consecutiveErrors ({errors}) > consecutiveErrorLimit "
            f"({metric.consecutive_error_limit})"
        )
    return phase, message


def assess_metric(metric: Metric, result: JSONDict, terminating: bool) -> str:
    """``assessMetricStatus``."""
    if result.get("phase") in COMPLETED:
        return str(result["phase"])
    measurements = result.get("measurements") or []
    if not measurements:
        return SUCCESSFUL if terminating else PENDING
    if measurements[-1].get("phase") not in COMPLETED:
        return RUNNING
    phase, _ = _failure_inconclusive_or_error(metric, result)
    if phase:
        return phase
    consecutive = int(result.get("consecutiveSuccess") or 0)
    if metric.consecutive_success_limit > 0 and consecutive >= metric.consecutive_success_limit:
        return SUCCESSFUL
    if metric.count is not None and int(result.get("count") or 0) >= metric.count:
        if metric.consecutive_success_limit > 0:
            # the success streak was not reached: Inconclusive while failureLimit
            # still applies, Failed when it is disabled (-1)
            return INCONCLUSIVE if metric.failure_limit >= 0 else FAILED
        return SUCCESSFUL
    return SUCCESSFUL if terminating else RUNNING


def assess(run: JSONDict, p: Plan) -> tuple[str, str]:
    """``assessRunStatus``: update each metric's phase and the summaries, and
    return the run's (phase, message)."""
    status = run.setdefault("status", {})
    terminating = is_terminating(run)
    worst, worst_message = "", ""
    if (run.get("spec") or {}).get("terminate"):
        worst_message = "Run Terminated"
    everything_completed = True
    summary = {"count": 0, "successful": 0, "failed": 0, "inconclusive": 0, "error": 0}
    dry_summary = dict(summary)
    for metric in p.metrics:
        dry = metric.name in p.dry_run
        target = dry_summary if dry else summary
        target["count"] += 1
        result = get_result(run, metric.name)
        if result is None:
            # not started (an initial delay): the run is not done
            everything_completed = False
            continue
        phase = assess_metric(metric, result, terminating)
        if result.get("phase") != phase:
            last = (result.get("measurements") or [{}])[-1]
            if last.get("message"):
                result["message"] = last["message"]
            result["phase"] = phase
        if phase not in COMPLETED:
            everything_completed = False
            continue
        why_phase, why = _failure_inconclusive_or_error(metric, result)
        if not why and phase in (ERROR, FAILED, INCONCLUSIVE) and result.get("message"):
            why = str(result["message"])
        if not dry:
            if not worst or worse(worst, phase):
                worst = phase
                if why:
                    worst_message = f'Metric "{metric.name}" assessed {phase} due to {why}'
                    if why_phase and result.get("message"):
                        worst_message += f': "Error Message: {result["message"]}"'
        else:
            worst = worst or SUCCESSFUL
            if why:
                result["message"] = f"Metric assessed {phase} due to {why}"
        key = {ERROR: "error", FAILED: "failed", INCONCLUSIVE: "inconclusive"}.get(
            why_phase, "successful"
        )
        target[key] += 1
    status["runSummary"] = summary
    status["dryRunSummary"] = dry_summary
    worst_message = worst_message.strip()
    if terminating:
        return (worst or SUCCESSFUL), worst_message
    if not everything_completed or not worst:
        return RUNNING, ""
    return worst, worst_message


def trim(run: JSONDict, retention: dict[str, int]) -> None:
    """Keep the last N measurements of each metric (default 10, as upstream)."""
    for result in (run.get("status") or {}).get("metricResults") or []:
        limit = retention.get(str(result.get("name")), DEFAULT_MEASUREMENT_RETENTION)
        ms = result.get("measurements") or []
        if len(ms) > limit:
            result["measurements"] = ms[len(ms) - limit :]


def next_due(run: JSONDict, metrics: list[Metric]) -> datetime | None:
    """When the earliest next measurement falls due (``calculateNextReconcileTime``);
    None when nothing waits for time (the run is done, or waits for terminate)."""
    if (run.get("status") or {}).get("phase") in COMPLETED or is_terminating(run):
        return None
    at: datetime | None = None
    for metric in metrics:
        result = get_result(run, metric.name)
        if result is not None and result.get("phase") in COMPLETED:
            continue
        last = last_measurement(run, metric.name)
        when: datetime | None
        if last is None:
            started = parse_time((run.get("status") or {}).get("startedAt"))
            if started is None:
                continue
            when = started + timedelta(seconds=metric.initial_delay or 0)
        else:
            if metric.count is not None and int((result or {}).get("count") or 0) >= metric.count:
                continue
            finished = parse_time(last.get("finishedAt"))
            if finished is None:
                continue
            when = finished + timedelta(seconds=_interval_after(metric, last))
        if at is None or when < at:
            at = when
    return at


def ttl_expiry(run: JSONDict) -> datetime | None:
    """When a finished run with ``spec.ttlStrategy`` may be deleted (upstream's
    ``isAnalysisRunTtlExceeded``: ``secondsAfterSuccess`` for a Successful run,
    ``secondsAfterFailure`` for a Failed one, else ``secondsAfterCompletion``)."""
    status = run.get("status") or {}
    ttl = (run.get("spec") or {}).get("ttlStrategy")
    phase = status.get("phase")
    completed = parse_time(status.get("completedAt"))
    if not isinstance(ttl, dict) or phase not in COMPLETED or completed is None:
        return None
    seconds = None
    if phase == SUCCESSFUL and ttl.get("secondsAfterSuccess") is not None:
        seconds = ttl["secondsAfterSuccess"]
    elif phase == FAILED and ttl.get("secondsAfterFailure") is not None:
        seconds = ttl["secondsAfterFailure"]
    elif ttl.get("secondsAfterCompletion") is not None:
        seconds = ttl["secondsAfterCompletion"]
    if seconds is None:
        return None
    return completed + timedelta(seconds=int(seconds))


def conclude(run: JSONDict, p: Plan, now: datetime) -> datetime | None:
    """After the due measurements are recorded: assess, set phase, message and
    ``completedAt``, trim the history; returns when the next one is due."""
    status = run.setdefault("status", {})
    if p.error:
        status["phase"] = ERROR
        status["message"] = p.error
        status.setdefault("completedAt", timestamp(now))
        return None
    terminating = is_terminating(run)
    phase, message = assess(run, p)
    if not terminating and is_terminating(run):
        # A metric just ended the run early: upstream sees that at its next
        # reconcile (its own status update requeues it); assessing again here
        # reaches the same state in one write.
        phase, message = assess(run, p)
    if phase != status.get("phase"):
        status["phase"] = phase
        status["message"] = message
        if phase in COMPLETED:
            status.setdefault("completedAt", timestamp(now))
    trim(run, p.retention)
    return next_due(run, p.metrics)
