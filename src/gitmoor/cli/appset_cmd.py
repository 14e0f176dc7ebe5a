"""`gitmoor appset list|get|create|delete`: ApplicationSets, as ``argocd appset``.

The controller (``gitmoor controller``) reconciles them: it creates, updates and
(under policy ``sync``) deletes their Applications and writes their status.
These commands read that status and manage the objects; ``delete`` deletes the
Applications as the controller would (``gitmoor.engine.delete_appset``), so it
works whether or not a controller runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gitmoor.cli._common import State, fail, make_engine, out, run
from gitmoor.model import ObjectRef, UserInputError
from gitmoor.model.appset import (
    APPSET_GROUP,
    APPSET_KIND,
    APPSET_VERSION,
    ApplicationSet,
    parse_appset,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

appset_cmd = typer.Typer(
    help="ApplicationSets: one template, many Applications, from generators (list, git "
    "directories and files, clusters, matrix, merge), as Argo CD's ApplicationSet.",
    no_args_is_help=True,
)

_FORMATS = ("table", "json", "yaml")


def _ref(name: str) -> ObjectRef:
    return ObjectRef(APPSET_GROUP, APPSET_VERSION, APPSET_KIND, State.namespace, name)


async def _list(kube: KubeClient) -> list[dict[str, Any]]:
    await _list_kind_check(kube)
    ar = await kube.resource(APPSET_GROUP, APPSET_VERSION, APPSET_KIND)
    listed = await kube.list(ar, State.namespace)
    return sorted(listed.items, key=lambda o: str(o["metadata"]["name"]))


async def _get(kube: KubeClient, name: str) -> dict[str, Any]:
    await _list_kind_check(kube)
    obj = await kube.get(_ref(name))
    if obj is None:
        raise UserInputError(f"applicationset {State.namespace}/{name} not found")
    return obj


async def _list_kind_check(kube: KubeClient) -> None:
    from gitmoor.kube import UnknownKindError

    try:
        await kube.resource(APPSET_GROUP, APPSET_VERSION, APPSET_KIND)
    except UnknownKindError:
        raise UserInputError(
            "the ApplicationSet CRD is not installed (run `gitmoor install`)"
        ) from None


def _condition(obj: dict[str, Any]) -> str:
    """One word for the table: the error when one occurred, else up to date or not."""
    conds = {
        c.get("type"): c
        for c in (obj.get("status") or {}).get("conditions") or []
        if isinstance(c, dict)
    }
    err = conds.get("ErrorOccurred")
    if err and err.get("status") == "True":
        return f"ErrorOccurred: {err.get('message', '')}"
    upd = conds.get("ResourcesUpToDate")
    if upd is None:
        return "- (not reconciled yet)"
    return "UpToDate" if upd.get("status") == "True" else "NotUpToDate"


def _policy(obj: dict[str, Any]) -> str:
    try:
        return parse_appset(obj).policy
    except UserInputError:
        return "invalid"


def _generator_text(gen: Any) -> str:
    """A generator in one line: its kind and what it reads."""
    if not isinstance(gen, dict):
        return str(gen)
    for kind, body in gen.items():
        if kind in ("selector", "template") or not isinstance(body, dict):
            continue
        if kind == "list":
            return f"list ({len(body.get('elements') or [])} elements)"
        if kind == "git":
            dirs = [
                ("!" if d.get("exclude") else "") + str(d.get("path", ""))
                for d in body.get("directories") or []
                if isinstance(d, dict)
            ]
            files = [str(f.get("path", "")) for f in body.get("files") or [] if isinstance(f, dict)]
            what = f"directories {', '.join(dirs)}" if dirs else f"files {', '.join(files)}"
            return f"git {body.get('repoURL', '')}@{body.get('revision') or 'HEAD'} {what}"
        if kind == "clusters":
            sel = (body.get("selector") or {}).get("matchLabels") or {}
            labels = ",".join(f"{k}={v}" for k, v in sel.items())
            return f"clusters ({labels or 'all'})"
        if kind in ("matrix", "merge"):
            inner = " x " if kind == "matrix" else " + "
            return f"{kind}[{inner.join(_generator_text(g) for g in body.get('generators') or [])}]"
        return str(kind)
    return "?"


@appset_cmd.command("list")
def appset_list(
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="table, json or yaml")
    ] = "table",
) -> None:
    """List ApplicationSets with their policy, how many Applications each owns, and
    their condition (an error the last reconcile met, or UpToDate)."""
    from rich.table import Table

    from gitmoor.cli import output

    if output_format not in _FORMATS:
        raise fail(f"--output takes table, json or yaml, not {output_format!r}")
    items = run(_list)
    if output_format in ("json", "yaml"):
        output.dump(out, items, output_format)
        return
    t = Table("NAME", "POLICY", "APPS", "CONDITION", box=None)
    for obj in items:
        st = obj.get("status") or {}
        count = st.get("resourcesCount", len(st.get("resources") or []))
        t.add_row(str(obj["metadata"]["name"]), _policy(obj), str(count), _condition(obj))
    out.print(t)


@appset_cmd.command("get")
def appset_get(
    name: Annotated[str, typer.Argument(help="the ApplicationSet's name")],
    output_format: Annotated[
        str,
        typer.Option("--output", "-o", help="table, json or yaml (json/yaml: the whole object)"),
    ] = "table",
) -> None:
    """Show one ApplicationSet: its generators, policy, the Applications it owns with
    their sync and health, and its conditions."""
    from rich.table import Table

    from gitmoor.cli import output

    if output_format not in _FORMATS:
        raise fail(f"--output takes table, json or yaml, not {output_format!r}")
    obj = run(lambda kube: _get(kube, name))
    if output_format in ("json", "yaml"):
        output.dump(out, obj, output_format)
        return
    spec = obj.get("spec") or {}
    try:
        appset: ApplicationSet | None = parse_appset(obj)
    except UserInputError as e:
        appset = None
        out.print(f"Invalid spec:  {e}", markup=False)
    lines = [
        ("Name", f"{State.namespace}/{name}"),
        ("Policy", appset.policy if appset else "-"),
        (
            "On deletion",
            "apps deleted, their objects kept (preserveResourcesOnDeletion)"
            if appset and appset.preserve_resources_on_deletion
            else "apps deleted with their objects",
        ),
        ("Templating", "goTemplate" if spec.get("goTemplate") else "fasttemplate ({{param}})"),
    ]
    for label, value in lines:
        out.print(f"{label + ':':<14}{value}", markup=False)
    out.print("Generators:", markup=False)
    for gen in spec.get("generators") or []:
        out.print(f"  - {_generator_text(gen)}", markup=False)
    st = obj.get("status") or {}
    resources = st.get("resources") or []
    out.print(f"Applications ({len(resources)}):", markup=False)
    if resources:
        t = Table("NAME", "SYNC", "HEALTH", "MESSAGE", box=None)
        for r in resources:
            health = r.get("health") or {}
            t.add_row(
                str(r.get("name", "")),
                str(r.get("status", "")),
                str(health.get("status", "")),
                str(health.get("message", "")),
            )
        out.print(t)
    out.print("Conditions:", markup=False)
    for c in st.get("conditions") or []:
        out.print(
            f"  {c.get('type')}={c.get('status')} ({c.get('reason', '')}): {c.get('message', '')}",
            markup=False,
        )
    if not st.get("conditions"):
        out.print("  - (not reconciled yet: is `gitmoor controller` running?)", markup=False)


@appset_cmd.command("create")
def appset_create(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            help="an ApplicationSet manifest (YAML or JSON; apiVersion gitmoor.io/v1alpha1, or "
            "argoproj.io/v1alpha1 which is read as gitmoor's)",
            exists=True,
            dir_okay=False,
        ),
    ],
    upsert: Annotated[
        bool, typer.Option("--upsert", help="replace the ApplicationSet if it exists")
    ] = False,
) -> None:
    """Create an ApplicationSet from a manifest (validated first). The controller then
    creates its Applications."""
    import yaml

    from gitmoor.model.appset import APPSET_API_VERSION

    try:
        manifest = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise fail(f"{file}: not YAML: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != APPSET_KIND:
        raise fail(f"{file}: not an ApplicationSet manifest")
    manifest["apiVersion"] = APPSET_API_VERSION
    meta = manifest.setdefault("metadata", {})
    meta["namespace"] = State.namespace
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        meta.pop(key, None)
    manifest.pop("status", None)
    try:
        appset = parse_appset(manifest)
    except UserInputError as e:
        raise fail(f"{file}: {e}") from None

    async def go(kube: KubeClient) -> None:
        await _list_kind_check(kube)
        if not upsert and await kube.get(_ref(appset.name)) is not None:
            raise UserInputError(
                f"applicationset {appset.name} already exists (use --upsert to replace it)"
            )
        await kube.apply(manifest, force=True)

    run(go)
    out.print(f"applicationset {appset.name} {'saved' if upsert else 'created'}")


@appset_cmd.command("delete")
def appset_delete(
    name: Annotated[str, typer.Argument(help="the ApplicationSet's name")],
    cascade: Annotated[
        bool,
        typer.Option(
            "--cascade/--no-cascade",
            help="--cascade (default): delete its Applications too, each with its objects "
            "unless the ApplicationSet says preserveResourcesOnDeletion (Argo CD's owner "
            "reference cascade); --no-cascade: release its Applications (owner reference "
            "and label removed) and keep them",
        ),
    ] = True,
) -> None:
    """Delete an ApplicationSet and, by default, the Applications it owns."""
    from gitmoor.engine import appset_for_deletion, delete_appset

    async def go(kube: KubeClient) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
        obj = await _get(kube, name)
        appset = appset_for_deletion(obj)  # an invalid spec can still be deleted
        done = await delete_appset(make_engine(kube), appset, cascade=cascade)
        return done.deleted, done.orphaned, appset.preserve_resources_on_deletion

    deleted, orphaned, preserved = run(go)
    if cascade:
        kept = " (their objects kept: preserveResourcesOnDeletion)" if preserved else ""
        apps = ", ".join(deleted) or "none"
        out.print(f"applicationset {name} deleted; applications deleted: {apps}{kept}")
    else:
        apps = ", ".join(orphaned) or "none"
        out.print(f"applicationset {name} deleted; applications kept: {apps}")
