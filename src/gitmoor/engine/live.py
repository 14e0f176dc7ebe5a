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
    from gitmoor.model import JSONDict, ObjectRef

LIST_THRESHOLD = 8


async def read_live(kube: KubeClient, refs: Iterable[ObjectRef]) -> dict[ObjectRef, JSONDict]:
    """The live object of each ref that exists; refs of unknown kinds are absent."""
    groups: dict[tuple[str, str, str, str], list[ObjectRef]] = defaultdict(list)
    for ref in refs:
        groups[(ref.group, ref.version, ref.kind, ref.namespace)].append(ref)
    found: dict[ObjectRef, JSONDict] = {}

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
