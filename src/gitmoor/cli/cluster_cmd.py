"""`gitmoor cluster add|list|rm`: register destination clusters.

Two kubeconfigs meet in ``cluster add``, so their options are named apart:
the global ``gitmoor --kubeconfig/--context`` choose the *home* cluster, where
the registration Secret is written (next to the Applications); ``cluster add
--from-kubeconfig/--from-context`` choose the cluster being *registered*. The
issue's spelling, ``cluster add NAME --kubeconfig F --context C``, is accepted
as an alias of the latter, since click scopes options to their command::

    gitmoor --kubeconfig home.yaml cluster add prod --from-kubeconfig prod.yaml --from-context admin

The credentials of that context are copied into the Secret (Argo CD's
``argocd cluster add`` instead installs a ServiceAccount in the target and
stores its token; gitmoor leaves that choice to the user, who can mint a
narrower identity first). Nothing here prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, fail, out, run
from gitmoor.model import GitmoorError

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.settings.clusters import ClusterEntry

cluster_cmd = typer.Typer(
    help="Destination clusters for Applications (stored as Kubernetes Secrets, as Argo CD does).",
    no_args_is_help=True,
)


@cluster_cmd.command("add")
def cluster_add(
    name: Annotated[str, typer.Argument(help="the name Applications use in spec.destination.name")],
    from_kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--from-kubeconfig",
            "--kubeconfig",
            help="kubeconfig holding the cluster to register "
            "(default: $KUBECONFIG, ~/.kube/config); not the global --kubeconfig",
        ),
    ] = None,
    from_context: Annotated[
        str | None,
        typer.Option(
            "--from-context",
            "--context",
            help="context of that kubeconfig (default: its current context)",
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="reach the cluster with these credentials before registering it",
        ),
    ] = True,
) -> None:
    """Register a cluster from a kubeconfig context.

    Copies the context's server and credentials (a token or a client
    certificate; exec plugins are refused) into a Secret in the apps namespace
    of the home cluster (the global --kubeconfig/--context).
    """
    import asyncio

    from gitmoor.kube import load_kubeconfig
    from gitmoor.settings.clusters import add_cluster, check_cluster_name, verify_cluster

    try:
        check_cluster_name(name)
        config = load_kubeconfig(from_kubeconfig, from_context)
    except GitmoorError as e:
        raise fail(str(e)) from None
    if verify:
        try:
            asyncio.run(verify_cluster(config))
        except GitmoorError as e:
            raise fail(
                f"cannot use context {config.name!r} to reach {config.server}: {e} "
                "(--no-verify registers it anyway)"
            ) from None

    async def go(kube: KubeClient) -> str:
        return await add_cluster(kube, name, config, namespace=State.namespace)

    secret = run(go)
    out.print(f"cluster {name} ({config.server}) added (Secret {State.namespace}/{secret})")


def _rows(clusters: list[ClusterEntry]) -> list[dict[str, str]]:
    return [{"name": c.name, "server": c.server, "secret": c.secret} for c in clusters]


@cluster_cmd.command("list")
def cluster_list(
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """List registered clusters: name, server and Secret, never credentials.

    The cluster gitmoor runs against is always available as "in-cluster" (or
    an empty destination name) and is not listed.
    """
    from rich.table import Table

    from gitmoor.cli import output
    from gitmoor.settings.clusters import list_clusters

    if output_format not in ("table", "json", "yaml"):
        raise fail(f"--output takes table, json or yaml, not {output_format!r}")
    clusters = run(lambda kube: list_clusters(kube, State.namespace))
    if output_format in ("json", "yaml"):
        output.dump(out, _rows(clusters), output_format)
        return
    t = Table("NAME", "SERVER", "SECRET", box=None)
    for c in clusters:
        t.add_row(c.name or "-", c.server or "-", c.secret)
    out.print(t)


@cluster_cmd.command("rm")
def cluster_rm(name: str) -> None:
    """Remove a cluster's registration (its Secret).

    Nothing in the cluster is deleted; Applications that name it stop syncing
    with an error naming the cluster.
    """
    from gitmoor.settings.clusters import IN_CLUSTER, remove_cluster

    if name in ("", IN_CLUSTER):
        raise fail(f"{IN_CLUSTER!r} is the cluster gitmoor runs against; it cannot be removed")
    if not run(lambda kube: remove_cluster(kube, name, State.namespace)):
        raise fail(f"cluster {name} is not registered", 1)
    out.print(f"cluster {name} removed")
