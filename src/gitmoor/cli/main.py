"""The `gitmoor` command: the root group and its global options.

Every command that talks to a cluster takes ``--kubeconfig``/``--context``
(default: ``$KUBECONFIG``, then ``~/.kube/config``, then the pod's service
account) and ``--apps-namespace`` (where Applications live, default gitmoor).

Exit codes: 0 success, 1 failure (and, for ``app diff`` and ``diff``, "there are
differences", as ``kubectl diff``), 2 an error (bad input, cluster unreachable).

The commands live in one module per command group (``app_cmd``, ``repo_cmd``,
``cluster_cmd``, ``proj_cmd``) or per top-level command (``version_cmd``,
``install_cmd``, ``render_cmd``, ``controller_cmd``, ``health_cmd``), over the
shared :mod:`gitmoor.cli._common`; this module only registers them, in the
order ``gitmoor --help`` lists them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from gitmoor.cli._common import State
from gitmoor.cli.account_cmd import account_cmd
from gitmoor.cli.admin_cmd import admin_cmd
from gitmoor.cli.app_cmd import app_cmd
from gitmoor.cli.appset_cmd import appset_cmd
from gitmoor.cli.bootstrap_cmd import bootstrap
from gitmoor.cli.cluster_cmd import cluster_cmd
from gitmoor.cli.controller_cmd import controller
from gitmoor.cli.diff_cmd import diff
from gitmoor.cli.health_cmd import health
from gitmoor.cli.install_cmd import install
from gitmoor.cli.lint_cmd import lint
from gitmoor.cli.login_cmd import login, logout
from gitmoor.cli.proj_cmd import proj_cmd
from gitmoor.cli.promote_cmd import promote
from gitmoor.cli.render_cmd import render
from gitmoor.cli.repo_cmd import repo_cmd
from gitmoor.cli.rollout_cmd import rollout_cmd
from gitmoor.cli.secret_cmd import secret_cmd
from gitmoor.cli.server_cmd import server
from gitmoor.cli.version_cmd import version
from gitmoor.model.application import DEFAULT_NAMESPACE

app = typer.Typer(
    name="gitmoor",
    help="GitOps continuous delivery: keep each cluster moored to its Git state.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="kubeconfig context (default: current)")
    ] = None,
    apps_namespace: Annotated[
        str, typer.Option("--apps-namespace", "-N", help="namespace of the Applications")
    ] = DEFAULT_NAMESPACE,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log engine events (key=value) to stderr")
    ] = False,
    core: Annotated[
        bool,
        typer.Option(
            "--core",
            envvar="GITMOOR_CORE",
            help="talk to the cluster with the kubeconfig even when logged in to a server "
            "(`gitmoor login`), as Argo CD's --core; also $GITMOOR_CORE=1",
        ),
    ] = False,
    allow_file_repos: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-file-repos",
            metavar="DIR",
            help="allow file:// repositories under DIR (repeatable; also "
            "$GITMOOR_ALLOW_FILE_REPOS, ':'-separated); file:// is refused otherwise",
        ),
    ] = None,
) -> None:
    if allow_file_repos:
        # Only when given: gitmoor.source (and its git and semver imports) is not
        # needed by `version` or `--help`; the variable is read at each check anyway.
        from gitmoor.source import allow_file_repos as allow_roots

        allow_roots(allow_file_repos)
    State.kubeconfig, State.context, State.namespace, State.verbose = (
        kubeconfig,
        context,
        apps_namespace,
        verbose,
    )
    State.core = core
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Every log line (the CLI's, and the controller's, which runs under this
    # callback) scrubbed of the values the Redactors learned (issue 13).
    from gitmoor.secrets.redact import install_log_filter

    install_log_filter()


# Registration order is the order of `gitmoor --help`: commands, then groups.
app.command("version")(version)
app.command("install")(install)
app.command("bootstrap")(bootstrap)
app.command("promote")(promote)
app.command("render")(render)
app.command("lint")(lint)
app.command("diff")(diff)
app.command("controller")(controller)
app.command("server")(server)
app.command("health")(health)
app.command("login")(login)
app.command("logout")(logout)
app.add_typer(app_cmd, name="app")
app.add_typer(appset_cmd, name="appset")
app.add_typer(repo_cmd, name="repo")
app.add_typer(cluster_cmd, name="cluster")
app.add_typer(proj_cmd, name="proj")
app.add_typer(account_cmd, name="account")
app.add_typer(admin_cmd, name="admin")
app.add_typer(secret_cmd, name="secret")
app.add_typer(rollout_cmd, name="rollout")


def main() -> None:
    app()


if __name__ == "__main__":
    main()


__all__ = ["app", "main"]
