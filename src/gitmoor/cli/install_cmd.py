"""`gitmoor install`: what a cluster needs before it holds Applications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.cli._common import State, out, run

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient


def install() -> None:
    """Install the Application and AppProject CRDs, create the Applications' namespace
    and the `default` project (everything permitted, as Argo CD's default; an existing
    one is left as it is), and the server's settings: gitmoor-cm, gitmoor-rbac-cm
    (empty policy: deny) and gitmoor-secret. The first install generates the `admin`
    password and prints it once; only its hash is stored, so a later install prints
    none (`gitmoor admin reset-password` sets a new one)."""
    from gitmoor.engine import store
    from gitmoor.settings.accounts import ensure_settings

    async def go(kube: KubeClient) -> tuple[bool, str | None]:
        created = await store.install(kube, State.namespace)
        return created, await ensure_settings(kube, State.namespace)

    created, admin_password = run(go)
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
