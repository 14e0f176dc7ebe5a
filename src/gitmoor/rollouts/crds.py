"""Argo Rollouts' CRDs in the cluster: gitmoor's copies, or Argo Rollouts' own.

gitmoor runs ``Rollout`` and ``AnalysisRun`` objects of the group ``argoproj.io``,
the group Argo Rollouts' own controller runs. Two controllers over the same objects
would fight over every ReplicaSet and Service selector, so gitmoor's copies of the
CRDs (``gitmoor/crds/rollouts/``) carry the label
``app.kubernetes.io/managed-by: gitmoor`` and everything else under those names is
taken as Argo Rollouts' own install (its manifests and Helm chart set no such label):

- ``absent``: no ``rollouts.argoproj.io``; ``gitmoor install --rollouts`` installs them;
- ``gitmoor``: gitmoor's copies: the Rollout controller may run;
- ``foreign``: any of the four CRDs present without the label: another controller
  probably runs them, and gitmoor neither runs over them nor replaces them unless told
  to (``--rollouts-takeover`` for the controller, ``--force`` for the install).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from gitmoor.crds import rollout_crds
from gitmoor.kube import FIELD_MANAGER, wait_for
from gitmoor.model import JSONDict, ObjectRef, PermanentError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.rollouts.crds")

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gitmoor"
ROLLOUT_CRD = "rollouts.argoproj.io"
#: The four CRD names, the Rollout's first.
CRD_NAMES: tuple[str, ...] = tuple(crd["metadata"]["name"] for crd in rollout_crds())

CrdsState = Literal["absent", "gitmoor", "foreign"]

#: What the controller says when it will not start its Rollout controller.
FOREIGN_CRDS_MESSAGE = (
    f"Argo Rollouts' own CRDs are installed ({ROLLOUT_CRD}, not labelled by gitmoor): "
    "another controller probably runs them; gitmoor will not run a second Rollout "
    "controller over them. Start with --rollouts-takeover to run anyway, or --rollouts=false"
)


class ForeignRolloutCRDsError(PermanentError):
    """``gitmoor install --rollouts`` found Argo Rollouts' own CRDs and was not forced."""


def _crd_ref(name: str) -> ObjectRef:
    return ObjectRef("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "", name)


def is_gitmoors(crd: JSONDict) -> bool:
    """True for a CRD object that gitmoor installed (its ``managed-by`` label)."""
    labels = (crd.get("metadata") or {}).get("labels") or {}
    return isinstance(labels, dict) and labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def foreign_names(live: Mapping[str, JSONDict | None]) -> list[str]:
    """The CRDs among ``live`` (name → object, None when absent) that are not gitmoor's."""
    return [name for name, crd in live.items() if crd is not None and not is_gitmoors(crd)]


def crds_state(live: Mapping[str, JSONDict | None]) -> CrdsState:
    """The state of the four CRDs from their live objects (None when absent).

    One foreign CRD is enough for ``foreign``: an Argo Rollouts install that lacks
    one kind still runs the others. Without the Rollout CRD there is nothing to run.
    """
    if foreign_names(live):
        return "foreign"
    if live.get(ROLLOUT_CRD) is None:
        return "absent"
    return "gitmoor"


async def _live(kube: KubeClient) -> dict[str, JSONDict | None]:
    return {name: await kube.get(_crd_ref(name)) for name in CRD_NAMES}


async def rollout_crds_state(kube: KubeClient) -> CrdsState:
    """``absent``, ``gitmoor`` or ``foreign`` (see the module docstring); the
    controller asks before it starts its Rollout controller."""
    return crds_state(await _live(kube))


def foreign_install_message(names: list[str]) -> str:
    return (
        f"Argo Rollouts' own CRDs are installed ({', '.join(names)}, not labelled by "
        "gitmoor): another controller probably runs them, so `gitmoor install --rollouts` "
        "leaves them as they are. Uninstall Argo Rollouts first, or add --force to replace "
        "them with gitmoor's (stored Rollouts and AnalysisRuns are kept)"
    )


async def install_rollout_crds(kube: KubeClient, *, force: bool = False) -> list[str]:
    """Install (or upgrade) gitmoor's four Argo Rollouts CRDs and wait until the API
    server serves them; the names installed.

    Refuses with ``ForeignRolloutCRDsError`` where Argo Rollouts' own are installed,
    unless ``force``. Forced, a foreign CRD is replaced whole (PUT on its
    resourceVersion) rather than server-side applied: an apply would merge gitmoor's
    schema into the other manager's, field by field, and leave a schema neither wrote.
    Deleting it instead would delete every Rollout stored under it.
    """
    live = await _live(kube)
    foreign = foreign_names(live)
    if foreign and not force:
        raise ForeignRolloutCRDsError(foreign_install_message(foreign), concerns=foreign[0])
    for crd in rollout_crds():
        name = crd["metadata"]["name"]
        current = live.get(name)
        if current is not None and not is_gitmoors(current):
            log.warning("event=rollout_crd_takeover crd=%s", name)
            body = {
                **crd,
                "metadata": {
                    **crd["metadata"],
                    "resourceVersion": current["metadata"]["resourceVersion"],
                },
            }
            await kube.replace(_crd_ref(name), body, field_manager=FIELD_MANAGER)
        else:
            await kube.apply(crd, force=True)

    async def established() -> bool:
        for name in CRD_NAMES:
            obj = await kube.get(_crd_ref(name))
            # A CRD just created may show ``conditions: null`` until its controller runs.
            conds = ((obj or {}).get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                return False
        return True

    await wait_for(established, within=30, what="the Argo Rollouts CRDs to be Established")
    kube.invalidate_discovery()
    log.info("event=rollout_crds_installed crds=%s", ",".join(CRD_NAMES))
    return list(CRD_NAMES)
