"""`gitmoor bootstrap`: gitmoor installs itself from Git and then manages itself.

Flux's ``flux bootstrap`` is the model: it commits its own install manifests
(``gotk-components.yaml``) and a ``kustomization.yaml`` into
``clusters/NAME/flux-system``, applies them, and creates the objects that make
Flux reconcile that path; from then on upgrading Flux is a commit. gitmoor does
the same with an Application named ``gitmoor`` (Argo CD's documented
"manage Argo CD using Argo CD" set-up, done by one command):

- ``gitmoor-components.yaml``: ``deploy/`` rendered with the chosen overlay
  (CRDs included) by kustomize, moved into gitmoor's namespace. Re-running
  bootstrap rewrites it, so a newer gitmoor upgrades the install.
- ``gitmoor-project.yaml``: the ``default`` AppProject (Argo CD's default,
  everything allowed), also rewritten.
- ``kustomization.yaml``: written only when absent, as Flux does, because it is
  the user's: patches there (replicas, resources, an image) survive re-runs.

The CRDs, the Namespace and the project carry ``Prune=false,Delete=false``:
deleting the ``gitmoor`` Application (or dropping one of them from Git) must not
take every Application of the cluster with it (Argo CD's advice for a
self-managed install, its CRDs annotated the same way).

In another namespace than ``gitmoor`` (the global ``--apps-namespace``, which
is also where gitmoor runs: the controller takes the Applications' namespace
from its pod), every ``gitmoor`` namespace of the rendered objects becomes that
one, and cluster-scoped RBAC objects (ClusterRoles, ClusterRoleBindings) get
the namespace as a suffix, so two installs in one cluster never share or
overwrite each other's cluster-wide objects.

Re-running is a no-op: equal files make no commit, an unchanged Application is
not written, and an app already Synced at the branch's commit is not synced.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gitmoor.cli._common import State, fail, make_engine, out, run, whoami
from gitmoor.model import UserInputError

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.source.push import PushResult

APP_NAME = "gitmoor"
COMPONENTS = "gitmoor-components.yaml"
PROJECT = "gitmoor-project.yaml"
KUSTOMIZATION = "kustomization.yaml"
OVERLAYS = {"": ".", "namespaced": "overlays/namespaced", "ha": "overlays/ha"}
#: the namespace deploy/ names
HOME_NAMESPACE = "gitmoor"
ENV_DEPLOY_DIR = "GITMOOR_DEPLOY_DIR"
KEEP = "Prune=false,Delete=false"
_CLUSTER_RBAC = ("ClusterRole", "ClusterRoleBinding")
_KEPT_KINDS = ("CustomResourceDefinition", "Namespace", "AppProject")

Obj = dict[str, Any]


def deploy_dir(given: Path | None = None) -> Path:
    """Where gitmoor's install manifests are: ``--manifests``, ``$GITMOOR_DEPLOY_DIR``,
    else ``deploy/`` of the source tree this gitmoor runs from (the image copies it
    and sets the variable)."""
    candidates = [given] if given else []
    if os.environ.get(ENV_DEPLOY_DIR):
        candidates.append(Path(os.environ[ENV_DEPLOY_DIR]))
    candidates.append(Path(__file__).resolve().parents[3] / "deploy")
    for c in candidates:
        if (c / "kustomization.yaml").is_file():
            return c
    raise UserInputError(
        "gitmoor's install manifests (deploy/) were not found: pass --manifests DIR or set "
        f"${ENV_DEPLOY_DIR}"
    )


def relocate(objs: list[Obj], namespace: str) -> list[Obj]:
    """``objs`` moved from namespace ``gitmoor`` to ``namespace`` (see the module docstring)."""
    moved = [copy.deepcopy(o) for o in objs]
    if namespace == HOME_NAMESPACE:
        return moved
    renamed = {o["metadata"]["name"] for o in moved if o.get("kind") == "ClusterRole"}

    def ns(value: str) -> str:
        return namespace if value == HOME_NAMESPACE else value

    for o in moved:
        meta = o.setdefault("metadata", {})
        if o.get("kind") == "Namespace":
            meta["name"] = ns(meta.get("name", ""))
        if meta.get("namespace"):
            meta["namespace"] = ns(meta["namespace"])
        if o.get("kind") in _CLUSTER_RBAC:
            meta["name"] = f"{meta['name']}-{namespace}"
        ref = o.get("roleRef")
        if (
            isinstance(ref, dict)
            and ref.get("kind") == "ClusterRole"
            and ref.get("name") in renamed
        ):
            ref["name"] = f"{ref['name']}-{namespace}"
        for s in o.get("subjects") or []:
            if isinstance(s, dict) and s.get("namespace"):
                s["namespace"] = ns(s["namespace"])
    return moved


def _keep(obj: Obj) -> Obj:
    meta = obj.setdefault("metadata", {})
    from gitmoor.model.application import SYNC_OPTIONS_ANNOTATION

    annotations = meta.setdefault("annotations", {})
    annotations[SYNC_OPTIONS_ANNOTATION] = KEEP
    return obj


def _dump(objs: list[Obj]) -> str:
    import yaml

    return str(yaml.safe_dump_all(objs, sort_keys=False, default_flow_style=False, width=1000))


def bootstrap_files(manifests: Path, overlay: str, namespace: str) -> dict[str, str]:
    """The files bootstrap writes into the path, by name (kustomization.yaml last:
    it is written only where none exists)."""
    import gitmoor
    from gitmoor.model.project import default_project
    from gitmoor.render import render_app

    where = OVERLAYS[overlay]
    rendered = render_app(manifests, where, "bootstrap")
    objs = relocate([dict(m.obj) for m in rendered.manifests], namespace)
    objs = [_keep(o) if o.get("kind") in _KEPT_KINDS else o for o in objs]
    shown = "deploy/" if where == "." else f"deploy/{where}"
    header = (
        f"# Written by `gitmoor bootstrap` (gitmoor {gitmoor.__version__}): {shown} rendered\n"
        f"# for namespace {namespace}. Re-running bootstrap rewrites this file; change\n"
        f"# settings with patches in {KUSTOMIZATION}, which bootstrap never rewrites.\n"
    )
    project = _keep(default_project(namespace).to_manifest())
    kustomization = (
        "# gitmoor's own install, managed by the Application `gitmoor` (gitmoor bootstrap).\n"
        "# Yours to edit: add patches here (replicas, resources, the image); bootstrap\n"
        "# writes this file only when it is absent.\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n"
        f"- {COMPONENTS}\n"
        f"- {PROJECT}\n"
    )
    return {
        COMPONENTS: header + _dump(objs),
        PROJECT: "# Written by `gitmoor bootstrap`: the default project.\n" + _dump([project]),
        KUSTOMIZATION: kustomization,
    }


def app_manifest(repo: str, path: str, branch: str, namespace: str) -> Obj:
    from gitmoor.model.application import (
        AppSource,
        Automated,
        Destination,
        application_manifest,
    )

    return application_manifest(
        APP_NAME,
        namespace,
        AppSource(repo_url=repo, path=path, target_revision=branch),
        Destination(namespace=namespace),
        automated=Automated(prune=True, self_heal=True),
    )


def _norm_path(path: str) -> str:
    p = path.strip().strip("/")
    while p.startswith("./"):
        p = p[2:]
    if not p or p == "." or any(part in ("", "..", ".git") for part in p.split("/")):
        raise fail(f"--path must be a directory inside the repository, not {path!r}")
    return p


def _write_and_push(
    repo: str, branch: str, path: str, files: dict[str, str], creds: Any
) -> PushResult:
    from gitmoor.source.push import open_branch

    with open_branch(repo, branch, creds, create=True) as work:
        for name, text in files.items():
            target = work.file(f"{path}/{name}")
            if name == KUSTOMIZATION and target.exists():
                continue  # the user's (see the module docstring)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        return work.commit_and_push(f"gitmoor bootstrap: install manifests in {path}")


async def _ensure(kube: KubeClient, obj: Obj) -> None:
    """Apply ``obj`` if it does not exist. An existing one is left to the app's
    sync, which applies it with its tracking id: an apply here under the same
    field manager without that id would strip it."""
    from gitmoor.model import ObjectRef

    if await kube.get(ObjectRef.of(obj)) is None:
        await kube.apply(obj, force=True)


async def _prerequisites(kube: KubeClient, files: dict[str, str]) -> None:
    """The CRDs (Established), gitmoor's Namespace and the project: what the
    Application and its first sync need before they can exist."""
    import yaml

    from gitmoor.kube import wait_for
    from gitmoor.model import ObjectRef

    objs = [o for o in yaml.safe_load_all(files[COMPONENTS]) if o]
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    for crd in crds:
        await _ensure(kube, crd)

    async def established() -> bool:
        for crd in crds:
            live = await kube.get(ObjectRef.of(crd))
            conds = ((live or {}).get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                return False
        return True

    await wait_for(established, within=60, what="gitmoor's CRDs to be Established")
    kube.invalidate_discovery()
    for o in objs:
        if o["kind"] == "Namespace":
            await _ensure(kube, o)
    for o in yaml.safe_load_all(files[PROJECT]):
        if o:
            await _ensure(kube, o)


async def _upsert_app(kube: KubeClient, manifest: Obj) -> tuple[Any, bool]:
    """The Application, created or its spec updated; True when it was written."""
    from gitmoor.engine import store
    from gitmoor.model.application import parse_application

    live = await kube.get(store.app_ref(APP_NAME, State.namespace))
    if live is not None:
        spec = live.get("spec") or {}
        want = manifest["spec"]
        auto = (spec.get("syncPolicy") or {}).get("automated") or {}
        if (
            all(spec.get("source", {}).get(k) == v for k, v in want["source"].items())
            and spec.get("destination") == want["destination"]
            and spec.get("project") == want["project"]
            and auto.get("prune") is True
            and auto.get("selfHeal") is True
        ):
            return parse_application(live), False
    return await store.save_app(kube, manifest, upsert=True), True


def bootstrap(
    repo: Annotated[str, typer.Option(help="the repository gitmoor manages itself from")],
    path: Annotated[
        str, typer.Option(help="directory in the repository for the install, e.g. clusters/NAME")
    ],
    branch: Annotated[
        str,
        typer.Option(
            help="branch to commit to and follow (a valid git branch name, by git "
            "check-ref-format --branch)"
        ),
    ] = "main",
    overlay: Annotated[
        str,
        typer.Option(
            help="deploy/ overlay: namespaced (rights only in listed namespaces) or ha (two "
            "sharded controllers); default: deploy/ itself (controller and API server)"
        ),
    ] = "",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="print the files it would write; touch nothing"),
    ] = False,
    username: Annotated[
        str | None,
        typer.Option(help="store credentials for --repo first, as `gitmoor repo add`"),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="read the password or token from stdin"),
    ] = False,
    manifests: Annotated[
        Path | None,
        typer.Option(
            help=f"gitmoor's deploy/ directory (default: ${ENV_DEPLOY_DIR}, else the source "
            "tree's deploy/)"
        ),
    ] = None,
) -> None:
    """Install gitmoor from Git and let it manage itself (as `flux bootstrap`).

    1. Writes gitmoor's install manifests into --path of --repo and pushes them
       (stored credentials; `gitmoor repo add` first, or --username with
       --password-stdin): gitmoor-components.yaml (deploy/ with --overlay, the
       CRDs), gitmoor-project.yaml (the default AppProject) and, only where none
       exists, kustomization.yaml (yours: patches there survive re-runs).
    2. Applies them to the cluster.
    3. Creates the Application `gitmoor` managing --path, automated with prune
       and self-heal: from then on, upgrading or reconfiguring gitmoor is a commit.

    gitmoor's namespace is the --apps-namespace (default gitmoor). Re-running
    changes nothing when nothing differs: no commit, no write to the app.
    """
    if overlay not in OVERLAYS:
        raise fail(f"--overlay takes namespaced or ha, not {overlay!r}")
    where = _norm_path(path)
    if password_stdin and not username:
        raise fail("--password-stdin needs --username")
    password = sys.stdin.read().strip() if password_stdin else None
    from gitmoor.model import GitmoorError

    try:
        from gitmoor.source import check_branch_name, check_repo_url

        check_branch_name(branch.removeprefix("refs/heads/"), option="--branch")
        check_repo_url(repo)
        files = bootstrap_files(deploy_dir(manifests), overlay, State.namespace)
    except GitmoorError as e:
        raise fail(str(e)) from None
    if dry_run:
        for name, text in files.items():
            note = " (only if absent)" if name == KUSTOMIZATION else ""
            out.print(f"--- {where}/{name}{note}", markup=False)
            out.print(text, end="", markup=False)
        return
    import asyncio

    async def go(kube: KubeClient) -> None:
        from gitmoor.engine import SyncOptions, status_of
        from gitmoor.settings.repos import add_repo, credentials_for, load_credentials
        from gitmoor.source import parse_repo_url

        await _prerequisites(kube, files)
        if username:
            await add_repo(
                kube, repo, username=username, password=password, namespace=State.namespace
            )
        creds = credentials_for(repo, await load_credentials(kube, State.namespace), "default")
        if creds is None and parse_repo_url(repo).transport != "file":
            raise UserInputError(
                f"no stored credentials for {repo} in {State.namespace}: run `gitmoor repo add` "
                "first, or pass --username and --password-stdin",
                concerns=repo,
            )
        pushed = await asyncio.to_thread(_write_and_push, repo, branch, where, files, creds)
        head = pushed.commit or pushed.base or ""
        out.print(
            f"committed {head[:12]} to {branch}: {where}"
            if pushed.commit
            else f"{where} at {head[:12]} already holds these manifests: no commit"
        )
        app, written = await _upsert_app(kube, app_manifest(repo, where, branch, State.namespace))
        status = status_of(app)
        if (
            not written
            and not pushed.commit
            and status.sync_status == "Synced"
            and (status.sync_revision == head)
        ):
            out.print(f"application {APP_NAME} unchanged, Synced at {head[:12]}")
            return
        out.print(f"application {APP_NAME} {'written' if written else 'unchanged'}; syncing")
        result = await make_engine(kube).sync(
            app, SyncOptions.for_app(app, timeout=300), initiated_by=whoami()
        )
        if not result.ok:
            raise UserInputError(
                f"the first sync of {APP_NAME} ended {result.phase.value}: {result.message}"
            )
        out.print(
            f"applied: application {APP_NAME} Synced at {result.revision[:12]}; gitmoor now "
            f"manages {where} of {repo}"
        )

    run(go)
