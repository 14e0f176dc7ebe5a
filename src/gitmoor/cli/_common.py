"""What every command group of the `gitmoor` command shares.

The global options' values (:data:`State`, set by the root group's callback in
:mod:`gitmoor.cli.main`), the two consoles, :func:`fail` and :func:`run` (a
command's body with a client of the selected cluster, a ``GitmoorError`` turned
into one sentence and exit code 2), and :func:`make_engine`.

Command modules import this module and :mod:`gitmoor.cli.output`, never each
other (an import-linter contract says so), and this module imports no command
module, so no import is circular.

Startup: ``gitmoor --help`` and ``gitmoor version`` import every command module
to register its commands, so nothing heavy is imported at the top of this module
or of a command module. The engine, the kube client (httpx, h2), the controller
(fastapi, uvicorn), the renderers and yaml are imported inside the commands that
use them, so a command pays only for what it runs: ``--help`` and ``version``
need neither a cluster nor the engine, and starting them was most of the time a
short command took.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from gitmoor.model.application import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gitmoor.engine import Engine
    from gitmoor.kube import KubeClient
    from gitmoor.settings.clusters import ClusterRegistry

T = TypeVar("T")

# Piped output keeps whole lines (tables at their natural width) for grep and scripts.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 10_000)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Ctx:
    """The global options of one invocation, and the cluster registry while a command runs."""

    kubeconfig: str | None
    context: str | None
    namespace: str
    verbose: bool
    #: ``--core`` (or ``GITMOOR_CORE=1``): the kubeconfig even when logged in to a
    #: server, as Argo CD's ``argocd --core``
    core: bool = False
    clusters: ClusterRegistry | None = None


State = Ctx(None, None, DEFAULT_NAMESPACE, False)


def fail(message: str, code: int = 2) -> typer.Exit:
    # An error from kube, git or a tool may quote a value a Redactor of this
    # process learned (issue 13: one redaction policy for every output). The
    # process-wide scrub, as for the operator's log: a CLI process is its user's
    # own, and learned only what that user's command read.
    from gitmoor.secrets.redact import scrub_log

    err.print(f"[red]error:[/red] {scrub_log(message)}", markup=True)
    return typer.Exit(code)


def run(fn: Callable[[KubeClient], Awaitable[T]]) -> T:
    """Run ``fn`` with a client of the selected cluster; GitmoorErrors become one sentence and exit 2."""
    import asyncio

    from gitmoor.kube import KubeClient, default_config
    from gitmoor.model import GitmoorError
    from gitmoor.settings.clusters import ClusterRegistry

    async def main() -> T:
        cfg = default_config(State.kubeconfig, State.context)
        async with KubeClient(cfg) as kube:
            State.clusters = ClusterRegistry(kube, namespace=State.namespace)
            try:
                return await fn(kube)
            finally:
                await State.clusters.aclose()
                State.clusters = None

    try:
        return asyncio.run(main())
    except GitmoorError as e:
        raise fail(str(e)) from None


def make_engine(kube: KubeClient) -> Engine:
    """The engine for one command: apps in the selected namespace, destinations
    resolved through the registered clusters."""
    from gitmoor.engine import DryRunCache, Engine

    # A verdict cache for the command's life: the refresh after a sync then needs
    # no dry-run of what the sync itself just applied.
    return Engine(kube, namespace=State.namespace, clusters=State.clusters, dry_runs=DryRunCache())


def parse_bool(text: str, what: str) -> bool:
    """``true``/``false`` (and yes/no, 1/0, on/off) for options that must tell "not
    given" from "false", as ``argocd app set --self-heal=false`` does."""
    if text.lower() in ("true", "yes", "1", "on"):
        return True
    if text.lower() in ("false", "no", "0", "off"):
        return False
    raise fail(f"{what} takes true or false, not {text!r}")


def whoami() -> str:
    """Who started an operation, for ``initiatedBy`` in the app's history."""
    return os.environ.get("GITMOOR_USER") or os.environ.get("USER") or "cli"
