"""The inventory: per-object detail in compressed ConfigMaps that the Application
owns (as Helm keeps its release records), so that an app of 10,000 objects keeps
a small Application."""

from __future__ import annotations

import base64
import gzip
import json
import secrets
import time
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine.inventory import (
    CHUNK_LIMIT,
    DOC_LABEL,
    INVENTORY_TYPE,
    OF_LABEL,
    InventoryPointer,
    chunk_name,
    delete_inventory,
    owner_label,
    read_inventory,
    write_inventory,
)
from gitmoor.kube import wait_for
from gitmoor.model import JSONDict, ObjectRef, PermanentError, RetryableError
from gitmoor.model.application import API_VERSION
from support.apps import gone

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application
    from support.apps import AppEnv


def entry(i: int, status: str = "Synced") -> JSONDict:
    """A status resource entry as the engine writes one per object."""
    return {
        "group": "",
        "version": "v1",
        "kind": "ConfigMap",
        "namespace": "team-payments",
        "name": f"settings-{i:05d}",
        "status": status,
        "health": {"status": "Healthy"},
        "message": f"configmap/settings-{i:05d} serverside-applied",
    }


def entries(n: int, status: str = "Synced") -> list[JSONDict]:
    return [entry(i, status) for i in range(n)]


async def chunks(kube: KubeClient, app: Application) -> dict[str, JSONDict]:
    """The app's inventory ConfigMaps by name, as the API server holds them."""
    ar = await kube.resource("", "v1", "ConfigMap")
    found = await kube.list(ar, app.namespace, label_selector=f"{OF_LABEL}={owner_label(app.name)}")
    return {cm["metadata"]["name"]: cm for cm in found.items}


def requests_made(kube: KubeClient) -> int:
    return sum(kube.requests.values())


async def test_ten_thousand_entries_round_trip_in_one_small_chunk(env: AppEnv) -> None:
    app = await env.create("big")
    written = entries(10_000)

    t0 = time.perf_counter()
    pointer = await write_inventory(env.kube, app, "resources", written, previous=None)
    t1 = time.perf_counter()
    read = await read_inventory(env.kube, app.name, app.namespace, pointer)
    t2 = time.perf_counter()

    assert read == written
    assert (pointer.doc, pointer.generation, pointer.count) == ("resources", 1, 10_000)
    held = await chunks(env.kube, app)
    assert set(held) == {chunk_name(app.name, "resources", 1, i) for i in range(pointer.chunks)}
    cm = held[chunk_name(app.name, "resources", 1, 0)]
    meta = cm["metadata"]
    assert meta["labels"][DOC_LABEL] == "resources"
    assert meta["annotations"]["gitmoor.io/type"] == INVENTORY_TYPE
    assert cm["immutable"] is True
    assert [(o["apiVersion"], o["kind"], o["name"], o["uid"]) for o in meta["ownerReferences"]] == [
        (API_VERSION, "Application", app.name, app.uid)
    ]
    size = sum(len(base64.b64decode(c["binaryData"]["data"])) for c in held.values())
    raw = len(json.dumps(written, separators=(",", ":")))
    print(
        f"\ninventory of 10,000 entries: write {t1 - t0:.3f} s, read {t2 - t1:.3f} s,"
        f" {raw} bytes of JSON -> {size} bytes gzip'd in {pointer.chunks} chunk(s)"
    )
    assert pointer.chunks == 1 and size < CHUNK_LIMIT


async def test_the_same_entries_again_make_no_request(env: AppEnv) -> None:
    app = await env.create("idle")
    pointer = await write_inventory(env.kube, app, "resources", entries(500), previous=None)
    before = {n: c["metadata"]["resourceVersion"] for n, c in (await chunks(env.kube, app)).items()}

    made = requests_made(env.kube)
    again = await write_inventory(env.kube, app, "resources", entries(500), previous=pointer)

    assert requests_made(env.kube) == made  # an idle controller stays at 0 requests
    assert again == pointer
    after = {n: c["metadata"]["resourceVersion"] for n, c in (await chunks(env.kube, app)).items()}
    assert after == before


async def test_a_new_generation_replaces_the_one_before_the_previous(env: AppEnv) -> None:
    app = await env.create("gens")
    gen1 = await write_inventory(env.kube, app, "resources", entries(3), previous=None)
    gen2 = await write_inventory(env.kube, app, "resources", entries(3, "OutOfSync"), previous=gen1)

    # Until its pointer is stored, the status still names generation 1: it stays readable.
    assert gen2.generation == 2 and gen2.digest != gen1.digest
    assert await read_inventory(env.kube, app.name, app.namespace, gen1) == entries(3)
    assert await read_inventory(env.kube, app.name, app.namespace, gen2) == entries(3, "OutOfSync")

    gen3 = await write_inventory(env.kube, app, "resources", entries(4), previous=gen2)

    assert set(await chunks(env.kube, app)) == {
        chunk_name(app.name, "resources", 2, 0),
        chunk_name(app.name, "resources", 3, 0),
    }
    with pytest.raises(RetryableError, match="chunk 0 of generation 1 is missing"):
        await read_inventory(env.kube, app.name, app.namespace, gen1)
    assert await read_inventory(env.kube, app.name, app.namespace, gen3) == entries(4)


async def test_a_generation_whose_pointer_was_never_stored_is_cleaned_up(env: AppEnv) -> None:
    """A process that died between writing the chunks and writing the status
    leaves an orphan generation; the next write removes it and never reuses its
    number (the chunks are immutable)."""
    app = await env.create("crashed")
    stored = await write_inventory(env.kube, app, "resources", entries(2), previous=None)
    orphan = await write_inventory(env.kube, app, "resources", entries(5), previous=stored)

    # The status still holds ``stored``: the next writer passes that.
    new = await write_inventory(env.kube, app, "resources", entries(7), previous=stored)

    assert new.generation == orphan.generation + 1
    assert set(await chunks(env.kube, app)) == {
        chunk_name(app.name, "resources", stored.generation, 0),
        chunk_name(app.name, "resources", new.generation, 0),
    }
    assert await read_inventory(env.kube, app.name, app.namespace, new) == entries(7)


async def test_entries_that_do_not_fit_one_configmap_are_split(env: AppEnv) -> None:
    app = await env.create("split")
    # Random messages barely compress: about 1.9 MB of hex, about 1 MB gzip'd.
    written = [entry(i) | {"message": secrets.token_hex(320)} for i in range(3_000)]

    pointer = await write_inventory(env.kube, app, "operation", written, previous=None)

    assert pointer.chunks >= 2
    held = await chunks(env.kube, app)
    assert len(held) == pointer.chunks
    assert all(len(base64.b64decode(c["binaryData"]["data"])) <= CHUNK_LIMIT for c in held.values())
    assert await read_inventory(env.kube, app.name, app.namespace, pointer) == written


async def test_documents_are_kept_apart(env: AppEnv) -> None:
    app = await env.create("docs")
    res = await write_inventory(env.kube, app, "resources", entries(3), previous=None)
    op = await write_inventory(env.kube, app, "operation", entries(2, "Failed"), previous=None)
    op2 = await write_inventory(env.kube, app, "operation", entries(1), previous=op)
    await write_inventory(env.kube, app, "operation", entries(2), previous=op2)

    assert await read_inventory(env.kube, app.name, app.namespace, res) == entries(3)


async def test_the_pointer_fits_the_application_status(env: AppEnv) -> None:
    app = await env.create("pointer")
    pointer = await write_inventory(env.kube, app, "resources", entries(10_000), previous=None)

    await env.kube.merge_patch(
        env.app_ref(app.name),
        {"status": {"inventory": {"resources": pointer.to_dict()}}},
        subresource="status",
    )

    fresh = await env.app(app.name)
    stored = InventoryPointer.from_dict("resources", fresh.status["inventory"]["resources"])
    assert stored == pointer
    assert len(json.dumps(fresh.raw)) < 64 * 1024
    assert len(await read_inventory(env.kube, fresh.name, fresh.namespace, stored)) == 10_000


async def test_deleting_the_application_deletes_its_inventory(env: AppEnv) -> None:
    """The owner reference hands the chunks to kube-controller-manager's garbage
    collector, which the local control plane runs."""
    app = await env.create("gone")
    await write_inventory(env.kube, app, "resources", entries(10), previous=None)
    await write_inventory(env.kube, app, "operation", entries(10), previous=None)
    assert len(await chunks(env.kube, app)) == 2

    await env.kube.delete(env.app_ref(app.name))

    async def collected() -> bool:
        return not await chunks(env.kube, app)

    await wait_for(collected, within=60, what="the garbage collector to delete the inventory")


async def test_delete_inventory_removes_every_document_of_that_app_only(env: AppEnv) -> None:
    app = await env.create("mine")
    other = await env.create("mine-too")
    pointer = await write_inventory(env.kube, app, "resources", entries(10), previous=None)
    await write_inventory(env.kube, app, "operation", entries(3), previous=None)
    theirs = await write_inventory(env.kube, other, "resources", entries(4), previous=None)

    assert await delete_inventory(env.kube, app.name, app.namespace) == 2

    assert await chunks(env.kube, app) == {}
    with pytest.raises(RetryableError, match="missing"):
        await read_inventory(env.kube, app.name, app.namespace, pointer)
    assert await read_inventory(env.kube, other.name, other.namespace, theirs) == entries(4)
    assert await delete_inventory(env.kube, app.name, app.namespace) == 0


async def test_long_app_names_are_hashed_into_names_and_labels(env: AppEnv) -> None:
    """Two apps whose 250-character names share all but the end keep their
    chunks apart, though the names and labels are cut to fit."""
    stem = "platform.team-" + "x" * 230
    first = await env.create(stem + "-first")
    second = await env.create(stem + "-other")
    p1 = await write_inventory(env.kube, first, "resources", entries(3), previous=None)
    p2 = await write_inventory(env.kube, second, "resources", entries(5), previous=None)

    names = set(await chunks(env.kube, first)) | set(await chunks(env.kube, second))
    assert len(names) == 2 and all(len(n) <= 253 for n in names)
    assert await read_inventory(env.kube, first.name, first.namespace, p1) == entries(3)
    assert await read_inventory(env.kube, second.name, second.namespace, p2) == entries(5)

    assert await delete_inventory(env.kube, first.name, first.namespace) == 1
    assert await read_inventory(env.kube, second.name, second.namespace, p2) == entries(5)


async def test_a_chunk_changed_by_hand_is_refused_with_a_reason(env: AppEnv) -> None:
    app = await env.create("tampered")
    pointer = await write_inventory(env.kube, app, "resources", entries(3), previous=None)
    name = chunk_name(app.name, "resources", pointer.generation, 0)
    ref = ObjectRef("", "v1", "ConfigMap", app.namespace, name)
    # Immutable: the data cannot be edited, only the annotations; a chunk whose
    # digest is not the pointer's is treated as another write's.
    await env.kube.merge_patch(
        ref, {"metadata": {"annotations": {"gitmoor.io/inventory-digest": "sha256:0"}}}
    )

    with pytest.raises(RetryableError, match="from another write"):
        await read_inventory(env.kube, app.name, app.namespace, pointer)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not gzip at all", "not gzip'd JSON"),
        # a gzip bomb: 80 MiB of zeros in about 80 KB
        (gzip.compress(b"0" * (80 * 1024 * 1024), compresslevel=9), "inflates past"),
    ],
    ids=["garbage", "gzip-bomb"],
)
async def test_a_chunk_replaced_by_hand_with_bad_data_is_refused(
    env: AppEnv, data: bytes, reason: str
) -> None:
    app = await env.create("forged")
    pointer = await write_inventory(env.kube, app, "resources", entries(3), previous=None)
    ref = ObjectRef(
        "",
        "v1",
        "ConfigMap",
        app.namespace,
        chunk_name(app.name, "resources", pointer.generation, 0),
    )
    original = await env.kube.get(ref)
    assert original is not None
    await env.kube.delete(ref)
    await wait_for(lambda: gone(env.kube, ref), within=30, what="the chunk deleted")
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": ref.name,
                "namespace": ref.namespace,
                "labels": original["metadata"]["labels"],
                "annotations": original["metadata"]["annotations"],
            },
            "binaryData": {"data": base64.b64encode(data).decode()},
        }
    )

    with pytest.raises(PermanentError, match=reason):
        await read_inventory(env.kube, app.name, app.namespace, pointer)
    # A write that does not trust the pointer puts the inventory back.
    again = await write_inventory(env.kube, app, "resources", entries(3), previous=None)
    assert await read_inventory(env.kube, app.name, app.namespace, again) == entries(3)
    assert set(await chunks(env.kube, app)) == {
        chunk_name(app.name, "resources", again.generation, 0)
    }
