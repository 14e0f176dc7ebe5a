"""The application page draws the API's flat tree (depth first, owners by uid)
as nested boxes: each object once, under its first owner, nothing lost."""

from __future__ import annotations

from gitmoor.server.api.app_resources import ContainerView, NodeHealth, PodView, TreeNode
from gitmoor.server.ui.app_page import Node, nest


def tn(
    kind: str, name: str, uid: str, parents: tuple[str, ...] = (), pod: PodView | None = None
) -> TreeNode:
    group = {"Deployment": "apps", "ReplicaSet": "apps"}.get(kind, "")
    return TreeNode(
        group=group,
        version="v1",
        kind=kind,
        namespace="prod",
        name=name,
        uid=uid,
        parentUids=list(parents),
        health=NodeHealth(status="Healthy"),
        status="" if parents else "Synced",
        pod=pod,
    )


def shape(node: Node) -> list[object]:
    return [f"{node.kind}/{node.name}", [shape(c) for c in node.children]]


def test_children_hang_under_their_owner_and_a_shared_child_is_drawn_once() -> None:
    pod = PodView(
        phase="Running",
        containers=[
            ContainerView(name="main", image="nginx", ready=True, restarts=0, state="running")
        ],
        initContainers=[],
    )
    nodes = [
        tn("Deployment", "web", "d"),
        tn("ReplicaSet", "web-1", "r", ("d",)),
        tn("Pod", "web-1-a", "p", ("r", "s"), pod=pod),
        tn("Service", "web", "s"),
        tn("EndpointSlice", "web-x", "e", ("s",)),
        tn("Pod", "stray", "q", ("gone",)),  # its owner is not in the tree
        tn("ConfigMap", "absent", ""),  # an app object missing from the cluster: no uid
    ]
    root = nest(Node("gitmoor.io", "Application", "apps", "web"), nodes)
    assert shape(root) == [
        "Application/web",
        [
            ["Deployment/web", [["ReplicaSet/web-1", [["Pod/web-1-a", []]]]]],
            ["Service/web", [["EndpointSlice/web-x", []]]],
            ["Pod/stray", []],
            ["ConfigMap/absent", []],
        ],
    ]
    assert root.count == 7
    deployment = root.children[0]
    assert deployment.sync == "Synced" and deployment.health == "Healthy"
    assert deployment.children[0].children[0].note == "Running · 1/1 ready"


def test_node_ids_are_stable_and_distinct() -> None:
    a = Node("apps", "Deployment", "prod", "web")
    assert a.id == Node("apps", "Deployment", "prod", "web").id
    assert a.id != Node("apps", "ReplicaSet", "prod", "web").id
    assert a.id != Node("apps", "Deployment", "dev", "web").id
    assert a.id.isidentifier()  # usable in id="" and aria-controls
