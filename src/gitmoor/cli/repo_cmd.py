"""`gitmoor repo add|list|rm`: credentials for Git repositories.

Stored as labelled Secrets in the apps namespace, in the shape of Argo CD's
repository Secrets (``gitmoor.settings.repos``); nothing here prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, fail, out, run
from gitmoor.model import GitmoorError

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

repo_cmd = typer.Typer(
    help="Credentials for Git repositories (stored as Kubernetes Secrets).", no_args_is_help=True
)


@repo_cmd.command("add")
def repo_add(
    url: Annotated[
        str, typer.Argument(help="repository URL, or a prefix shared by many repositories")
    ],
    username: Annotated[str | None, typer.Option(help="https user name")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="https password or token (or $GITMOOR_REPO_PASSWORD)",
            envvar="GITMOOR_REPO_PASSWORD",
        ),
    ] = None,
    ssh_private_key_path: Annotated[Path | None, typer.Option(help="ssh private key file")] = None,
    known_hosts_path: Annotated[
        Path | None, typer.Option(help="OpenSSH known_hosts file for the server")
    ] = None,
    insecure_ignore_host_key: Annotated[
        bool, typer.Option("--insecure-ignore-host-key", help="skip ssh host key checks")
    ] = False,
    project: Annotated[
        str,
        typer.Option(
            help="only this project's apps use these credentials (they win over unscoped "
            "ones for that project's apps; other projects never use them)"
        ),
    ] = "",
) -> None:
    """Store credentials for a repository URL (prefix) as a labelled Secret."""
    from gitmoor.settings.repos import add_repo
    from gitmoor.source import parse_repo_url

    try:
        parse_repo_url(url)
    except GitmoorError as e:
        raise fail(str(e)) from None
    key = ssh_private_key_path.read_text() if ssh_private_key_path else None
    known = known_hosts_path.read_text() if known_hosts_path else None

    async def go(kube: KubeClient) -> str:
        return await add_repo(
            kube,
            url,
            username=username,
            password=password,
            ssh_private_key=key,
            known_hosts=known,
            insecure_ignore_host_key=insecure_ignore_host_key,
            namespace=State.namespace,
            project=project,
        )

    secret = run(go)
    scope = f" for project {project}" if project else ""
    out.print(f"repository {url} added{scope} (Secret {State.namespace}/{secret})")


@repo_cmd.command("list")
def repo_list(
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """List repositories with stored credentials (never the credentials themselves)."""
    from rich.table import Table

    from gitmoor.cli import output
    from gitmoor.settings.repos import list_repos

    repos = run(lambda kube: list_repos(kube, State.namespace))
    if output_format in ("json", "yaml"):
        output.dump(
            out,
            [
                {"url": r.url, "auth": r.auth, "secret": r.name}
                | ({"project": r.project} if r.project else {})
                for r in repos
            ],
            output_format,
        )
        return
    t = Table("URL", "AUTH", "PROJECT", "SECRET", box=None)
    for r in repos:
        t.add_row(r.url, r.auth, r.project or "-", r.name)
    out.print(t)


@repo_cmd.command("rm")
def repo_rm(
    url: str,
    project: Annotated[
        str, typer.Option(help="remove the credentials scoped to this project")
    ] = "",
) -> None:
    """Remove a repository's credentials."""
    from gitmoor.settings.repos import remove_repo

    if not run(lambda kube: remove_repo(kube, url, State.namespace, project)):
        raise fail(
            f"no credentials stored for {url}" + (f" in project {project}" if project else ""), 1
        )
    out.print(f"repository {url} removed")
