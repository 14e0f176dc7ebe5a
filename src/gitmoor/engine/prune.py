"""Delete one object an app owns: the one deletion path of prune and ``app delete``.

Whatever judged the object deletable judged it earlier (at the start of a sync,
from a watch cache): it is read again here, never from a cache, checked for the
app's tracking id, and deleted with preconditions on that uid and
resourceVersion, so an object another app adopted, or that anyone changed, since
it was judged is never deleted (the API server answers 409 instead). Foreground
propagation, as Argo CD prunes: dependents go first, and the object stays
visible (with a deletionTimestamp) until they are gone.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Literal

from gitmoor.engine.prepare import owned_by
from gitmoor.kube import ConflictError
from gitmoor.model.application import GROUP as APP_GROUP
from gitmoor.model.application import KIND as APP_KIND

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.kube import KubeClient
    from gitmoor.model import JSONDict, ObjectRef
    from gitmoor.model.application import Application


class Deletion(enum.Enum):
    DELETED = "deleted"
    #: already gone
    GONE = "gone"
    #: it does not carry the app's tracking id (any more)
    NOT_OWNED = "not-owned"
    #: the caller's rule keeps it (``Delete=false``)
    KEPT = "kept"
    #: changed between the read and the delete (409): the next sync decides
    CHANGED = "changed"


async def delete_owned(
    kube: KubeClient,
    app: Application,
    ref: ObjectRef,
    *,
    keep: Callable[[JSONDict], bool] | None = None,
) -> Deletion:
    """Delete ``ref`` if, read now, it is the app's (and ``keep`` does not keep it).
    An API error other than the 409 of a changed object is raised."""
    fresh = await kube.get(ref)
    if fresh is None:
        return Deletion.GONE
    if not owned_by(app, fresh):
        return Deletion.NOT_OWNED
    if keep is not None and keep(fresh):
        return Deletion.KEPT
    meta = fresh.get("metadata") or {}
    try:
        gone = await kube.delete(
            ref,
            propagation=_propagation(ref),
            uid=meta.get("uid"),
            resource_version=meta.get("resourceVersion"),
        )
    except ConflictError:
        return Deletion.CHANGED
    return Deletion.DELETED if gone else Deletion.GONE


def _propagation(ref: ObjectRef) -> Literal["Foreground", "Background"]:
    """Foreground, except for a gitmoor Application (an app of apps pruning a
    child): its cascade is its finalizer's job (``engine.children``), which reads
    the child's inventory, kept in ConfigMaps the child owns. Foreground would
    have the garbage collector delete those first; Background leaves them until
    the finalizer is done and the child is gone."""
    if ref.group == APP_GROUP and ref.kind == APP_KIND:
        return "Background"
    return "Foreground"


__all__ = ["Deletion", "delete_owned"]
