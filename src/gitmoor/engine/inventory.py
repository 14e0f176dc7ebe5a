"""Per-object detail kept outside the Application, in chunked, compressed ConfigMaps.

Why: an Application that lists every object it manages grows about 300 bytes an
object, so an app of about 5,000 objects crosses etcd's request limit (1.5 MiB)
and its status can no longer be written; Argo CD has the same limit. Helm met
the same problem with its release records and keeps each one gzip'd in an
object of its own (the ``helm.sh/release.v1`` Secrets, or ConfigMaps with the
configmap driver). gitmoor does the same for its documents: ``resources`` (every
object and its status) and ``operation`` (the last sync's per-object results).

The objects:

- ConfigMaps, not Secrets: nothing secret goes in (refs, sync and health
  statuses, messages that the masking of diffs has already been through), and
  Secrets would only make them harder to read for the users who may read the
  app's namespace.
- In the Application's namespace, named ``<app>-inv-<doc>-<generation>-<i>``
  (an app name too long for that is cut and followed by a hash of it), with
  labels ``gitmoor.io/inventory-of: <app>`` (hashed past 63 characters, the
  full name then in the annotation of the same key), ``gitmoor.io/inventory-doc``
  and ``gitmoor.io/inventory-generation``; the annotation ``gitmoor.io/type:
  gitmoor.io/inventory`` plays the part of Helm's Secret ``type``.
- ``binaryData.data`` is the gzip'd JSON array of one chunk of entries; a chunk
  is at most ``CHUNK_LIMIT`` bytes compressed (a ConfigMap holds at most 1 MiB),
  so 10,000 status entries (1.9 MB of JSON) take one chunk of about 60 KB.
- ``immutable: true``: a generation, once written, never changes, so a reader
  holding a pointer reads exactly what was written or finds it gone.
- An owner reference to the Application: the garbage collector of
  kube-controller-manager deletes them with it (the local control plane runs
  it). ``delete_inventory`` deletes them by label too, for a cluster where
  garbage collection lags or an Application deleted with ``--cascade=orphan``.

Consistency: ``write_inventory`` writes a new generation and returns an
``InventoryPointer`` (doc, generation, chunks, count, digest: model/status.py's
``InventoryRef``, one type for the writer and the status) that the caller
stores in ``status.inventory.<doc>``. A reader reads only what a stored pointer
names, so it never sees a half-written generation. The generation the
``previous`` pointer names is kept until the next write, so a process that dies
between writing the chunks and writing the pointer leaves the stored pointer
readable; older generations and orphans of such a crash are deleted. When the
entries' digest equals ``previous.digest`` nothing is written at all: an idle
controller makes no request here. One writer per app is assumed (the
controller's shard owns the app).

Who can write ConfigMaps in the Application's namespace can change what these
say; prune still re-reads each live object's tracking id before it deletes it
(engine/compare.py), so a forged inventory cannot make gitmoor delete an object
it did not create.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import zlib
from typing import TYPE_CHECKING, Any

from gitmoor.kube import ApiError
from gitmoor.model import ObjectRef, PermanentError, RetryableError, UserInputError
from gitmoor.model.application import API_VERSION, KIND
from gitmoor.model.status import InventoryRef as InventoryPointer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gitmoor.kube import KubeClient
    from gitmoor.model import JSONDict
    from gitmoor.model.application import Application

log = logging.getLogger("gitmoor.engine.inventory")

#: What these ConfigMaps are, as Helm's release Secrets say ``helm.sh/release.v1``
INVENTORY_TYPE = "gitmoor.io/inventory"
TYPE_ANNOTATION = "gitmoor.io/type"
#: label (the app's name, hashed past 63 characters) and annotation (the full name)
OF_LABEL = "gitmoor.io/inventory-of"
DOC_LABEL = "gitmoor.io/inventory-doc"
GENERATION_LABEL = "gitmoor.io/inventory-generation"
DIGEST_ANNOTATION = "gitmoor.io/inventory-digest"
#: ``<index>/<chunks>``, for a person reading the objects
CHUNK_ANNOTATION = "gitmoor.io/inventory-chunk"
DATA_KEY = "data"

#: Compressed bytes per chunk. A ConfigMap holds at most 1 MiB (data and
#: binaryData together); 700 KiB leaves room for metadata, and for the base64 of
#: the request body (933 KiB) under the API server's limits.
CHUNK_LIMIT = 700 * 1024
#: Measured on 10,000 status entries (1.9 MB of JSON): level 1 compresses in
#: 3.4 ms to 59 KB, level 6 in 6.9 ms to 61 KB, level 9 in 13.8 ms to 60 KB.
GZIP_LEVEL = 1
#: A chunk inflates to at most this much: a ConfigMap edited into a gzip bomb
#: must not exhaust the controller's memory.
MAX_CHUNK_JSON = 64 * 1024 * 1024
#: Raised if the stored format ever changes, so a new digest forces a rewrite.
_FORMAT = b"gitmoor.io/inventory/v1\n"

_DOC_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$")
_NAME_MAX = 253
_LABEL_MAX = 63

_CONFIGMAP = ("", "v1", "ConfigMap")


def chunk_name(app_name: str, doc: str, generation: int, index: int) -> str:
    """``<app>-inv-<doc>-<generation>-<i>``, within 253 characters: a longer app
    name is cut and followed by a hash of the whole, so two long names that
    share a prefix do not share chunks."""
    suffix = f"-inv-{doc}-{generation}-{index}"
    if len(app_name) + len(suffix) <= _NAME_MAX:
        return app_name + suffix
    keep = _NAME_MAX - len(suffix) - 17
    return f"{app_name[:keep].rstrip('.-')}-{_hash(app_name, 16)}{suffix}"


def owner_label(app_name: str) -> str:
    """The app's name as a label value (at most 63 characters: hashed past that)."""
    if len(app_name) <= _LABEL_MAX:
        return app_name
    return f"{app_name[: _LABEL_MAX - 17].rstrip('.-')}-{_hash(app_name, 16)}"


def _hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _check_doc(doc: str) -> None:
    if not _DOC_RE.match(doc):
        raise ValueError(f"inventory document name {doc!r} is not a short DNS label")


def _encode(entries: Sequence[JSONDict]) -> tuple[str, list[bytes]]:
    """The digest of the entries and their chunks, gzip'd, each within CHUNK_LIMIT.

    The whole list is compressed at once first (the common case: 10,000 entries
    fit one chunk 12 times over); only a list too big for one is split, in
    halves, until every part fits.
    """
    raw = json.dumps(list(entries), separators=(",", ":"), sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(_FORMAT + raw).hexdigest()
    if not entries:
        return digest, []
    whole = _gzip(raw)
    if len(whole) <= CHUNK_LIMIT:
        return digest, [whole]
    return digest, _split(list(entries))


def _split(entries: list[JSONDict]) -> list[bytes]:
    data = _gzip(json.dumps(entries, separators=(",", ":"), sort_keys=True).encode())
    if len(data) <= CHUNK_LIMIT:
        return [data]
    if len(entries) == 1:
        raise UserInputError(
            f"one inventory entry takes {len(data)} bytes compressed, more than the"
            f" {CHUNK_LIMIT} a chunk may hold",
            concerns=str(entries[0].get("name", "")),
        )
    mid = len(entries) // 2
    return _split(entries[:mid]) + _split(entries[mid:])


def _gzip(raw: bytes) -> bytes:
    # mtime 0: the same entries give the same bytes, whenever they are written
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return c.compress(raw) + c.flush()


def _gunzip(data: bytes, where: str) -> Any:
    d = zlib.decompressobj(31)
    try:
        raw = d.decompress(data, MAX_CHUNK_JSON)
        if d.unconsumed_tail:
            raise PermanentError(
                f"inventory chunk inflates past {MAX_CHUNK_JSON} bytes; it was not"
                " written by gitmoor: delete it and sync the app again",
                concerns=where,
            )
        return json.loads(raw)
    except (zlib.error, ValueError) as e:
        raise PermanentError(
            f"inventory chunk is not gzip'd JSON ({e}); it was changed outside gitmoor:"
            " delete it and sync the app again",
            concerns=where,
        ) from e


def _ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "ConfigMap", namespace, name)


def _chunk(
    app: Application, doc: str, generation: int, index: int, count: int, digest: str, data: bytes
) -> JSONDict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": chunk_name(app.name, doc, generation, index),
            "namespace": app.namespace,
            "labels": {
                OF_LABEL: owner_label(app.name),
                DOC_LABEL: doc,
                GENERATION_LABEL: str(generation),
                "app.kubernetes.io/managed-by": "gitmoor",
            },
            "annotations": {
                TYPE_ANNOTATION: INVENTORY_TYPE,
                OF_LABEL: app.name,
                DIGEST_ANNOTATION: digest,
                CHUNK_ANNOTATION: f"{index}/{count}",
            },
            # No controller/blockOwnerDeletion: the Application does not manage
            # them as a controller would; the owner reference is there so that the
            # garbage collector deletes them with it.
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": KIND, "name": app.name, "uid": app.uid}
            ],
        },
        "immutable": True,
        "binaryData": {DATA_KEY: base64.b64encode(data).decode()},
    }


async def _list(kube: KubeClient, app_name: str, namespace: str, selector: str) -> list[JSONDict]:
    """The app's inventory ConfigMaps that match ``selector`` and name the app in
    full (a hashed label could, at 2^-64, be another app's)."""
    ar = await kube.resource(*_CONFIGMAP)
    selector = f"{OF_LABEL}={owner_label(app_name)}" + (f",{selector}" if selector else "")
    found = await kube.list(ar, namespace, label_selector=selector)
    return [
        cm
        for cm in found.items
        if ((cm.get("metadata") or {}).get("annotations") or {}).get(OF_LABEL) == app_name
    ]


async def _delete(kube: KubeClient, cms: Sequence[JSONDict]) -> int:
    """Delete these ConfigMaps, each only in the incarnation that was listed."""

    async def one(cm: JSONDict) -> bool:
        meta = cm.get("metadata") or {}
        ref = _ref(str(meta.get("namespace", "")), str(meta.get("name", "")))
        try:
            return await kube.delete(ref, uid=meta.get("uid") or None)
        except ApiError as e:
            if e.code == 409:  # a precondition: replaced since the list, not ours to delete
                return False
            raise

    return sum(await asyncio.gather(*(one(cm) for cm in cms)))


def _generation(cm: JSONDict) -> int:
    value = ((cm.get("metadata") or {}).get("labels") or {}).get(GENERATION_LABEL, "")
    return int(value) if isinstance(value, str) and value.isdigit() else 0


async def write_inventory(
    kube: KubeClient,
    app: Application,
    doc: str,
    entries: Sequence[JSONDict],
    *,
    previous: InventoryPointer | None,
) -> InventoryPointer:
    """Write ``entries`` as a new generation of ``doc`` and return its pointer.

    ``previous`` is the pointer the Application's status holds now. When the
    entries are the same (same digest), nothing is written and ``previous`` comes
    back. Otherwise: one LIST of the doc's other generations, one apply per
    chunk, and a delete of each generation but the new one and ``previous``'s.
    """
    _check_doc(doc)
    if previous is not None and previous.doc != doc:
        raise ValueError(f"previous pointer is for {previous.doc!r}, not {doc!r}")
    digest, chunks = _encode(entries)
    if previous is not None and previous.digest == digest and previous.count == len(entries):
        return previous
    if not app.uid:
        raise UserInputError(
            "the Application has no uid: read it from the API server before writing"
            " its inventory (the chunks' owner reference needs it)",
            concerns=f"Application {app.namespace}/{app.name}",
        )
    selector = f"{DOC_LABEL}={doc}"
    if previous is not None:
        selector += f",{GENERATION_LABEL} notin ({previous.generation})"
    stale = await _list(kube, app.name, app.namespace, selector)
    generation = 1 + max(
        [_generation(cm) for cm in stale] + [previous.generation if previous else 0]
    )
    n = len(chunks)
    await asyncio.gather(
        *(
            kube.apply(_chunk(app, doc, generation, i, n, digest, data), force=True)
            for i, data in enumerate(chunks)
        )
    )
    deleted = await _delete(kube, stale)
    log.info(
        "event=inventory_written app=%s/%s doc=%s generation=%d chunks=%d count=%d bytes=%d"
        " deleted=%d",
        app.namespace,
        app.name,
        doc,
        generation,
        n,
        len(entries),
        sum(len(c) for c in chunks),
        deleted,
    )
    return InventoryPointer(doc, generation, n, len(entries), digest)


async def read_inventory(
    kube: KubeClient, app_name: str, namespace: str, pointer: InventoryPointer
) -> list[JSONDict]:
    """The entries ``pointer`` names, in the order they were written.

    A chunk that is missing, or that belongs to another write, means the
    generation was replaced (or deleted with the app) after the pointer was
    read: a RetryableError says to read the Application again. A chunk that is
    not gzip'd JSON, or entries that do not add up to the pointer's count, mean
    someone changed them by hand: a PermanentError. In both cases, if the
    pointer read again is the same, a write with ``previous=None`` puts the
    chunks back (with ``previous`` and an unchanged digest nothing is written).
    """
    _check_doc(pointer.doc)
    where = f"inventory {pointer.doc} of Application {namespace}/{app_name}"

    async def chunk(i: int) -> list[JSONDict]:
        name = chunk_name(app_name, pointer.doc, pointer.generation, i)
        concerns = f"ConfigMap {namespace}/{name}"
        cm = await kube.get(_ref(namespace, name))
        ann = ((cm or {}).get("metadata") or {}).get("annotations") or {}
        if cm is None or ann.get(DIGEST_ANNOTATION) != pointer.digest:
            raise RetryableError(
                f"{where}: chunk {i} of generation {pointer.generation} is"
                f" {'missing' if cm is None else 'from another write'}; the generation was"
                " replaced since the Application was read: read it again and retry",
                concerns=concerns,
                retry_after=1.0,
            )
        b64 = (cm.get("binaryData") or {}).get(DATA_KEY)
        try:
            data = base64.b64decode(b64 or "", validate=True)
        except ValueError as e:
            raise PermanentError(f"{where}: chunk {i} is not base64", concerns=concerns) from e
        items = _gunzip(data, concerns)
        if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
            raise PermanentError(
                f"{where}: chunk {i} is not a list of entries; it was changed outside"
                " gitmoor: delete it and sync the app again",
                concerns=concerns,
            )
        return items

    parts = await asyncio.gather(*(chunk(i) for i in range(pointer.chunks)))
    entries = [e for part in parts for e in part]
    if len(entries) != pointer.count:
        raise PermanentError(
            f"{where}: generation {pointer.generation} holds {len(entries)} entries, its"
            f" pointer says {pointer.count}; it was changed outside gitmoor",
            concerns=f"Application {namespace}/{app_name}",
        )
    return entries


async def delete_inventory(kube: KubeClient, app_name: str, namespace: str) -> int:
    """Delete every inventory ConfigMap of the app (all documents and
    generations); the number deleted. The garbage collector does the same once
    the Application is gone; this is for when the engine deletes an app and
    should not leave its inventory to a collector that may lag or not run."""
    deleted = await _delete(kube, await _list(kube, app_name, namespace, ""))
    if deleted:
        log.info("event=inventory_deleted app=%s/%s deleted=%d", namespace, app_name, deleted)
    return deleted


__all__ = [
    "CHUNK_LIMIT",
    "INVENTORY_TYPE",
    "InventoryPointer",
    "chunk_name",
    "delete_inventory",
    "owner_label",
    "read_inventory",
    "write_inventory",
]
