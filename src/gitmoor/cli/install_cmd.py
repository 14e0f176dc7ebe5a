"""`gitmoor install`: what a cluster needs before it holds Applications."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, fail, out, run

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient


def install(
    rollouts: Annotated[
        bool,
        typer.Option(
            "--rollouts",
            help="Also install the Argo Rollouts CRDs (Rollout, AnalysisTemplate, "
            "ClusterAnalysisTemplate, AnalysisRun; group argoproj.io) that the "
            "controller's progressive delivery runs. gitmoor's copies are labelled "
            "app.kubernetes.io/managed-by=gitmoor; where Argo Rollouts' own are "
            "installed, nothing is installed and the command fails, unless --force.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="With --rollouts: replace Argo Rollouts' own CRDs with gitmoor's "
            "(stored Rollouts and AnalysisRuns are kept). Stop Argo Rollouts' "
            "controller first: two controllers would fight over the same Rollouts.",
        ),
    ] = False,
) -> None:
    """Install the Application and AppProject CRDs, create the Applications' namespace
    and the `default` project (everything permitted, as Argo CD's default; an existing
    one is left as it is), and the server's settings: gitmoor-cm, gitmoor-rbac-cm
    (empty policy: deny) and gitmoor-secret. The first install generates the `admin`
    password and prints it once; only its hash is stored, so a later install prints
    none (`gitmoor admin reset-password` sets a new one). With --rollouts, also the
    Argo Rollouts CRDs, checked first: over Argo Rollouts' own CRDs the command
    installs nothing and fails, unless --force."""
    from gitmoor.engine import store
    from gitmoor.rollouts.crds import install_rollout_crds
    from gitmoor.settings.accounts import ensure_settings

    if force and not rollouts:
        raise fail("--force only applies to --rollouts (the Argo Rollouts CRDs)")

    async def go(kube: KubeClient) -> tuple[bool, str | None, list[str]]:
        # The Rollout CRDs first: a refusal over Argo Rollouts' own then leaves the
        # cluster as it was.
        rollout_crds = await install_rollout_crds(kube, force=force) if rollouts else []
        created = await store.install(kube, State.namespace)
        return created, await ensure_settings(kube, State.namespace), rollout_crds

    created, admin_password, rollout_crds = run(go)
    if rollout_crds:
        out.print(f"installed: CustomResourceDefinitions {', '.join(rollout_crds)}")
    out.print(
        "installed: CustomResourceDefinitions applications.gitmoor.io and "
        f"appprojects.gitmoor.io, namespace {State.namespace}, project default "
        + ("(created)" if created else "(kept as it is)")
        + ", settings gitmoor-cm, gitmoor-rbac-cm, gitmoor-secret"
    )
    if admin_password is not None:
        # Argo CD keeps the initial password in argocd-initial-admin-secret until it is
        # deleted; gitmoor keeps only the hash, so this is the one time it can be read.
        out.print(
            f"admin password: {admin_password}\n"
            "  (shown once and not stored: note it now. Log in with `gitmoor login SERVER "
            "--username admin`; if it is lost, `gitmoor admin reset-password --account admin` "
            "sets a new one with the kubeconfig's rights)"
        )
