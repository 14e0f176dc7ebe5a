"""`gitmoor app …` through a gitmoor server's REST API, once `gitmoor login` was done.

Argo CD's CLI talks to its API server by default and to the cluster only with
``--core``; gitmoor keeps the kubeconfig as the default and goes through the API
when a server is configured (``~/.config/gitmoor/config``, see
:mod:`gitmoor.cli.remote`) and ``--core``/``GITMOOR_CORE=1`` is not set. The
server then decides who may do what (its RBAC) and records it (its audit trail),
and the user needs no kubeconfig at all.

What the API gives is printed as the kubeconfig path prints it (the same tables
and lines of :mod:`gitmoor.cli.output`), and exit codes are the same: ``diff``
0/1/2, ``sync`` and ``rollback`` 0 Succeeded, 1 Failed, 2 Error. The differences
come from where the work happens:

- ``sync`` and ``rollback`` are run by the controller (the API answers 202, as
  Argo CD's ``Sync`` sets the Application's ``operation``); the CLI then follows
  the app's operation with ``GET /applications/NAME`` until it ends, printing a
  line at each change of phase or message, for at most ``--timeout`` seconds
  (``argocd app sync`` waits the same way). Per-object lines of a local sync are
  not available; ``gitmoor app get`` lists each object's state afterwards.
- ``-o json|yaml`` prints the API's documents (summaries, the app detail, the
  history entries), not the Application objects.
- the server works in its own apps namespace: ``--apps-namespace`` is not used.

Errors are the server's sentence (``detail``) with exit code 2, as every other
error of the CLI; a 403 names the RBAC rule that refused.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from gitmoor.cli._common import State, err, fail, out
from gitmoor.model import GitmoorError

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.cli.remote import ApiClient

JSON = dict[str, Any]

#: how often a wait reads the app; an operation's steps take seconds, and one GET
#: is a read of the server's watch cache, not of the Kubernetes API
POLL = 1.0
#: the operation phases that end it (Argo CD's completed phases)
DONE = ("Succeeded", "Failed", "Error")
#: how long `app get --refresh` waits for the controller's refresh
REFRESH_WAIT = 30.0


def _kubeconfig_findable() -> bool:
    """Would the kubeconfig path find a cluster (``kube.default_config``'s order)?"""
    return bool(
        State.kubeconfig
        or os.environ.get("KUBECONFIG")
        or os.environ.get("KUBERNETES_SERVICE_HOST")
        or (Path.home() / ".kube" / "config").exists()
    )


def client() -> ApiClient | None:
    """The API client when the app commands go through a server, else None (the
    kubeconfig path). A server configured but logged out of is an error that says
    to log in, not a silent fall back to whatever kubeconfig is around."""
    if State.core:
        return None
    from gitmoor.cli.remote import ApiClient, load_config

    try:
        config = load_config()
        if config is None:
            if not _kubeconfig_findable():
                raise fail(
                    "no kubeconfig (~/.kube/config, $KUBECONFIG or --kubeconfig) and not "
                    "logged in to a gitmoor server: run `gitmoor login SERVER`, or give "
                    "--kubeconfig"
                )
            return None
        return ApiClient.logged_in()
    except GitmoorError as e:
        raise fail(str(e)) from None


def call(api: ApiClient, fn: Callable[[ApiClient], Any]) -> Any:
    """Run ``fn`` with the client and close it; GitmoorErrors (the server's detail)
    become one sentence and exit code 2, as :func:`gitmoor.cli._common.run` does."""
    try:
        with api:
            return fn(api)
    except GitmoorError as e:
        raise fail(str(e)) from None


def _path(name: str, *rest: str) -> str:
    from urllib.parse import quote

    return "/".join((f"/applications/{quote(name, safe='')}", *rest)).rstrip("/")


# ---------------------------------------------------------------------- reading


def _destination(d: JSON, sep: str) -> str:
    cluster = str(d.get("cluster") or "")
    shown = "" if cluster in ("", "in-cluster") else cluster
    if sep == "@":
        return str(d.get("namespace", "")) + (f"@{shown}" if shown else "")
    return f"namespace={d.get('namespace', '')}" + (f" cluster={shown}" if shown else "")


def _row(s: JSON) -> Any:
    from gitmoor.cli.output import AppRow

    return AppRow(
        name=str(s["name"]),
        sync=str(s.get("sync", "")),
        health=str(s.get("health", "")),
        destination=_destination(s, "@"),
        revision=str(s.get("revision", "")),
        repo=str(s.get("repoURL", "")),
        path=str(s.get("path", "")),
        target=str(s.get("targetRevision", "")),
        # The summary says whether automation is on, not its prune/selfHeal flags.
        auto="auto" if s.get("automated") else "manual",
        last_op=str(s.get("operationPhase") or "-"),
    )


def list_apps(api: ApiClient, fmt: str) -> None:
    from gitmoor.cli import output

    if fmt not in ("table", "wide", "json", "yaml"):
        raise fail(f"--output takes one of table, wide, json, yaml, not {fmt!r}")
    items = call(api, lambda c: c.get("/applications"))["items"]
    if fmt in ("json", "yaml"):
        output.dump(out, items, fmt)
        return
    output.print_app_rows(out, [_row(s) for s in items], wide=fmt == "wide")


def _view(d: JSON) -> Any:
    from gitmoor.cli.output import AppView

    op = d.get("operation")
    conditions = []
    for c in d.get("conditions") or []:
        ctype, _, message = str(c).partition(": ")
        conditions.append((ctype, message))
    return AppView(
        # The server serves one apps namespace and does not name it.
        name=str(d["name"]),
        project=str(d.get("project", "")),
        repo=str(d.get("repoURL", "")),
        path=str(d.get("path", "")),
        target=str(d.get("targetRevision", "")),
        destination=_destination(d, " "),
        sync_policy="automated" if d.get("automated") else "manual",
        sync=str(d.get("sync") or "Unknown"),
        health=str(d.get("health") or "Unknown"),
        revision=str(d.get("revision") or ""),
        health_message=str(d.get("healthMessage") or ""),
        last_op=(
            str(op.get("phase")),
            str(op.get("message", "")),
            str(op.get("finishedAt") or "-"),
        )
        if op
        else None,
        conditions=tuple(conditions),
        resources=tuple(
            {
                "group": r.get("group", ""),
                "kind": r.get("kind", ""),
                "namespace": r.get("namespace", ""),
                "name": r.get("name", ""),
                "status": r.get("status", ""),
                "health": {"status": r.get("health", ""), "message": r.get("healthMessage", "")},
                "requiresPruning": r.get("requiresPruning", False),
                "message": r.get("message", ""),
            }
            for r in d.get("items") or []
        ),
    )


def get_app(api: ApiClient, name: str, fmt: str, refresh: bool) -> None:
    from gitmoor.cli import output

    if fmt not in ("table", "wide", "json", "yaml"):
        raise fail(f"--output takes one of table, wide, json, yaml, not {fmt!r}")

    def go(c: ApiClient) -> JSON:
        detail: JSON = c.get(_path(name))
        if not refresh:
            return detail
        # The controller refreshes (the API sets the refresh annotation, as Argo
        # CD's does); the refresh is done when the reconcile time moves on.
        before = detail.get("reconciledAt")
        c.post(_path(name, "refresh"), json={"type": "normal"})
        deadline = time.monotonic() + REFRESH_WAIT
        while time.monotonic() < deadline:
            time.sleep(POLL)
            detail = c.get(_path(name))
            if detail.get("reconciledAt") != before:
                return detail
        err.print(
            f"[yellow]warning:[/yellow] the controller has not refreshed {escape(name)} "
            f"within {REFRESH_WAIT:g} s; this is its last status",
            markup=True,
        )
        return detail

    detail = call(api, go)
    if fmt in ("json", "yaml"):
        output.dump(out, detail, fmt)
        return
    output.print_app_view(out, _view(detail))


def history(api: ApiClient, name: str, fmt: str) -> None:
    from rich.table import Table

    from gitmoor.cli import output

    items: list[JSON] = call(api, lambda c: c.get(_path(name, "history")))
    if fmt in ("json", "yaml"):
        # Oldest first, as status.history keeps them (and the kubeconfig path prints).
        output.dump(out, list(reversed(items)), fmt)
        return
    t = Table("ID", "DEPLOYED AT", "REVISION", "INITIATED BY", box=None)
    for h in items:  # the API answers newest first
        t.add_row(
            str(h.get("id")),
            str(h.get("deployedAt", "")),
            str(h.get("revision", ""))[:12],
            str(h.get("initiatedBy", "")),
        )
    out.print(t)


def why(api: ApiClient, name: str, fmt: str) -> None:
    """``gitmoor app why`` through the server (``GET …/why``): the same lines."""
    from gitmoor.cli import output

    answer: JSON = call(api, lambda c: c.get(_path(name, "why")))
    lines = [str(line) for line in answer.get("lines") or []]
    if fmt in ("json", "yaml"):
        output.dump(out, {"name": name, "lines": lines}, fmt)
        return
    for line in lines:
        out.print(escape(line))


def diff(api: ApiClient, name: str, revision: str | None, output_format: str = "text") -> int:
    """Print the diff (``text`` or ``markdown``, as the kubeconfig path prints it); 0:
    none, 1: differences (errors exit 2 in :func:`call`)."""
    from gitmoor.cli import output

    def go(c: ApiClient) -> tuple[JSON, JSON]:
        result: JSON = c.get(
            _path(name, "diff"), params={"revision": revision} if revision else None
        )
        # The diff items carry no health; the app's objects tell which are Missing
        # (to be created), for the same header lines as the kubeconfig path.
        detail: JSON = c.get(_path(name))
        return result, detail

    result, detail = call(api, go)
    health = {
        (r.get("group", ""), r.get("kind", ""), r.get("namespace", ""), r.get("name", "")): r.get(
            "health", ""
        )
        for r in detail.get("items") or []
    }
    items: list[JSON] = result.get("items") or []
    if output_format == "markdown":
        return _markdown_diff(name, result, items, health)
    for r in items:
        key = (r.get("group", ""), r.get("kind", ""), r.get("namespace", ""), r.get("name", ""))
        ref = _ref(r)
        if r.get("requiresPruning"):
            out.print(
                f"[bold]===== {escape(ref)} (requires pruning: no longer in Git) =====[/bold]",
                markup=True,
            )
        elif health.get(key) == "Missing":
            out.print(
                f"[bold]===== {escape(ref)} (missing: will be created) =====[/bold]", markup=True
            )
        elif r.get("message"):
            out.print(
                f"[bold]===== {escape(ref)} ({escape(str(r['message']))}) =====[/bold]",
                markup=True,
            )
        if r.get("diff"):
            output.print_diff(out, str(r["diff"]))
    changed = len(items)
    summary = f"{changed} object(s) differ" if changed else "no differences"
    err.print(f"{summary} at revision {str(result.get('revision', ''))[:12]}")
    return 1 if changed else 0


def _markdown_diff(
    name: str, result: JSON, items: list[JSON], health: dict[tuple[Any, ...], Any]
) -> int:
    """The server's diff items as the pull-request comment ``app diff -o markdown``
    prints on the kubeconfig path (the diffs are masked by the server)."""
    from gitmoor.cli.diff_report import AppReport, Change, ObjectChange, show_reports

    changes: list[ObjectChange] = []
    for r in items:
        key = (r.get("group", ""), r.get("kind", ""), r.get("namespace", ""), r.get("name", ""))
        if r.get("requiresPruning"):
            change = Change.REMOVED
        elif health.get(key) == "Missing":
            change = Change.ADDED
        else:
            change = Change.CHANGED
        changes.append(
            ObjectChange(_ref(r), change, str(r.get("message") or ""), str(r.get("diff") or ""))
        )
    revision = str(result.get("revision", ""))[:12]
    return show_reports([AppReport(name, revision, tuple(changes))], "markdown")


def _ref(r: JSON) -> str:
    """An object as ``ObjectRef`` prints it: ``Kind.group/namespace/name``."""
    from gitmoor.model import ObjectRef

    return str(
        ObjectRef(
            str(r.get("group", "")),
            "",
            str(r.get("kind", "")),
            str(r.get("namespace", "")),
            str(r.get("name", "")),
        )
    )


# ---------------------------------------------------------------------- operations


def _op_key(d: JSON) -> tuple[Any, ...]:
    """What tells the app's operation from the one before it. The API shows the
    last operation, not a request still waiting for the controller, so a new
    operation is one whose start, end, phase, message or deployed history
    differs from what was there before the request."""
    op = d.get("operation") or {}
    return (
        op.get("startedAt"),
        op.get("finishedAt"),
        op.get("phase"),
        op.get("message"),
        tuple(h.get("id") for h in d.get("history") or []),
        d.get("operationRequested"),
    )


def _follow(c: ApiClient, name: str, before: JSON, timeout: float, quiet: bool) -> JSON:
    """The app once the operation requested after ``before`` has ended, printing a
    line at each change of its phase or message."""
    baseline = _op_key(before)
    deadline = time.monotonic() + timeout
    shown: tuple[str, str] | None = None
    while True:
        d: JSON = c.get(_path(name))
        op = d.get("operation")
        if op and _op_key(d) != baseline and not d.get("operationRequested"):
            line = (str(op.get("phase", "")), str(op.get("message", "")))
            if line != shown and not quiet and line[0] not in DONE:
                out.print(f"  {escape(line[0])}: {escape(line[1])}", markup=True)
            shown = line
            if line[0] in DONE:
                return d
        if time.monotonic() >= deadline:
            raise fail(
                f"the operation of {name} did not end within {timeout:g} s; the controller "
                f"goes on with it (see `gitmoor app get {name}`, or stop it with "
                f"`gitmoor app terminate-op {name}`)",
                1,
            )
        time.sleep(POLL)


def _finish(before: JSON, after: JSON) -> None:
    """The last line and the exit code, as the kubeconfig path's ``_finish``."""
    op = after.get("operation") or {}
    phase, message = str(op.get("phase", "")), str(op.get("message", ""))
    if phase == "Succeeded":
        old = {h.get("id") for h in before.get("history") or []}
        new = [h for h in after.get("history") or [] if h.get("id") not in old]
        # A deploy adds a history entry with the commit; else the requested revision.
        revision = str(new[0].get("revision") if new else op.get("revision") or "")
        out.print(
            f"[green]{phase}[/green]: " + escape(f"{message} (revision {revision[:12]})"),
            markup=True,
        )
        return
    err.print(f"[red]{escape(phase)}[/red]: " + escape(message), markup=True)
    raise typer.Exit(1 if phase == "Failed" else 2)


def sync(
    api: ApiClient,
    name: str,
    *,
    dry_run: bool,
    prune: bool | None,
    force_conflicts: bool | None,
    resources: list[tuple[str, str, str]] | None,
    revision: str | None,
    timeout: float,
    quiet: bool,
    wait: bool,
) -> None:
    body: JSON = {
        "revision": revision or "",
        # Absent: the app's own choice (automated.prune; the ForceConflicts sync
        # option), as on the kubeconfig path.
        "prune": prune,
        "dryRun": dry_run,
        "force": force_conflicts,
        "resources": [{"group": g, "kind": k, "name": n} for g, k, n in resources]
        if resources
        else None,
    }

    def go(c: ApiClient) -> tuple[JSON, JSON] | None:
        before: JSON = c.get(_path(name))
        accepted: JSON = c.post(_path(name, "sync"), json=body)
        if not wait:
            return None
        if not quiet:
            out.print(f"[bold]{escape(str(accepted.get('message', '')))}[/bold]", markup=True)
        return before, _follow(c, name, before, timeout, quiet)

    done = call(api, go)
    if done is None:
        out.print(
            f"sync of {name} requested; the controller will run it (see `gitmoor app get {name}`)"
        )
        return
    _finish(*done)


def rollback(
    api: ApiClient,
    name: str,
    history_id: int,
    *,
    prune: bool,
    force_conflicts: bool | None,
    timeout: float,
    quiet: bool,
    pin: bool = False,
) -> None:
    if force_conflicts is not None:
        raise fail(
            "--force-conflicts/--no-force-conflicts are not available through the server "
            "for a rollback (the app's sync options decide); run with --core and a "
            "kubeconfig to choose"
        )

    def go(c: ApiClient) -> tuple[JSON, JSON]:
        before: JSON = c.get(_path(name))
        accepted: JSON = c.post(
            _path(name, "rollback"),
            json={"id": history_id, "prune": prune, "dryRun": False, "pin": pin},
        )
        if before.get("automated") and not pin:
            err.print(
                f"automated sync of {name} is switched off for the rollback; "
                f"`gitmoor app set {name} --auto-sync=true` re-enables it"
            )
        if not quiet:
            out.print(f"[bold]{escape(str(accepted.get('message', '')))}[/bold]", markup=True)
        return before, _follow(c, name, before, timeout, quiet)

    _finish(*call(api, go))


def terminate(api: ApiClient, name: str) -> None:
    from gitmoor.cli.remote import ServerInputError

    try:
        with api:
            api.post(_path(name, "terminate"))
    except ServerInputError as e:
        if e.status == 409:
            # As the kubeconfig path (and Argo CD): nothing was running.
            raise fail(e.message, 1) from None
        raise fail(str(e)) from None
    except GitmoorError as e:
        raise fail(str(e)) from None
    out.print(f"operation of {name} asked to terminate")


# ---------------------------------------------------------------------- writing


#: the spec fields ``POST /applications`` carries; anything else a manifest holds
#: (ignoreDifferences, revisionHistoryLimit, a retry policy) it would drop
_BODY_SPEC = {"project", "source", "destination", "syncPolicy"}
_BODY_SOURCE = {"repoURL", "path", "targetRevision", "helm"}
_BODY_POLICY = {"automated", "syncOptions", "suspended"}


def _create_body(manifest: JSON) -> JSON:
    """The API's create body (``AppCreate``: the spec flat, in the CRD's names) of
    the Application ``gitmoor app create`` would write. A field the body cannot
    carry is refused by name rather than dropped: the app would not be the one
    asked for."""
    spec: JSON = manifest.get("spec") or {}
    source: JSON = spec.get("source") or {}
    policy: JSON = spec.get("syncPolicy") or {}
    dropped = (
        [f"spec.{k}" for k in spec if k not in _BODY_SPEC]
        + [f"spec.source.{k}" for k in source if k not in _BODY_SOURCE]
        + [f"spec.syncPolicy.{k}" for k in policy if k not in _BODY_POLICY]
    )
    if dropped:
        raise fail(
            f"the server's API cannot create an app with {', '.join(sorted(dropped))}; "
            "create it with --core and a kubeconfig"
        )
    destination: JSON = spec.get("destination") or {}
    auto = policy.get("automated")
    return {
        "name": manifest["metadata"]["name"],
        "project": spec.get("project") or "default",
        "repoURL": source.get("repoURL", ""),
        "path": source.get("path", "."),
        "targetRevision": source.get("targetRevision", "HEAD"),
        "destination": {
            "name": destination.get("name", ""),
            "namespace": destination.get("namespace", ""),
        },
        "syncPolicy": {
            "automated": None
            if auto is None
            else {
                "prune": bool(auto.get("prune")),
                "selfHeal": bool(auto.get("selfHeal")),
                "allowEmpty": bool(auto.get("allowEmpty")),
            },
            "syncOptions": list(policy.get("syncOptions") or []),
            "suspended": bool(policy.get("suspended")),
        },
        "helm": source.get("helm"),
    }


def create(api: ApiClient, manifest: JSON, upsert: bool) -> None:
    body = _create_body(manifest)
    call(
        api,
        lambda c: c.request(
            "POST", "/applications", json=body, params={"upsert": "true"} if upsert else None
        ),
    )
    out.print(f"application {body['name']} {'saved' if upsert else 'created'}")


def delete(api: ApiClient, name: str, cascade: bool) -> None:
    answer: JSON = call(
        api,
        lambda c: c.request(
            "DELETE", _path(name), params={"cascade": "true" if cascade else "false"}
        ),
    )
    for r in answer.get("deleted") or []:
        out.print(f"  deleted {_ref(r)}")
    for r in answer.get("left") or []:
        out.print(f"  left {_ref(r)}")
    if answer.get("unreachableCluster"):
        n, cluster = len(answer.get("left") or []), answer["unreachableCluster"]
        out.print(f"left {n} objects on unreachable cluster {cluster}")
    out.print(f"application {name} deleted" + ("" if cascade else " (its resources were kept)"))


def set_app(
    api: ApiClient,
    name: str,
    *,
    spec_options: list[str],
    auto_sync: bool | None,
    auto_prune: bool | None,
    self_heal: bool | None,
) -> None:
    """``app set`` through the API: its automation options (``POST …/automation``).

    The API shows neither an app's whole spec (Helm values, sync options), which
    a ``PUT`` replaces, nor its automated prune/selfHeal/allowEmpty flags. So
    only the changes whose result is known are sent: automation off, or on for
    an app that has none (the given flags, false otherwise, as the kubeconfig
    path sets them for such an app). Anything else would overwrite what the CLI
    cannot see, and is refused with the way to do it."""
    if spec_options:
        raise fail(
            f"through the server, `app set` changes automation only; {', '.join(spec_options)} "
            "would replace the app's whole spec, which the API does not show: use --core "
            "and a kubeconfig"
        )
    if auto_sync is None and auto_prune is None and self_heal is None:
        raise fail("nothing to set: give at least one option")

    def go(c: ApiClient) -> None:
        detail: JSON = c.get(_path(name))
        if auto_sync is False:
            body: JSON = {"automated": None}
        elif detail.get("automated"):
            raise fail(
                f"{name} has automated sync already, and the server's API does not show "
                "its prune and self-heal flags to keep; change them with --core and a "
                "kubeconfig, or switch automation off (--auto-sync=false) and on again "
                "with the flags wanted"
            )
        elif auto_sync is None:
            raise fail(f"{name} has no automated sync; add --auto-sync=true")
        else:
            body = {
                "automated": {
                    "prune": bool(auto_prune),
                    "selfHeal": bool(self_heal),
                    "allowEmpty": False,
                }
            }
        c.post(_path(name, "automation"), json=body)

    call(api, go)
    out.print(f"application {name} updated")


def set_suspended(api: ApiClient, name: str, suspended: bool) -> None:
    call(api, lambda c: c.post(_path(name, "automation"), json={"suspended": suspended}))
