"""Health of Kubernetes objects, with Argo CD's statuses and kstatus's structure.

``health_of(obj)`` evaluates, in this order:

1. the generic properties every kind shares (kstatus ``checkGenericProperties``):
   ``metadata.deletionTimestamp`` → Progressing "Pending deletion" (gitops-engine);
   ``status.observedGeneration`` present and below ``metadata.generation`` →
   Progressing, since the rest of status describes an older spec; condition
   ``Stalled=True`` → Degraded; ``Reconciling=True`` → Progressing;
2. the rule for the object's (group, kind) — apps workloads, Pod, Job, CronJob,
   Service, Ingress, PVC, HPA, CRD, APIService, Namespace, cert-manager
   Certificate, Bitnami SealedSecret (its ``Synced`` condition) and External
   Secrets ExternalSecret (its ``Ready`` condition), and the GitOps kinds of an
   app of apps (a child Application's own ``status.health``, an ApplicationSet's
   ``ErrorOccurred`` condition), and Argo Rollouts' Rollout and AnalysisRun
   (their ``status.phase``) — written after
   gitops-engine's ``pkg/health`` and Argo CD's bundled Lua checks (messages
   kept so users recognise them);
3. otherwise the standard conditions: ``Ready`` (then ``Available``) True →
   Healthy, False → Degraded unless its reason says "still working", Unknown →
   Progressing; an object without any of them (a ConfigMap, a CR with no
   controller) is Healthy, as kstatus's "Current".

``app_health(healths)`` is the worst of them; ``Missing`` is the caller's to add.
"""

from gitmoor.engine.health._check import RULES, app_health, health_of

__all__ = ["RULES", "app_health", "health_of"]
