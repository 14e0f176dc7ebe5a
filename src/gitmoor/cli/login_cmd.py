"""`gitmoor login SERVER` and `gitmoor logout`: the CLI's session with a gitmoor server.

As ``argocd login``: a username and password (prompted for when not given)
buy a session token, stored with the server's address in
``~/.config/gitmoor/config`` (mode 0600; see :mod:`gitmoor.cli.remote`). The
password itself is never stored. ``logout`` ends the session on the server, so
the stored token is dead even if the file was copied, then forgets it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gitmoor.cli._common import err, fail, out
from gitmoor.model import GitmoorError


def login(
    server: Annotated[
        str,
        typer.Argument(help="the server's address: https://host[:port], or host[:port] for https"),
    ],
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="account name (prompted when omitted)")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            "-p",
            help="password (prompted for, hidden, when omitted; or $GITMOOR_PASSWORD)",
            envvar="GITMOOR_PASSWORD",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="skip TLS certificate checks (self-signed servers only)"),
    ] = False,
) -> None:
    """Log in to a gitmoor server and store the session for later commands."""
    from gitmoor.cli.remote import ApiClient, RemoteConfig, normalize_server, save_config

    try:
        url = normalize_server(server)
    except GitmoorError as e:
        raise fail(str(e)) from None
    name = username or typer.prompt("Username")
    secret = password if password is not None else typer.prompt("Password", hide_input=True)
    config = RemoteConfig(server=url, insecure=insecure)
    try:
        with ApiClient(config) as api:
            answer = api.post("/session", json={"username": name, "password": secret})
    except GitmoorError as e:
        raise fail(f"login to {url} failed: {e}") from None
    config.token, config.username = str(answer["token"]), str(answer["username"])
    path = save_config(config)
    out.print(f"logged in to {url} as {config.username} (session stored in {path})")


def logout() -> None:
    """End the stored session on the server and forget it."""
    from gitmoor.cli.remote import (
        ApiClient,
        NotLoggedInError,
        ServerInputError,
        load_config,
        save_config,
    )

    try:
        config = load_config()
    except GitmoorError as e:
        raise fail(str(e)) from None
    if config is None or not config.token:
        out.print("not logged in")
        return
    try:
        with ApiClient(config) as api:
            api.delete("/session")
    except NotLoggedInError:
        pass  # the server had ended it already (expired, password changed)
    except ServerInputError:
        pass  # an API token, not a session: revoke it with `account delete-token`
    except GitmoorError as e:
        # The token stays stored: it may still be alive on the server.
        raise fail(f"could not end the session on {config.server}: {e}") from None
    config.token = ""
    save_config(config)
    err.print(f"logged out of {config.server}")
