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
        AppDeletion,
        ClusterResolver,
        DeleteIncompleteError,
        Desired,
        Engine,
        LocalTree,
        options_for,
        running_silence,
    )
    from gitmoor.engine.appset.generators import GeneratorContext
    from gitmoor.engine.appset.reconcile import (
        APPSET_FINALIZER,
        AppSetDeletion,
        AppSetOutcome,
        appset_for_deletion,
        appset_invalid_spec_status,
        appset_owns,
        appset_resources,
        delete_appset,
        finalize_appset,
        reconcile_appset,
        set_appset_finalizer,
        write_appset_status,
    )
    from gitmoor.engine.automation import (
        ComparisonSummary,
        Decision,
        Gates,
        LastSync,
        Move,
        Reason,
        RollbackState,
        automation_conditions,
        decide,
        dependency_state,
        depends_on,
        observe_health,
        rollback_state,
    )
    from gitmoor.engine.children import RESOURCES_FINALIZER, TreeNode, being_deleted, parent_of
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
    from gitmoor.engine.why import explain
    from gitmoor.engine.windows import (
        SyncWindowClosed,
        WindowVerdict,
        active_windows,
        automated_verdict,
        manual_verdict,
    )

_WHERE = {
    "SyncWindowClosed": "windows",
    "WindowVerdict": "windows",
    "active_windows": "windows",
    "automated_verdict": "windows",
    "manual_verdict": "windows",
    "GeneratorContext": "appset.generators",
    "APPSET_FINALIZER": "appset.reconcile",
    "AppSetDeletion": "appset.reconcile",
    "AppSetOutcome": "appset.reconcile",
    "appset_for_deletion": "appset.reconcile",
    "appset_invalid_spec_status": "appset.reconcile",
    "appset_owns": "appset.reconcile",
    "appset_resources": "appset.reconcile",
    "delete_appset": "appset.reconcile",
    "finalize_appset": "appset.reconcile",
    "reconcile_appset": "appset.reconcile",
    "set_appset_finalizer": "appset.reconcile",
    "write_appset_status": "appset.reconcile",
    "STALE_RUNNING": "app",
    "AppDeletion": "app",
    "DeleteIncompleteError": "app",
    "ClusterResolver": "app",
    "ComparisonSummary": "automation",
    "Decision": "automation",
    "LastSync": "automation",
    "Move": "automation",
    "Reason": "automation",
    "decide": "automation",
    "Gates": "automation",
    "RollbackState": "automation",
    "automation_conditions": "automation",
    "observe_health": "automation",
    "rollback_state": "automation",
    "dependency_state": "automation",
    "depends_on": "automation",
    "explain": "why",
    "RESOURCES_FINALIZER": "children",
    "TreeNode": "children",
    "being_deleted": "children",
    "parent_of": "children",
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
    "APPSET_FINALIZER",
    "LOCAL_REVISION",
    "RESOURCES_FINALIZER",
    "STALE_RUNNING",
    "Action",
    "AppDeletion",
    "AppSetDeletion",
    "AppSetOutcome",
    "ClusterResolver",
    "Comparison",
    "ComparisonSummary",
    "Decision",
    "DeleteIncompleteError",
    "Desired",
    "DryRunCache",
    "Engine",
    "Gates",
    "GeneratorContext",
    "LastSync",
    "LocalTree",
    "Move",
    "Phase",
    "Reason",
    "ResourceResult",
    "ResourceStatus",
    "RollbackState",
    "StepOutcome",
    "SyncEvent",
    "SyncOptions",
    "SyncResult",
    "SyncWindowClosed",
    "TakenField",
    "TreeNode",
    "WindowVerdict",
    "active_windows",
    "app_health",
    "app_identity",
    "appset_for_deletion",
    "appset_invalid_spec_status",
    "appset_owns",
    "appset_resources",
    "automated_verdict",
    "automation_conditions",
    "being_deleted",
    "decide",
    "delete_appset",
    "dependency_state",
    "depends_on",
    "explain",
    "finalize_appset",
    "health_of",
    "manual_verdict",
    "observe_health",
    "options_for",
    "parent_of",
    "reconcile_appset",
    "redactor_for",
    "rollback_state",
    "running_silence",
    "scrub_identity",
    "scrub_message",
    "set_appset_finalizer",
    "status_of",
    "write_appset_status",
]
