"""``health_of`` and ``app_health``: generic properties, then the kind's rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.engine.health import _apps, _cluster, _pods, _rollouts, _secrets, _workloads
from gitmoor.engine.health._fields import group_kind
from gitmoor.engine.health._generic import generic_properties, standard_conditions
from gitmoor.model import Health, HealthStatus, JSONDict

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    Rule = Callable[[JSONDict], Health]

# Keyed by (group, kind), not by version: the status fields these rules read are
# the same in every served version. The extensions/* entries are the pre-1.16
# homes of the same kinds, still found in old charts (gitops-engine keeps them).
RULES: Mapping[tuple[str, str], Rule] = {
    ("apps", "Deployment"): _workloads.deployment,
    ("extensions", "Deployment"): _workloads.deployment,
    ("apps", "StatefulSet"): _workloads.stateful_set,
    ("apps", "DaemonSet"): _workloads.daemon_set,
    ("extensions", "DaemonSet"): _workloads.daemon_set,
    ("apps", "ReplicaSet"): _workloads.replica_set,
    ("extensions", "ReplicaSet"): _workloads.replica_set,
    ("", "Pod"): _pods.pod,
    ("batch", "Job"): _pods.job,
    ("batch", "CronJob"): _pods.cron_job,
    ("", "Service"): _cluster.service,
    ("networking.k8s.io", "Ingress"): _cluster.ingress,
    ("extensions", "Ingress"): _cluster.ingress,
    ("", "PersistentVolumeClaim"): _cluster.persistent_volume_claim,
    ("autoscaling", "HorizontalPodAutoscaler"): _cluster.horizontal_pod_autoscaler,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _cluster.custom_resource_definition,
    ("apiregistration.k8s.io", "APIService"): _cluster.api_service,
    ("", "Namespace"): _cluster.namespace,
    ("cert-manager.io", "Certificate"): _cluster.cert_manager_certificate,
    ("bitnami.com", "SealedSecret"): _secrets.sealed_secret,
    ("external-secrets.io", "ExternalSecret"): _secrets.external_secret,
    # App of apps: a child Application's (or ApplicationSet's) health rolls up into
    # its parent's; Argo CD's kinds share the status shape.
    ("gitmoor.io", "Application"): _apps.application,
    ("argoproj.io", "Application"): _apps.application,
    ("gitmoor.io", "ApplicationSet"): _apps.application_set,
    ("argoproj.io", "ApplicationSet"): _apps.application_set,
    # Progressive delivery: Argo Rollouts' kinds, run by gitmoor or by Argo Rollouts.
    ("argoproj.io", "Rollout"): _rollouts.rollout,
    ("argoproj.io", "AnalysisRun"): _rollouts.analysis_run,
}


def health_of(obj: JSONDict) -> Health:
    """The health of one live object, as Argo CD would show it.

    Never raises: an object whose status cannot be read is Unknown with the reason,
    as gitops-engine's ``GetResourceHealth`` does when its typed conversion fails.
    """
    if not isinstance(obj, dict):
        return Health(HealthStatus.UNKNOWN, f"not an object: {type(obj).__name__}")
    try:
        generic = generic_properties(obj)
        if generic is not None:
            return generic
        rule = RULES.get(group_kind(obj), standard_conditions)
        return rule(obj)
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        # The readers tolerate wrong types; this is the backstop for a shape no
        # rule anticipated, so that one odd object cannot stop a whole app's rollup.
        return Health(HealthStatus.UNKNOWN, f"cannot assess health: {err}")


def app_health(resources: Iterable[Health]) -> Health:
    """The health of an app: the worst of its resources (Argo CD's ``IsWorse`` order).

    The caller decides what goes in. Argo CD's conventions, which gitmoor follows:
    a desired object absent from the cluster counts as ``Health(MISSING)`` (only the
    caller knows it is absent: ``health_of`` sees live objects); hooks and objects
    only pending prune are left out, since they are not part of the desired state.
    An app with no resources is Healthy.
    """
    return Health.worst(resources)
