"""Rules for the GitOps kinds themselves: Application and ApplicationSet (app of apps).

A parent app that renders Applications needs their health to roll up into its
own, or "the parent is Healthy" says nothing about the apps it created.

- **Application**: the child's own ``status.health``, which its controller
  writes. This is the rule Argo CD shipped until 1.8 and documents for users to
  re-enable (the ``resource.customizations.health.argoproj.io_Application`` Lua
  snippet of its health docs); gitmoor has it on. As in that snippet, a child
  with no health yet (its first refresh has not run) is Progressing: it was just
  created and is on its way. A child whose refresh fails (a project refusal, a
  comparison error) never gets a health; it is Unknown with the condition's
  message, so the parent does not wait on it as if it were progressing.
- **ApplicationSet**: Argo CD's ``argoproj.io/ApplicationSet/health.lua``:
  ``ErrorOccurred=True`` (a generator or template error) is Degraded with its
  message, ``ResourcesUpToDate=True`` Healthy; before either is reported,
  Progressing.

The same rules serve Argo CD's ``argoproj.io`` kinds, which share the status shape,
so that a repository that manages Argo CD Applications reads the same in gitmoor.
"""

from __future__ import annotations

from gitmoor.engine.health._fields import condition, conditions, get_str
from gitmoor.model import Health, HealthStatus, JSONDict

_BY_VALUE = {s.value: s for s in HealthStatus}


def application(obj: JSONDict) -> Health:
    reported = get_str(obj, "status", "health", "status")
    message = get_str(obj, "status", "health", "message")
    if reported:
        status = _BY_VALUE.get(reported)
        if status is None:
            return Health(HealthStatus.UNKNOWN, f"unknown health {reported!r}")
        return Health(status, message)
    failed = next((c for c in conditions(obj) if c.type.endswith("Error") and c.message), None)
    if failed is not None:
        return Health(HealthStatus.UNKNOWN, f"{failed.type}: {failed.message}")
    return Health(HealthStatus.PROGRESSING, "Waiting for the application's first refresh")


def application_set(obj: JSONDict) -> Health:
    error = condition(obj, "ErrorOccurred")
    if error is not None and error.is_true:
        return Health(HealthStatus.DEGRADED, error.message or error.reason)
    up_to_date = condition(obj, "ResourcesUpToDate")
    if up_to_date is not None and up_to_date.is_true:
        return Health(HealthStatus.HEALTHY, up_to_date.message)
    return Health(HealthStatus.PROGRESSING, "Waiting for the status to be reported")
