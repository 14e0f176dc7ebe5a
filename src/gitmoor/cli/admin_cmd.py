"""`gitmoor admin …`: recovery with the kubeconfig's rights, no server needed.

``reset-password`` writes the account's argon2id hash straight into
``gitmoor-secret``, as an operator who lost the admin password would (Argo CD's
answer is the same: whoever can write ``argocd-secret`` is the admin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, err, out, run

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

admin_cmd = typer.Typer(
    help="Operator recovery with the kubeconfig's rights (no server needed).",
    no_args_is_help=True,
)


@admin_cmd.command("reset-password")
def reset_password(
    account: Annotated[str, typer.Option(help="the account to reset")] = "admin",
    password: Annotated[
        str | None,
        typer.Option(
            help="the new password, 8 characters or more (default: generate one and print it "
            "once); or $GITMOOR_NEW_PASSWORD",
            envvar="GITMOOR_NEW_PASSWORD",
        ),
    ] = None,
) -> None:
    """Set an account's password by writing gitmoor-secret directly (needs the right
    to update Secrets in the apps namespace). A running server sees it within a
    second."""
    from gitmoor.settings.accounts import reset_password as reset

    async def go(kube: KubeClient) -> str:
        return await reset(kube, State.namespace, account, password)

    chosen = run(go)
    if password is not None:
        out.print(f"password of {account} reset")
        return
    err.print(f"password of {account} reset; the new password (shown once) is:")
    out.print(chosen)
