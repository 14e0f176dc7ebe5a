"""Read the live state of a set of objects with as few requests as possible.

Refs are grouped by resource and namespace; a group of a few objects is read
with one GET each (in parallel), a larger group with one LIST of that
namespace, so that comparing an app of 1,000 ConfigMaps costs one request.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING

from gitmoor.kube import UnknownKindError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gitmoor.kube import KubeClient
    from gitmoor.kube.cache import ClusterCache
    from gitmoor.model import JSONDict, ObjectRef

LIST_THRESHOLD = 8


async def read_live(
    kube: KubeClient, refs: Iterable[ObjectRef], cache: ClusterCache | None = None
) -> dict[ObjectRef, JSONDict]:
    """The live object of each ref that exists; refs of unknown kinds are absent.

    With a ``cache`` (the controller's watch cache), objects it holds cost no
    request; only refs it does not know (missing, or not labelled yet) are read.
    """
    groups: dict[tuple[str, str, str, str], list[ObjectRef]] = defaultdict(list)
    found: dict[ObjectRef, JSONDict] = {}
    refs = list(refs)
    if cache is not None:
        kinds = {(r.group, r.kind): r for r in refs}.values()
        await asyncio.gather(*(cache.ensure(r) for r in kinds))
    for ref in refs:
        if cache is not None:
            known, obj = cache.get(ref)
            # The cache watches a kind at one version; an object read at another
            # version has other fields (autoscaling/v1 vs v2), so GET it at ours.
            if known and obj is not None and obj.get("apiVersion") == ref.api_version:
                found[ref] = obj
                continue
        groups[(ref.group, ref.version, ref.kind, ref.namespace)].append(ref)

    async def read_group(members: list[ObjectRef]) -> None:
        first = members[0]
        try:
            ar = await kube.resource_for(first)
        except UnknownKindError:
            return  # a CRD not yet applied: none of its objects can exist
        if len(members) >= LIST_THRESHOLD:
            listed = await kube.list(ar, first.namespace)
            by_name = {o["metadata"]["name"]: o for o in listed.items}
            for ref in members:
                if ref.name in by_name:
                    found[ref] = by_name[ref.name]
            return
        objs = await asyncio.gather(*(kube.get(ref) for ref in members))
        for ref, obj in zip(members, objs, strict=True):
            if obj is not None:
                found[ref] = obj

    await asyncio.gather(*(read_group(m) for m in groups.values()))
    return found
