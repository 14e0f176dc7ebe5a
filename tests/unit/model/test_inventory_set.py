"""ObjectRef.key and Inventory: one identity per object, and the set operations
that prune and compare are built on (cli-utils' ObjMetadataSet)."""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.model import Inventory, ObjectRef


def cm(name: str, namespace: str = "ns") -> ObjectRef:
    return ObjectRef("", "v1", "ConfigMap", namespace, name)


def deploy(name: str, version: str = "v1") -> ObjectRef:
    return ObjectRef("apps", version, "Deployment", "ns", name)


def test_key_is_the_identity_without_the_version() -> None:
    assert deploy("web").key == ("apps", "Deployment", "ns", "web")
    assert deploy("web", "v1").key == deploy("web", "v1beta2").key
    assert deploy("web").key != cm("web").key


def test_an_object_read_at_another_version_is_the_same_member() -> None:
    inv = Inventory([deploy("web", "v1beta2"), cm("a")])
    assert deploy("web", "v1") in inv
    assert ("apps", "Deployment", "ns", "web") in inv
    assert deploy("api") not in inv
    assert cm("a", namespace="other") not in inv
    assert "not a ref" not in inv
    assert len(Inventory([deploy("web", "v1"), deploy("web", "v1beta2")])) == 1


def test_diff_of_what_was_applied_and_what_is_declared_is_the_prune_set() -> None:
    applied = Inventory([cm("a"), cm("b"), deploy("web", "v1beta2")])
    declared = [cm("a"), deploy("web", "v1")]
    prune = applied.diff(declared)
    assert list(prune) == [cm("b")]
    assert applied - Inventory(declared) == prune
    # Nothing declared: everything goes; nothing applied: nothing goes.
    assert applied.diff([]) == applied
    assert Inventory().diff(declared) == Inventory()
    assert not Inventory().diff(declared)


def test_union_keeps_one_per_identity_and_the_newer_record() -> None:
    old = Inventory([cm("a"), deploy("web", "v1beta2")])
    new = Inventory([deploy("web", "v1"), cm("c")])
    both = old.union(new)
    assert len(both) == 3
    assert both.get(deploy("web").key) == deploy("web", "v1")
    assert old | new == both
    assert (old & [deploy("web", "v1"), cm("z")]) == Inventory([deploy("web")])
    assert list(old.intersection(new)) == [deploy("web", "v1beta2")]


def test_inventory_is_immutable_and_hashable() -> None:
    inv = Inventory([cm("a")])
    with pytest.raises(AttributeError):
        inv._by_key = {}  # type: ignore[misc]
    assert {inv: 1}[Inventory([cm("a")])] == 1
    assert inv.keys() == frozenset({cm("a").key})


def test_entries_round_trip_in_key_order() -> None:
    inv = Inventory([deploy("web"), cm("b"), cm("a", namespace="")])
    entries = inv.to_entries()
    assert [e["name"] for e in entries] == ["a", "b", "web"]
    assert entries[0] == {
        "group": "",
        "version": "v1",
        "kind": "ConfigMap",
        "namespace": "",
        "name": "a",
    }
    assert Inventory.from_entries(entries) == inv


def test_from_entries_reads_status_resources_and_skips_malformed_ones() -> None:
    entries: list[Any] = [
        # a status resource as the engine writes it: ref fields plus status fields
        {
            "group": "apps",
            "version": "v1",
            "kind": "Deployment",
            "namespace": "ns",
            "name": "web",
            "status": "Synced",
            "health": {"status": "Healthy"},
        },
        # a cluster-scoped core object: group and namespace absent
        {"version": "v1", "kind": "Namespace", "name": "team"},
        {"group": None, "version": "v1", "kind": "ConfigMap", "namespace": None, "name": "n"},
        "not a dict",
        None,
        {"version": "v1", "kind": "ConfigMap"},  # no name
        {"kind": "ConfigMap", "name": "x"},  # no version
        {"version": "v1", "kind": "", "name": "x"},  # empty kind
        {"version": "v1", "kind": "ConfigMap", "name": 7},  # a name that is not a string
        {"group": ["apps"], "version": "v1", "kind": "ConfigMap", "name": "y"},
    ]
    inv = Inventory.from_entries(entries)
    assert list(inv) == [
        deploy("web"),
        ObjectRef("", "v1", "Namespace", "", "team"),
        ObjectRef("", "v1", "ConfigMap", "", "n"),
    ]
