"""Applications in the cluster: the API server is gitmoor's only database.

Spec, requested operation, operation state, history and status all live in the
Application object (as Argo CD keeps them), so a controller that restarts
loses nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from gitmoor.crds import application_crd, applicationset_crd, appproject_crd
from gitmoor.kube import NotFoundError, wait_for
from gitmoor.model import ObjectRef, UserInputError
from gitmoor.model.application import (
    API_VERSION,
    DEFAULT_NAMESPACE,
    GROUP,
    KIND,
    REFRESH_ANNOTATION,
    VERSION,
    Application,
    parse_application,
)
from gitmoor.settings import ensure_default_project

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient


log = logging.getLogger("gitmoor.engine.store")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def app_ref(name: str, namespace: str = DEFAULT_NAMESPACE) -> ObjectRef:
    return ObjectRef(GROUP, VERSION, KIND, namespace, name)


async def install(kube: KubeClient, namespace: str = DEFAULT_NAMESPACE) -> bool:
    """Install (or upgrade) the Application, ApplicationSet and AppProject CRDs, create the
    Applications' namespace and, unless one exists, the ``default`` project.
    True when the default project was created."""
    crds = [application_crd(), applicationset_crd(), appproject_crd()]
    for crd in crds:
        await kube.apply(crd, force=True)
    refs = [
        ObjectRef(
            "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "", crd["metadata"]["name"]
        )
        for crd in crds
    ]

    async def established() -> bool:
        for ref in refs:
            live = await kube.get(ref)
            # A CRD just created may show ``conditions: null`` until its controller runs.
            conds = ((live or {}).get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                return False
        return True

    await wait_for(established, within=30, what="the gitmoor CRDs to be Established")
    kube.invalidate_discovery()
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    return await ensure_default_project(kube, namespace)


async def get_app(kube: KubeClient, name: str, namespace: str = DEFAULT_NAMESPACE) -> Application:
    obj = await kube.get(app_ref(name, namespace))
    if obj is None:
        raise UserInputError(f"application {namespace}/{name} not found", concerns=name)
    return parse_application(obj)


async def list_apps(kube: KubeClient, namespace: str = DEFAULT_NAMESPACE) -> list[Application]:
    ar = await kube.resource(GROUP, VERSION, KIND)
    listed = await kube.list(ar, namespace)
    apps: list[Application] = []
    for obj in sorted(listed.items, key=lambda o: o["metadata"]["name"]):
        # One app with an invalid spec (say a refreshInterval under the floor)
        # must not hide every other app; its own status carries the error.
        try:
            apps.append(parse_application(obj))
        except UserInputError as e:
            log.warning(
                "event=app_invalid app=%s/%s error=%s",
                namespace,
                obj.get("metadata", {}).get("name", ""),
                e,
            )
    return apps


async def save_app(
    kube: KubeClient, manifest: dict[str, Any], *, upsert: bool = False
) -> Application:
    """Create an Application (or, with ``upsert``, update its spec)."""
    parse_application(manifest)  # validate before anything is written
    if not upsert:
        existing = await kube.get(ObjectRef.of(manifest))
        if existing is not None:
            name = manifest["metadata"]["name"]
            raise UserInputError(f"application {name} already exists (use `app set` to change it)")
    return parse_application(await kube.apply(manifest, force=True))


async def patch_status(kube: KubeClient, app: Application, status: dict[str, Any]) -> Application:
    """Merge ``status`` into the Application's status subresource."""
    obj = await kube.merge_patch(
        app_ref(app.name, app.namespace), {"status": status}, subresource="status"
    )
    return parse_application(obj)


async def set_operation(
    kube: KubeClient, app: Application, operation: dict[str, Any] | None
) -> Application:
    """Request an operation (or clear it with None), as Argo CD's ``operation`` field."""
    try:
        obj = await kube.merge_patch(app_ref(app.name, app.namespace), {"operation": operation})
    except NotFoundError as e:
        raise UserInputError(f"application {app.namespace}/{app.name} not found") from e
    return parse_application(obj)


async def request_refresh(kube: KubeClient, app: Application, kind: str = "normal") -> Application:
    """Ask the controller to refresh the app now (``kind``: normal, or hard to render
    again without the render cache), by the annotation Argo CD's API server sets."""
    if kind not in ("normal", "hard"):
        raise UserInputError(f"refresh is normal or hard, not {kind!r}")
    obj = await kube.merge_patch(
        app_ref(app.name, app.namespace), {"metadata": {"annotations": {REFRESH_ANNOTATION: kind}}}
    )
    return parse_application(obj)


async def clear_refresh(kube: KubeClient, app: Application) -> None:
    """Remove the refresh request once acted on (Argo CD's controller does the same)."""
    await kube.merge_patch(
        app_ref(app.name, app.namespace), {"metadata": {"annotations": {REFRESH_ANNOTATION: None}}}
    )


def refresh_requested(obj: dict[str, Any]) -> str:
    """The refresh an Application object asks for: "", "normal" or "hard"."""
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    kind = ann.get(REFRESH_ANNOTATION, "") if isinstance(ann, dict) else ""
    return kind if kind in ("normal", "hard") else ("normal" if kind else "")


async def patch_spec(kube: KubeClient, app: Application, spec_patch: dict[str, Any]) -> Application:
    obj = await kube.merge_patch(app_ref(app.name, app.namespace), {"spec": spec_patch})
    return parse_application(obj)


__all__ = [
    "API_VERSION",
    "app_ref",
    "clear_refresh",
    "get_app",
    "install",
    "list_apps",
    "now_iso",
    "patch_spec",
    "patch_status",
    "refresh_requested",
    "request_refresh",
    "save_app",
    "set_operation",
]
