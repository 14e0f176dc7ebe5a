"""`gitmoor controller`: run the reconcile loop and its webhook/metrics server.

The controller (and with it fastapi, uvicorn and prometheus_client) is imported
when the command runs, not when the CLI starts.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, run

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _parse_bool(value: str) -> str:
    """``--rollouts=false`` as the issue spells it: a click flag takes no value, so
    the option takes one and reads it as a boolean ("true" or "false" after this)."""
    low = value.strip().lower()
    if low in _TRUE:
        return "true"
    if low in _FALSE:
        return "false"
    raise typer.BadParameter(f"{value!r} is not a boolean (true or false)")


def controller(
    interval: Annotated[
        float,
        typer.Option(
            help="seconds between refreshes of an app (spec.syncPolicy.refreshInterval overrides)"
        ),
    ] = 180.0,
    workers: Annotated[int, typer.Option(help="apps processed at once")] = 4,
    listen: Annotated[
        str, typer.Option(help="address of the webhook/metrics server (HOST:PORT; empty: none)")
    ] = "127.0.0.1:8081",
    replica_id: Annotated[
        str,
        typer.Option(
            "--replica-id",
            help="share apps with other replicas under this id (a Lease each); empty: run alone",
        ),
    ] = "",
    lease_seconds: Annotated[
        int,
        typer.Option(help="with --replica-id: seconds before a dead replica's apps are taken over"),
    ] = 15,
    self_heal_debounce: Annotated[
        float, typer.Option(help="seconds between a sync and a self-heal of the same app")
    ] = 5.0,
    allow_file_repos: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-file-repos",
            metavar="DIR",
            help="allow file:// repositories under DIR (repeatable; also "
            "$GITMOOR_ALLOW_FILE_REPOS); file:// is refused otherwise",
        ),
    ] = None,
    webhook_allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--webhook-allow-unsigned",
            help="accept webhooks of providers with no secret configured (refused with 401 "
            "otherwise); such pushes never use the priority lane",
        ),
    ] = False,
    webhook_burst: Annotated[
        int,
        typer.Option(help="webhook refreshes of one repository allowed at once", min=1),
    ] = 5,
    webhook_interval: Annotated[
        float,
        typer.Option(
            help="then one webhook refresh per repository every this many seconds; pushes "
            "over the limit are answered 202 and coalesce into one delayed refresh (0: no limit)",
            min=0,
        ),
    ] = 10.0,
    rollouts: Annotated[
        str,
        typer.Option(
            "--rollouts",
            metavar="BOOL",
            callback=_parse_bool,
            help="run Argo Rollouts' Rollout and AnalysisRun objects (blueGreen, canary, "
            "analysis) in this process: --rollouts=false (or --no-rollouts) turns it off. "
            "It idles while the Rollout CRD is absent and refuses to start over Argo "
            "Rollouts' own CRDs",
        ),
    ] = "true",
    no_rollouts: Annotated[
        bool, typer.Option("--no-rollouts", help="the same as --rollouts=false")
    ] = False,
    rollouts_takeover: Annotated[
        bool,
        typer.Option(
            "--rollouts-takeover",
            help="run the Rollout controller even where Argo Rollouts' own CRDs are "
            "installed (stop Argo Rollouts' controller first: two controllers would fight)",
        ),
    ] = False,
) -> None:
    """Run the controller: sync automated apps, heal drift, run requested operations,
    keep every app's status current, run Rollouts and AnalysisRuns; serve
    POST /api/webhook, GET /metrics, GET /healthz."""
    from gitmoor.controller.ratelimit import RefreshLimits
    from gitmoor.controller.service import serve_controller
    from gitmoor.secrets.redact import install_log_filter
    from gitmoor.source import allow_file_repos as allow_roots

    logging.getLogger().setLevel(logging.INFO)
    install_log_filter()  # idempotent: the root's handlers scrub every line (issue 13)
    allow_roots(allow_file_repos or ())

    async def go(kube: KubeClient) -> None:
        await serve_controller(
            kube,
            State.namespace,
            interval=interval,
            workers=workers,
            listen=listen,
            replica_id=replica_id,
            lease_seconds=lease_seconds,
            self_heal_debounce=self_heal_debounce,
            webhook_allow_unsigned=webhook_allow_unsigned,
            webhook_limits=RefreshLimits(burst=webhook_burst, interval=webhook_interval),
            rollouts=rollouts == "true" and not no_rollouts,
            rollouts_takeover=rollouts_takeover,
        )

    with contextlib.suppress(KeyboardInterrupt):
        run(go)
