"""`gitmoor account …`: local accounts through the server (``gitmoor login`` first).

As ``argocd account``: list the accounts, change a password, and issue, list
and revoke API tokens. The server decides who may do what (your own account,
or another with ``accounts, update, NAME``). A token is printed once, alone on
the last line of stdout so a script can capture it; only its hash is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from gitmoor.cli._common import err, fail, out
from gitmoor.model import GitmoorError

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.cli.remote import ApiClient

account_cmd = typer.Typer(
    help="Local accounts, passwords and API tokens (through the server: `gitmoor login` first).",
    no_args_is_help=True,
)

AccountOpt = Annotated[
    str | None,
    typer.Option("--account", "-a", help="the account (default: the one you logged in as)"),
]


def _call(fn: Callable[[ApiClient], Any]) -> Any:
    from gitmoor.cli.remote import ApiClient

    try:
        with ApiClient.logged_in() as api:
            return fn(api)
    except GitmoorError as e:
        raise fail(str(e)) from None


def _me(api: ApiClient, account: str | None) -> str:
    if account:
        return account
    if api.config.username:
        return api.config.username
    return str(api.get("/session/userinfo")["username"])


@account_cmd.command("list")
def account_list() -> None:
    """List the local accounts you may see, with their capabilities and tokens."""
    from rich.table import Table

    accounts = _call(lambda api: api.get("/accounts"))
    t = Table("NAME", "ENABLED", "CAPABILITIES", "TOKENS", "PASSWORD CHANGED", box=None)
    for a in accounts:
        t.add_row(
            a["name"],
            "true" if a["enabled"] else "false",
            ", ".join(a["capabilities"]) or "-",
            str(len(a["tokens"])),
            a["passwordMtime"] or "-",
        )
    out.print(t)


@account_cmd.command("update-password")
def update_password(
    account: AccountOpt = None,
    current_password: Annotated[
        str | None,
        typer.Option(help="your own current password (prompted for when omitted)"),
    ] = None,
    new_password: Annotated[
        str | None,
        typer.Option(help="the new password, 8 characters or more (prompted for when omitted)"),
    ] = None,
) -> None:
    """Change an account's password; every session of that account ends (yours too:
    log in again). Changing another account's needs `accounts, update, NAME` and
    still asks for your own current password, as Argo CD does."""
    current = current_password
    if current is None:
        current = typer.prompt("Current password (yours)", hide_input=True)
    new = new_password
    if new is None:
        new = typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    def go(api: ApiClient) -> str:
        name = _me(api, account)
        api.put(f"/accounts/{name}/password", {"currentPassword": current, "newPassword": new})
        return name

    name = _call(go)
    out.print(f"password of {name} updated; its sessions ended (`gitmoor login` again)")


@account_cmd.command("generate-token")
def generate_token(
    account: AccountOpt = None,
    expires_in: Annotated[
        str | None,
        typer.Option(help="lifetime, e.g. 24h, 90m or seconds (default: never expires)"),
    ] = None,
    token_id: Annotated[
        str | None,
        typer.Option("--id", help="the token's id (letters, digits, - and _; default: random)"),
    ] = None,
) -> None:
    """Issue an API token (the account needs the apiKey capability). It is printed
    once, on stdout's last line; use it as `Authorization: Bearer TOKEN`."""
    body: dict[str, Any] = {}
    if expires_in is not None:
        body["expiresIn"] = expires_in
    if token_id is not None:
        body["id"] = token_id

    def go(api: ApiClient) -> tuple[str, dict[str, Any]]:
        name = _me(api, account)
        return name, api.post(f"/accounts/{name}/tokens", body)

    name, created = _call(go)
    err.print(
        f"token {created['id']} of account {name} (shown once: it cannot be read again; "
        f"revoke it with `gitmoor account delete-token {created['id']}`):"
    )
    out.print(created["token"])


@account_cmd.command("list-tokens")
def list_tokens(account: AccountOpt = None) -> None:
    """List an account's API tokens: ids and times, never the tokens."""
    from rich.table import Table

    tokens = _call(lambda api: api.get(f"/accounts/{_me(api, account)}/tokens"))
    t = Table("ID", "ISSUED", "EXPIRES", box=None)
    for tok in tokens:
        expires = tok["expiresAt"] or "never"
        t.add_row(tok["id"], tok["issuedAt"], expires + (" (expired)" if tok["expired"] else ""))
    out.print(t)


@account_cmd.command("delete-token")
def delete_token(
    token_id: Annotated[str, typer.Argument(help="the token's id (see list-tokens)")],
    account: AccountOpt = None,
) -> None:
    """Revoke an API token; it stops working at once."""

    def go(api: ApiClient) -> str:
        name = _me(api, account)
        api.delete(f"/accounts/{name}/tokens/{token_id}")
        return name

    out.print(f"token {token_id} of {_call(go)} revoked")
