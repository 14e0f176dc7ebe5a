"""Rules for the secret operators' custom resources: SealedSecret and ExternalSecret.

gitmoor decrypts SOPS files itself, but many teams keep Secrets in Git through an
operator instead (Bitnami Sealed Secrets, External Secrets Operator). Their custom
resources are synced as ordinary objects; what the user needs from health is
whether the operator managed to produce the Secret. Both rules follow Argo CD's
bundled Lua checks (``resource_customizations/<group>/<kind>/health.lua``), whose
messages users already know. They differ from ``standard_conditions`` on purpose:
a resource without the condition is Progressing (its controller has not acted
yet, or is not installed), not Healthy, and a failure shows the controller's
message without its reason.
"""

from __future__ import annotations

from gitmoor.engine.health._fields import condition
from gitmoor.model import Health, HealthStatus, JSONDict


def _from_condition(obj: JSONDict, type_: str, waiting: str) -> Health:
    cond = condition(obj, type_)
    if cond is not None and cond.is_true:
        return Health(HealthStatus.HEALTHY, cond.message)
    if cond is not None and cond.is_false:
        # Both operators retry, but a False here means the Secret was not written
        # (no key could decrypt it, the provider refused the read): Argo CD shows
        # Degraded whatever the reason, and a user must act. The reason stands
        # in only when the controller left the message empty.
        return Health(HealthStatus.DEGRADED, cond.message or cond.reason)
    # Absent or Unknown: Argo CD's checks fall through to Progressing, since a
    # fresh resource has no status until the controller sees it.
    return Health(HealthStatus.PROGRESSING, waiting)


def sealed_secret(obj: JSONDict) -> Health:
    # bitnami.com/SealedSecret/health.lua: the sealed-secrets controller reports
    # on a ``Synced`` condition (it has no ``Ready``), True once it has unsealed
    # the data into the Secret.
    return _from_condition(obj, "Synced", "Waiting for Sealed Secret to be decrypted")


def external_secret(obj: JSONDict) -> Health:
    # external-secrets.io/ExternalSecret/health.lua: External Secrets Operator
    # sets ``Ready`` (reason SecretSynced / SecretSyncedError) after each refresh.
    return _from_condition(obj, "Ready", "Waiting for ExternalSecret")
