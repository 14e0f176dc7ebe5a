"""The cluster registry against two real control planes side by side: the
session's (home: where the cluster Secrets live) and a second one registered
from its kubeconfig."""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING

import pytest

from gitmoor.kube import ClusterConfig, KubeClient, load_kubeconfig
from gitmoor.model import ObjectRef, UserInputError
from gitmoor.settings.clusters import (
    CLUSTER_SECRET_TYPE,
    SECRET_TYPE_LABEL,
    ClusterEntry,
    ClusterRegistry,
    add_cluster,
    cluster_secret,
    list_clusters,
    load_cluster_config,
    remove_cluster,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.testenv import ControlPlane


def ns_ref(name: str) -> ObjectRef:
    return ObjectRef("", "v1", "Namespace", "", name)


def secret_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "Secret", namespace, name)


async def whoami(kube: KubeClient) -> str:
    """The user the API server authenticates ``kube`` as (SelfSubjectReview, GA in 1.28)."""
    review = await kube.create(
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            # create-only: the server ignores the name, our client's ObjectRef wants one
            "metadata": {"name": "whoami"},
        }
    )
    return str(review["status"]["userInfo"]["username"])


@pytest.fixture
def second_config(second_plane: ControlPlane) -> ClusterConfig:
    return load_kubeconfig(second_plane.kubeconfig)


@pytest.fixture
async def registry(kube: KubeClient, namespace: str) -> AsyncIterator[ClusterRegistry]:
    reg = ClusterRegistry(kube, namespace=namespace, recheck_after=0, retire_after=0)
    yield reg
    await reg.aclose()


async def test_a_registered_cluster_is_reached_by_name(
    kube: KubeClient,
    namespace: str,
    second_plane: ControlPlane,
    second_config: ClusterConfig,
    second_admin: KubeClient,
    registry: ClusterRegistry,
) -> None:
    secret = await add_cluster(kube, "second", second_config, namespace=namespace)

    stored = await kube.get(secret_ref(namespace, secret))
    assert stored is not None
    assert stored["metadata"]["labels"][SECRET_TYPE_LABEL] == CLUSTER_SECRET_TYPE
    assert set(stored["data"]) == {"name", "server", "config"}
    assert await list_clusters(kube, namespace) == [
        ClusterEntry("second", second_plane.server, secret)
    ]

    there = await registry.client_for("second")
    assert there is not kube
    assert there.config.server == second_plane.server != kube.config.server
    name = f"t-only-in-second-{secrets.token_hex(3)}"
    await there.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        assert await second_admin.get(ns_ref(name)) is not None
        assert await kube.get(ns_ref(name)) is None
    finally:
        await second_admin.delete(ns_ref(name))


async def test_in_cluster_and_empty_name_are_home(registry: ClusterRegistry) -> None:
    assert await registry.client_for("") is registry.home
    assert await registry.client_for("in-cluster") is registry.home


async def test_one_client_per_cluster_reused_and_closed_with_the_registry(
    kube: KubeClient, namespace: str, second_config: ClusterConfig
) -> None:
    await add_cluster(kube, "second", second_config, namespace=namespace)
    registry = ClusterRegistry(kube, namespace=namespace, recheck_after=0)
    first = await registry.client_for("second")
    # concurrent first uses must not open one connection each
    again = await asyncio.gather(*(registry.client_for("second") for _ in range(8)))
    assert all(c is first for c in again)
    assert registry.clients() == {"in-cluster": kube, "second": first}
    await registry.aclose()
    assert first._http.is_closed
    assert not kube._http.is_closed  # the home client belongs to the caller
    with pytest.raises(RuntimeError):
        await registry.client_for("second")


async def test_an_unknown_cluster_is_a_user_error_naming_it(
    kube: KubeClient, namespace: str, registry: ClusterRegistry
) -> None:
    with pytest.raises(UserInputError) as e:
        await registry.client_for("nowhere")
    assert "cluster nowhere is not registered" in str(e.value)
    assert namespace in str(e.value)
    with pytest.raises(UserInputError, match="cluster nowhere is not registered"):
        await load_cluster_config(kube, "nowhere", namespace)
    assert await remove_cluster(kube, "nowhere", namespace) is False


async def test_remove_unregisters_even_a_cached_cluster(
    kube: KubeClient, namespace: str, second_config: ClusterConfig, registry: ClusterRegistry
) -> None:
    secret = await add_cluster(kube, "second", second_config, namespace=namespace)
    await add_cluster(kube, "third", second_config, namespace=namespace)
    cached = await registry.client_for("second")

    assert await remove_cluster(kube, "second", namespace) is True
    assert await kube.get(secret_ref(namespace, secret)) is None
    assert [c.name for c in await list_clusters(kube, namespace)] == ["third"]
    with pytest.raises(UserInputError, match="cluster second is not registered"):
        await registry.client_for("second")
    assert "second" not in registry.clients()
    await asyncio.sleep(0.1)  # retire_after=0: closed once the retiring task runs
    assert cached._http.is_closed
    assert await remove_cluster(kube, "second", namespace) is False


async def test_rotated_credentials_are_picked_up_without_a_restart(
    kube: KubeClient,
    namespace: str,
    second_plane: ControlPlane,
    second_config: ClusterConfig,
    registry: ClusterRegistry,
) -> None:
    await add_cluster(kube, "second", second_config, namespace=namespace)
    before = await registry.client_for("second")
    assert await whoami(before) == "kubernetes-admin"
    assert await registry.client_for("second") is before  # unchanged Secret: same client

    rotated = load_kubeconfig(
        second_plane.mint_kubeconfig(f"gitmoor-rotated-{secrets.token_hex(3)}", ["system:masters"])
    )
    assert rotated.server == second_config.server
    await add_cluster(kube, "second", rotated, namespace=namespace)

    after = await registry.client_for("second")
    assert after is not before
    assert (await whoami(after)).startswith("gitmoor-rotated-")
    assert (await load_cluster_config(kube, "second", namespace)).client_key_pem == (
        rotated.client_key_pem
    )
    await asyncio.sleep(0.1)
    assert before._http.is_closed


async def test_a_label_change_keeps_the_connection(
    kube: KubeClient, namespace: str, second_config: ClusterConfig, registry: ClusterRegistry
) -> None:
    secret = await add_cluster(kube, "second", second_config, namespace=namespace)
    before = await registry.client_for("second")
    await kube.merge_patch(
        secret_ref(namespace, secret), {"metadata": {"labels": {"team": "platform"}}}
    )
    assert await registry.client_for("second") is before


async def test_a_hand_written_argo_cd_style_secret_is_found_and_rotated_in_place(
    kube: KubeClient,
    namespace: str,
    second_plane: ControlPlane,
    second_config: ClusterConfig,
    registry: ClusterRegistry,
) -> None:
    # Argo CD's declarative setup: any Secret name, found by its `name` field.
    await kube.apply(
        cluster_secret("second", second_config, namespace=namespace, secret="my-prod-cluster")
    )
    assert (await load_cluster_config(kube, "second", namespace)).server == second_plane.server
    assert await whoami(await registry.client_for("second")) == "kubernetes-admin"

    rotated = load_kubeconfig(
        second_plane.mint_kubeconfig("gitmoor-handwritten", ["system:masters"])
    )
    assert await add_cluster(kube, "second", rotated, namespace=namespace) == "my-prod-cluster"
    assert [c.secret for c in await list_clusters(kube, namespace)] == ["my-prod-cluster"]
    assert await whoami(await registry.client_for("second")) == "gitmoor-handwritten"


async def test_two_secrets_for_one_name_is_an_error_naming_both(
    kube: KubeClient, namespace: str, second_config: ClusterConfig, registry: ClusterRegistry
) -> None:
    await add_cluster(kube, "second", second_config, namespace=namespace)
    await kube.apply(cluster_secret("second", second_config, namespace=namespace, secret="dup"))
    with pytest.raises(UserInputError) as e:
        await registry.client_for("second")
    assert "more than one Secret" in str(e.value) and "dup" in str(e.value)


async def test_a_broken_secret_is_reported_naming_it(
    kube: KubeClient, namespace: str, second_config: ClusterConfig, registry: ClusterRegistry
) -> None:
    manifest = cluster_secret("second", second_config, namespace=namespace, secret="broken")
    manifest["stringData"]["config"] = '{"execProviderConfig": {"command": "aws"}}'
    await kube.apply(manifest)
    with pytest.raises(UserInputError) as e:
        await registry.client_for("second")
    assert f"Secret {namespace}/broken" in str(e.value)
    assert "execProviderConfig" in str(e.value)
    # listing still works: it never needs the config
    assert [c.name for c in await list_clusters(kube, namespace)] == ["second"]
