"""The server follows its settings objects as they change, without a restart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.server.rbac import RBAC_CONFIGMAP
from gitmoor.settings import accounts

if TYPE_CHECKING:
    from conftest import Server


async def test_a_password_reset_behind_the_servers_back_ends_open_sessions(
    server: Server,
) -> None:
    admin = await server.login()
    assert (await admin.get("/api/v1/applications")).status_code == 200
    # What an operator who lost the password does: the kubeconfig's rights, no server.
    new = await accounts.reset_password(server.kube, server.namespace, "admin", None)

    async def ended() -> bool:
        return (await admin.get("/api/v1/applications")).status_code == 401

    await wait_for(ended, within=10, what="the old session ended by the reset")
    fresh = await server.login("admin", new)
    assert (await fresh.get("/api/v1/applications")).status_code == 200


async def test_a_policy_change_is_in_force_without_a_restart_and_a_broken_one_is_not(
    server: Server,
) -> None:
    await server.add_user("carol", "carol-password-1")
    carol = await server.login("carol", "carol-password-1")
    r = await carol.get("/api/v1/applications/anything")
    assert r.status_code == 403
    await server.set_policy("g, carol, role:readonly")
    assert (await carol.get("/api/v1/applications/anything")).status_code == 404

    # A policy that does not parse leaves the last good one in force.
    ref = ObjectRef("", "v1", "ConfigMap", server.namespace, RBAC_CONFIGMAP)
    await server.kube.merge_patch(ref, {"data": {"policy.csv": "p, role:x, broken"}})
    rv = (await server.kube.get(ref))["metadata"]["resourceVersion"]  # type: ignore[index]

    async def seen() -> bool:
        obj = server.state.configmap(RBAC_CONFIGMAP) or {}
        return bool(obj.get("metadata", {}).get("resourceVersion") == rv)

    await wait_for(seen, within=10, what="the broken policy seen by the server")
    assert server.state.rbac.policy.csv == "g, carol, role:readonly"
    assert (await carol.get("/api/v1/applications/anything")).status_code == 404
