"""gitmoor.engine: the one API the drivers (CLI, controller, server) use.

``Engine`` with its options, results and events is re-exported here; drivers
import these names, never the engine's internal modules (an import-linter
contract holds them to it). The names load on first use, so that a command
that needs none of the engine does not pay for importing it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitmoor.engine.app import (
        LOCAL_REVISION,
        STALE_RUNNING,
        ClusterResolver,
        Desired,
        Engine,
        LocalTree,
        options_for,
        running_silence,
    )
    from gitmoor.engine.automation import (
        ComparisonSummary,
        Decision,
        LastSync,
        Move,
        Reason,
        decide,
    )
    from gitmoor.engine.compare import Comparison, DryRunCache, ResourceStatus
    from gitmoor.engine.health import app_health, health_of
    from gitmoor.engine.operation import status_of
    from gitmoor.engine.redaction import (
        app_identity,
        redactor_for,
        scrub_identity,
        scrub_message,
    )
    from gitmoor.engine.sync import (
        Action,
        Phase,
        ResourceResult,
        StepOutcome,
        SyncEvent,
        SyncOptions,
        SyncResult,
        TakenField,
    )

_WHERE = {
    "STALE_RUNNING": "app",
    "ClusterResolver": "app",
    "ComparisonSummary": "automation",
    "Decision": "automation",
    "LastSync": "automation",
    "Move": "automation",
    "Reason": "automation",
    "decide": "automation",
    "app_health": "health",
    "health_of": "health",
    "app_identity": "redaction",
    "redactor_for": "redaction",
    "scrub_identity": "redaction",
    "scrub_message": "redaction",
    "status_of": "operation",
    "Desired": "app",
    "Engine": "app",
    "LOCAL_REVISION": "app",
    "LocalTree": "app",
    "options_for": "app",
    "running_silence": "app",
    "Comparison": "compare",
    "DryRunCache": "compare",
    "ResourceStatus": "compare",
    "Action": "sync",
    "Phase": "sync",
    "ResourceResult": "sync",
    "StepOutcome": "sync",
    "SyncEvent": "sync",
    "SyncOptions": "sync",
    "SyncResult": "sync",
    "TakenField": "sync",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gitmoor.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gitmoor.engine.{module}"), name)


__all__ = [
    "LOCAL_REVISION",
    "STALE_RUNNING",
    "Action",
    "ClusterResolver",
    "Comparison",
    "ComparisonSummary",
    "Decision",
    "Desired",
    "DryRunCache",
    "Engine",
    "LastSync",
    "LocalTree",
    "Move",
    "Phase",
    "Reason",
    "ResourceResult",
    "ResourceStatus",
    "StepOutcome",
    "SyncEvent",
    "SyncOptions",
    "SyncResult",
    "TakenField",
    "app_health",
    "app_identity",
    "decide",
    "health_of",
    "options_for",
    "redactor_for",
    "running_silence",
    "scrub_identity",
    "scrub_message",
    "status_of",
]
