"""Rules for Pod, Job and CronJob: things that run, and may finish or fail.

Pod and Job follow gitops-engine (pkg/health/health_pod.go, health_job.go);
CronJob follows Argo CD's ``batch/CronJob`` check (suspended, else whether the
last scheduled run succeeded).
"""

from __future__ import annotations

from datetime import datetime

from gitmoor.engine.health._fields import condition, conditions, get, get_bool, get_list, get_str
from gitmoor.model import Health, HealthStatus, JSONDict

# Waiting reasons the kubelet writes for a container that will not start without a
# change (bad image, bad config) or that keeps crashing. The prefix/suffix test is
# gitops-engine's (Err*, *Error, *BackOff); InvalidImageName matches neither, so
# it is named.
_STUCK_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
    }
)


def _is_stuck(reason: str) -> bool:
    return (
        reason in _STUCK_REASONS
        or reason.startswith("Err")
        or reason.endswith("Error")
        or reason.endswith("BackOff")
    )


def _container_statuses(obj: JSONDict) -> list[JSONDict]:
    # Init containers first: one stuck in CrashLoopBackOff keeps the pod Pending
    # forever, which gitops-engine (containers only) would call Progressing.
    return [
        s
        for s in (
            *get_list(obj, "status", "initContainerStatuses"),
            *get_list(obj, "status", "containerStatuses"),
        )
        if isinstance(s, dict)
    ]


def _failure_message(status: JSONDict) -> str:
    terminated = get(status, "state", "terminated")
    if not isinstance(terminated, dict):
        return ""
    if terminated.get("message"):
        return str(terminated["message"])
    if terminated.get("reason") == "OOMKilled":
        return "OOMKilled"
    exit_code = terminated.get("exitCode")
    if exit_code:
        return f'container "{status.get("name", "")}" failed with exit code {exit_code}'
    return ""


def _is_ready(obj: JSONDict) -> bool:
    ready = condition(obj, "Ready")
    if ready is not None:
        return ready.is_true
    # podutils.IsPodReady reads the condition; without conditions (hand-made
    # objects) every container must report ready.
    statuses = get_list(obj, "status", "containerStatuses")
    return bool(statuses) and all(isinstance(s, dict) and s.get("ready") for s in statuses)


def pod(obj: JSONDict) -> Health:
    restart_policy = get_str(obj, "spec", "restartPolicy") or "Always"
    message = get_str(obj, "status", "message")
    if restart_policy == "Always":
        # Only for long-running pods: a hook pod (Never/OnFailure) whose image is
        # still being pulled must not fail the hook early (gitops-engine's comment).
        stuck = []
        for status in _container_statuses(obj):
            waiting = get(status, "state", "waiting")
            if isinstance(waiting, dict) and _is_stuck(str(waiting.get("reason") or "")):
                stuck.append(str(waiting.get("message") or waiting.get("reason")))
        if stuck:
            return Health(HealthStatus.DEGRADED, ", ".join(stuck))

    phase = get_str(obj, "status", "phase")
    if phase == "Pending":
        # The kubelet leaves status.message empty while the scheduler cannot place
        # the pod; its PodScheduled condition says why (Unschedulable: ...).
        scheduled = condition(obj, "PodScheduled")
        if not message and scheduled is not None and scheduled.is_false:
            message = scheduled.describe()
        return Health(HealthStatus.PROGRESSING, message)
    if phase == "Succeeded":
        return Health(HealthStatus.HEALTHY, message)
    if phase == "Failed":
        if message:
            return Health(HealthStatus.DEGRADED, message)
        for status in _container_statuses(obj):
            if failure := _failure_message(status):
                return Health(HealthStatus.DEGRADED, failure)
        return Health(HealthStatus.DEGRADED)
    if phase == "Running":
        if restart_policy != "Always":
            # A pod meant to finish (a hook, a Job's pod) is not done while running.
            return Health(HealthStatus.PROGRESSING, message)
        if _is_ready(obj):
            return Health(HealthStatus.HEALTHY, message)
        for status in get_list(obj, "status", "containerStatuses"):
            last = get(status, "lastState", "terminated")
            if isinstance(last, dict):
                # Not ready after a container already died once: crashing, not starting.
                reason = last.get("reason") or "Error"
                return Health(
                    HealthStatus.DEGRADED,
                    message
                    or f'container "{status.get("name", "")}" restarted after {reason} '
                    f"(exit code {last.get('exitCode', '?')})",
                )
        return Health(HealthStatus.PROGRESSING, message)
    return Health(HealthStatus.UNKNOWN, message)


def job(obj: JSONDict) -> Health:
    failed = complete = suspended = None
    for cond in conditions(obj):
        if not cond.is_true:
            continue
        if cond.type == "Failed":
            failed = cond
        elif cond.type == "Complete":
            complete = cond
        elif cond.type == "Suspended":
            suspended = cond
    if failed is not None:
        return Health(HealthStatus.DEGRADED, failed.message or failed.reason)
    if complete is not None:
        return Health(HealthStatus.HEALTHY, complete.message)
    if suspended is not None or get_bool(obj, "spec", "suspend"):
        # spec.suspend is read too: the Suspended condition appears only once the
        # controller has acted on it.
        return Health(HealthStatus.SUSPENDED, "Job is suspended")
    return Health(HealthStatus.PROGRESSING)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def cron_job(obj: JSONDict) -> Health:
    if get_bool(obj, "spec", "suspend"):
        return Health(HealthStatus.SUSPENDED, "CronJob is suspended")
    scheduled = _time(get(obj, "status", "lastScheduleTime"))
    if scheduled is None:
        return Health(HealthStatus.HEALTHY, "CronJob has not been scheduled yet")
    if get_list(obj, "status", "active"):
        return Health(HealthStatus.HEALTHY)
    # The controller drops a finished Job from `active` and, if it succeeded,
    # moves lastSuccessfulTime past lastScheduleTime in the same status update; a
    # run that is no longer active and left lastSuccessfulTime behind has failed.
    succeeded = _time(get(obj, "status", "lastSuccessfulTime"))
    if succeeded is None or succeeded < scheduled:
        return Health(
            HealthStatus.DEGRADED, "The last job scheduled by the CronJob did not succeed"
        )
    return Health(HealthStatus.HEALTHY)
