"""Rules for every kind: kstatus's generic properties and standard conditions.

kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status) computes a status in two passes:
``checkGenericProperties`` first (deletion, generation, the ``Reconciling`` and
``Stalled`` conditions), then a rule for the object's group/kind, and for kinds it
does not know, "Current". We keep that shape, with Argo CD's status words, and for
unknown kinds also read the ``Ready`` / ``Available`` conditions that most operators
(Flux, cert-manager, Crossplane, Knative) write, so a custom resource that reports
failure is not shown as Healthy.
"""

from __future__ import annotations

from gitmoor.engine.health._fields import condition, conditions, generation_lag, get
from gitmoor.model import Health, HealthStatus, JSONDict

# Reasons with which controllers set Ready=False while they are still working
# rather than failed: Flux writes Progressing/ProgressingWithRetry/DependencyNotReady,
# Knative and Crossplane write Creating/Deploying, cert-manager Pending/Issuing.
# kstatus maps Ready=False to InProgress when Reconciling is set; these are the
# reasons that say the same thing without the extra condition.
IN_PROGRESS_REASONS = frozenset(
    {
        "Progressing",
        "ProgressingWithRetry",
        "Reconciling",
        "InProgress",
        "Pending",
        "Creating",
        "Deploying",
        "Initializing",
        "Provisioning",
        "Updating",
        "Issuing",
        "Waiting",
        "DependencyNotReady",
    }
)


def generic_properties(obj: JSONDict) -> Health | None:
    """kstatus ``checkGenericProperties``: a verdict that holds for any kind, or None."""
    if get(obj, "metadata", "deletionTimestamp"):
        # gitops-engine GetResourceHealth: finalizers may hold the object for a
        # while; it is on its way out, not broken.
        return Health(HealthStatus.PROGRESSING, "Pending deletion")
    lag = generation_lag(obj)
    if lag is not None:
        # Everything else in status describes an older spec: nothing in it can
        # be trusted until the controller catches up.
        generation, observed = lag
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for the controller to observe generation {generation} (observed {observed})",
        )
    for cond in conditions(obj):
        # Abnormal-true conditions of the Kubernetes API conventions; the first
        # one set wins, as in kstatus. A controller that sets Stalled has given up.
        if cond.type == "Stalled" and cond.is_true:
            return Health(HealthStatus.DEGRADED, cond.describe() or "Stalled")
        if cond.type == "Reconciling" and cond.is_true:
            return Health(HealthStatus.PROGRESSING, cond.describe() or "Reconciling")
    return None


def standard_conditions(obj: JSONDict) -> Health:
    """Health of a kind without its own rule, from ``Ready`` then ``Available``."""
    for type_ in ("Ready", "Available"):
        cond = condition(obj, type_)
        if cond is None:
            continue
        if cond.is_true:
            return Health(HealthStatus.HEALTHY, cond.message)
        if cond.is_false and cond.reason not in IN_PROGRESS_REASONS:
            return Health(HealthStatus.DEGRADED, cond.describe() or f"{type_} is False")
        # Unknown, or False with a reason that says "not yet".
        return Health(HealthStatus.PROGRESSING, cond.describe() or f"Waiting for {type_}")
    # No status, or conditions that say nothing about readiness: kstatus reports
    # such objects (ConfigMap, Role, most CRs without a controller) as Current.
    return Health(HealthStatus.HEALTHY)
