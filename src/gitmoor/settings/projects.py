"""AppProjects in the cluster: the API server is the store, as for Applications.

Projects live in the Applications' namespace (Argo CD keeps its AppProjects in
``argocd``). Reads of a kind the server does not serve (the CRD not installed)
answer "no project" rather than an error, so that an install from before
projects keeps working with the built-in ``default`` (see
``gitmoor.engine.projects``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gitmoor.kube import ConflictError, UnknownKindError
from gitmoor.model import ObjectRef, UserInputError
from gitmoor.model.application import DEFAULT_NAMESPACE
from gitmoor.model.project import (
    DEFAULT_PROJECT,
    GROUP,
    KIND,
    VERSION,
    AppProject,
    default_project,
    parse_appproject,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.settings")
#: read-modify-write attempts before a concurrent writer wins
_UPDATE_ATTEMPTS = 5


def project_ref(name: str, namespace: str = DEFAULT_NAMESPACE) -> ObjectRef:
    return ObjectRef(GROUP, VERSION, KIND, namespace, name)


async def get_project(
    kube: KubeClient, name: str, namespace: str = DEFAULT_NAMESPACE
) -> AppProject | None:
    """The project, or None when it (or the AppProject kind) does not exist."""
    try:
        obj = await kube.get(project_ref(name, namespace))
    except UnknownKindError:
        return None
    return None if obj is None else parse_appproject(obj)


async def list_projects(kube: KubeClient, namespace: str = DEFAULT_NAMESPACE) -> list[AppProject]:
    try:
        ar = await kube.resource(GROUP, VERSION, KIND)
    except UnknownKindError:
        return []
    listed = await kube.list(ar, namespace)
    return [parse_appproject(o) for o in sorted(listed.items, key=lambda o: o["metadata"]["name"])]


async def create_project(
    kube: KubeClient, project: AppProject, *, upsert: bool = False
) -> AppProject:
    """Create the project; with ``upsert``, replace the spec of an existing one."""
    manifest = project.to_manifest()
    parse_appproject(manifest)  # validate before anything is written
    if upsert:
        return parse_appproject(await kube.apply(manifest, force=True))
    try:
        return parse_appproject(await kube.create(manifest))
    except ConflictError as e:
        raise UserInputError(
            f"project {project.name} already exists in {project.namespace} "
            "(use --upsert to replace it)",
            concerns=f"AppProject {project.name}",
        ) from e


async def delete_project(kube: KubeClient, name: str, namespace: str = DEFAULT_NAMESPACE) -> bool:
    try:
        return await kube.delete(project_ref(name, namespace))
    except UnknownKindError:
        return False


async def patch_project(
    kube: KubeClient, name: str, namespace: str, spec_patch: dict[str, Any]
) -> AppProject:
    """Merge ``spec_patch`` into the project's spec (a JSON merge patch: lists are replaced)."""
    await _require(kube, name, namespace)
    obj = await kube.merge_patch(project_ref(name, namespace), {"spec": spec_patch})
    return parse_appproject(obj)


async def update_project(
    kube: KubeClient,
    name: str,
    namespace: str,
    change: Callable[[AppProject], AppProject],
) -> AppProject:
    """Read, change and write back the project with its resourceVersion, so that two
    people adding a destination at once both land (a merge patch would replace the
    list with one of theirs)."""
    for _ in range(_UPDATE_ATTEMPTS):
        current = await _require(kube, name, namespace)
        changed = change(current)
        manifest = changed.to_manifest()
        meta = dict(current.raw.get("metadata") or {})
        meta.pop("managedFields", None)
        manifest["metadata"] = meta  # with resourceVersion: a 409 if it changed meanwhile
        try:
            obj = await kube.replace(project_ref(name, namespace), manifest)
        except ConflictError:
            continue
        return parse_appproject(obj)
    raise UserInputError(
        f"project {name} kept changing under this update; try again",
        concerns=f"AppProject {name}",
    )


async def ensure_default_project(kube: KubeClient, namespace: str = DEFAULT_NAMESPACE) -> bool:
    """Create the ``default`` project (Argo CD's default: everything allowed) unless one
    exists; an existing one is never overwritten, since an admin may have narrowed it.
    True when it was created."""
    if await get_project(kube, DEFAULT_PROJECT, namespace) is not None:
        return False
    try:
        await kube.create(default_project(namespace).to_manifest())
    except ConflictError:
        return False  # created meanwhile by someone else: theirs stands
    log.info("event=default_project_created namespace=%s", namespace)
    return True


async def _require(kube: KubeClient, name: str, namespace: str) -> AppProject:
    project = await get_project(kube, name, namespace)
    if project is None:
        raise UserInputError(
            f"project {name} not found in {namespace}", concerns=f"AppProject {name}"
        )
    return project
