"""Creating, changing and deleting apps, projects, repositories and clusters
through the API, seen from the real API server: what a user relies on is that
the object lands (or, refused, that nothing does), that credentials go in and
never come out, and that RBAC and the audit trail hold for writes.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from gitmoor.engine import store
from gitmoor.model import ObjectRef
from gitmoor.settings import get_project
from support.apps import cm_ref, configmap, dump, gone

if TYPE_CHECKING:
    import httpx

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv

    from .conftest import Server

API = "/api/v1"


def app_body(env: AppEnv, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "name": name,
        "repoURL": env.repo.url,
        "path": ".",
        "destination": {"namespace": env.namespace},
        **spec,
    }


async def audit_events(kube: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    ar = await kube.resource("", "v1", "Event")
    listed = await kube.list(ar, namespace)
    return [
        e
        for e in listed.items
        if e.get("reason", "").startswith("Audit") and e["involvedObject"]["name"] == name
    ]


async def test_an_app_is_created_updated_and_deleted_through_the_api(
    server: Server, env: AppEnv, kube: KubeClient
) -> None:
    env.repo.commit({"cfg.yaml": dump(configmap("cfg"))})
    admin = await server.login()
    ref = env.app_ref("web")

    r = await admin.post(f"{API}/applications", json=app_body(env, "web"))
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "web" and r.json()["project"] == "default"
    live = await kube.get(ref)
    assert live is not None
    assert live["spec"]["source"] == {
        "repoURL": env.repo.url,
        "path": ".",
        "targetRevision": "HEAD",
    }
    assert live["spec"]["destination"] == {"namespace": env.namespace}

    r = await admin.post(f"{API}/applications", json=app_body(env, "web"))
    assert r.status_code == 409, r.text

    # A field the body does not describe survives a PUT; what it describes is replaced.
    await kube.merge_patch(ref, {"spec": {"revisionHistoryLimit": 3}})
    r = await admin.put(
        f"{API}/applications/web",
        json={
            "repoURL": env.repo.url,
            "path": ".",
            "targetRevision": "main",
            "destination": {"namespace": env.namespace},
            "syncPolicy": {"automated": {"prune": True}, "syncOptions": ["CreateNamespace=true"]},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["automated"] is True
    live = await kube.get(ref)
    assert live is not None
    assert live["spec"]["source"]["targetRevision"] == "main"
    assert live["spec"]["revisionHistoryLimit"] == 3
    assert live["spec"]["syncPolicy"]["automated"]["prune"] is True
    assert live["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true"]

    # An upsert replaces the spec the same way: what the body leaves out goes.
    r = await admin.post(
        f"{API}/applications", params={"upsert": "true"}, json=app_body(env, "web", path="sub")
    )
    assert r.status_code == 200, r.text
    live = await kube.get(ref)
    assert live is not None
    assert live["spec"]["source"]["path"] == "sub"
    assert "syncPolicy" not in live["spec"]
    assert live["spec"]["revisionHistoryLimit"] == 3
    await kube.merge_patch(
        ref, {"spec": {"source": {"path": "."}, "syncPolicy": {"automated": {"prune": True}}}}
    )

    r = await admin.post(
        f"{API}/applications/web/automation", json={"automated": None, "suspended": True}
    )
    assert r.status_code == 200, r.text
    live = await kube.get(ref)
    assert live is not None
    assert "automated" not in live["spec"]["syncPolicy"]
    assert live["spec"]["syncPolicy"]["suspended"] is True

    # Deploy its objects, then a cascade delete takes them with it.
    await kube.merge_patch(ref, {"spec": {"source": {"targetRevision": "HEAD"}}})
    result = await env.engine.sync(await env.app("web"))
    assert result.ok, result.message
    assert await kube.get(cm_ref(env.namespace, "cfg")) is not None
    r = await admin.delete(f"{API}/applications/web", params={"cascade": "true"})
    assert r.status_code == 200, r.text
    assert {"kind": "ConfigMap", "name": "cfg"}.items() <= r.json()["deleted"][0].items()
    assert await gone(kube, ref)
    assert await gone(kube, cm_ref(env.namespace, "cfg"))
    r = await admin.delete(f"{API}/applications/web")
    assert r.status_code == 404, r.text

    # Each write left an Event on the app naming who did it and how it ended.
    events = await audit_events(kube, env.apps_namespace, "web")
    said = sorted(f"{e['reason']} {e['type']} {e['message']}" for e in events)
    for line in (
        "AuditCreate Normal admin create (created) from 127.0.0.1",
        "AuditCreate Warning admin create (error) from 127.0.0.1: 409",  # the second POST
        "AuditUpdate Normal admin update (updated) from 127.0.0.1",
        "AuditAutomation Normal admin automation (updated) from 127.0.0.1",
        "AuditDelete Normal admin delete (deleted) from 127.0.0.1: cascade: 1 object(s)",
    ):
        assert any(s.startswith(line) for s in said), (line, said)


async def test_an_invalid_app_is_refused_and_nothing_is_written(
    server: Server, env: AppEnv, kube: KubeClient
) -> None:
    admin = await server.login()
    cases: list[tuple[dict[str, Any], str]] = [
        (app_body(env, "Bad_Name"), "not a Kubernetes object name"),
        (app_body(env, "creds", repoURL="https://bot:hunter2@git.example.com/a.git"), ""),
        (app_body(env, "nons", destination={"namespace": ""}), "spec.destination.namespace"),
        (app_body(env, "noproj", project="nope"), "project nope does not exist"),
    ]
    for body, detail in cases:
        r = await admin.post(f"{API}/applications", json=body)
        assert r.status_code == 400, (body["name"], r.text)
        assert detail in r.json()["detail"]
        assert "hunter2" not in r.text
        assert await kube.get(env.app_ref(body["name"].lower())) is None
    # A body of the wrong shape never reaches the store either.
    r = await admin.post(f"{API}/applications", json={"name": "x", "repoURL": env.repo.url})
    assert r.status_code == 422
    assert await kube.get(env.app_ref("x")) is None


async def test_repository_credentials_go_in_and_never_come_out(
    server: Server, kube: KubeClient
) -> None:
    admin = await server.login()
    password, key = "pw-Zq81-never-shown", "-----BEGIN OPENSSH PRIVATE KEY-----\nk3y-never-shown\n"
    r = await admin.post(
        f"{API}/repositories",
        json={"url": "https://git.example.com/org/", "username": "bot", "password": password},
    )
    assert r.status_code == 201, r.text
    r2 = await admin.post(
        f"{API}/repositories",
        json={"url": "git@git.example.com:team/", "sshPrivateKey": key, "project": "default"},
    )
    assert r2.status_code == 201, r2.text
    listed = await admin.get(f"{API}/repositories")
    assert listed.status_code == 200
    for response in (r, r2, listed):
        assert password not in response.text and "k3y-never-shown" not in response.text
        assert "password" not in response.text.lower() and "privatekey" not in response.text.lower()
    rows = {row["url"]: row for row in listed.json()}
    assert rows["https://git.example.com/org/"] | {"secret": ""} == {
        "url": "https://git.example.com/org/",
        "type": "git",
        "project": "",
        "auth": "https",
        "hasUsername": True,
        "secret": "",
    }
    assert rows["git@git.example.com:team/"]["auth"] == "ssh"
    assert rows["git@git.example.com:team/"]["project"] == "default"
    # Written where the engine reads credentials from.
    secret = await kube.get(ObjectRef("", "v1", "Secret", server.namespace, r.json()["secret"]))
    assert secret is not None
    assert base64.b64decode(secret["data"]["password"]).decode() == password

    # An unknown field is refused by its name, not echoed back with its value.
    r = await admin.post(
        f"{API}/repositories", json={"url": "https://x.example/", "token": "tok-never-shown"}
    )
    assert r.status_code == 400, r.text
    assert "token" in r.json()["detail"] and "tok-never-shown" not in r.text
    r = await admin.post(f"{API}/repositories", json={"url": "https://git.example.com/org/"})
    assert r.status_code == 409, r.text

    r = await admin.delete(f"{API}/repositories", params={"url": "https://git.example.com/org/"})
    assert r.status_code == 200, r.text
    assert await gone(
        kube, ObjectRef("", "v1", "Secret", server.namespace, secret["metadata"]["name"])
    )
    r = await admin.delete(f"{API}/repositories", params={"url": "https://git.example.com/org/"})
    assert r.status_code == 404


async def test_cluster_credentials_go_in_and_never_come_out(
    server: Server, kube: KubeClient
) -> None:
    admin = await server.login()
    token = "tok-Rk22-never-shown"
    body = {
        "name": "prod",
        "server": "https://127.0.0.1:1",
        "config": {"bearerToken": token, "tlsClientConfig": {"insecure": True}},
    }
    # verify: nothing listens on port 1, so the registration is refused.
    r = await admin.post(f"{API}/clusters", json=body, params={"verify": "true"})
    assert r.status_code == 400, r.text
    assert "cannot reach https://127.0.0.1:1" in r.json()["detail"] and token not in r.text

    r = await admin.post(f"{API}/clusters", json=body)
    assert r.status_code == 201, r.text
    listed = await admin.get(f"{API}/clusters")
    assert listed.status_code == 200
    assert [c for c in listed.json() if c["name"] == "prod"] == [
        {"name": "prod", "server": "https://127.0.0.1:1", "secret": r.json()["secret"]}
    ]
    for response in (r, listed):
        assert token not in response.text and "config" not in response.text
    secret = await kube.get(ObjectRef("", "v1", "Secret", server.namespace, r.json()["secret"]))
    assert secret is not None
    stored = json.loads(base64.b64decode(secret["data"]["config"]))
    assert stored["bearerToken"] == token

    r = await admin.post(f"{API}/clusters", json=body)
    assert r.status_code == 409, r.text
    # Argo CD's auth plugins are refused by name (gitmoor would connect without them).
    plugin = {**body, "name": "eks", "config": {"execProviderConfig": {"command": "aws"}}}
    r = await admin.post(f"{API}/clusters", json=plugin)
    assert r.status_code == 400 and "execProviderConfig" in r.json()["detail"], r.text
    r = await admin.post(f"{API}/clusters", json={**body, "name": "in-cluster"})
    assert r.status_code == 400, r.text

    r = await admin.delete(f"{API}/clusters/prod")
    assert r.status_code == 200, r.text
    assert await gone(
        kube, ObjectRef("", "v1", "Secret", server.namespace, secret["metadata"]["name"])
    )
    assert (await admin.delete(f"{API}/clusters/prod")).status_code == 404


async def create_project(admin: httpx.AsyncClient, name: str) -> None:
    r = await admin.post(
        f"{API}/projects",
        json={"name": name, "sourceRepos": ["*"], "destinations": [{"namespace": "*"}]},
    )
    assert r.status_code == 201, r.text


async def test_a_team_role_cannot_write_apps_of_another_teams_project(
    server: Server, env: AppEnv, kube: KubeClient
) -> None:
    admin = await server.login()
    for name in ("team-a", "team-b"):
        await create_project(admin, name)
    await server.add_user("alice", "alice-password-1")
    await server.set_policy(
        "p, role:team-a, applications, *, team-a/*, allow\ng, alice, role:team-a\n"
    )
    alice = await server.login("alice", "alice-password-1")

    r = await alice.post(f"{API}/applications", json=app_body(env, "theirs", project="team-b"))
    assert r.status_code == 403, r.text
    assert await kube.get(env.app_ref("theirs")) is None

    r = await alice.post(f"{API}/applications", json=app_body(env, "ours", project="team-a"))
    assert r.status_code == 201, r.text
    # Moving it into team-b needs update there too (Argo CD checks both projects).
    moved = app_body(env, "ours", project="team-b")
    del moved["name"]
    r = await alice.put(f"{API}/applications/ours", json=moved)
    assert r.status_code == 403, r.text
    live = await kube.get(env.app_ref("ours"))
    assert live is not None and live["spec"]["project"] == "team-a"
    # Nor may a team-a role create projects.
    r = await alice.post(f"{API}/projects", json={"name": "team-c"})
    assert r.status_code == 403, r.text
    assert await get_project(kube, "team-c", server.namespace) is None

    # The refusal is on the record too: who, what, and that it was denied.
    events = await audit_events(kube, env.apps_namespace, "theirs")
    assert [(e["type"], e["message"].split(":")[0]) for e in events] == [
        ("Warning", "alice create (denied) from 127.0.0.1")
    ]

    r = await alice.delete(f"{API}/applications/ours", params={"cascade": "false"})
    assert r.status_code == 200, r.text
    assert await gone(kube, env.app_ref("ours"))


async def test_a_project_is_edited_and_not_deleted_while_apps_use_it(
    server: Server, env: AppEnv, kube: KubeClient
) -> None:
    admin = await server.login()
    await create_project(admin, "team-x")
    r = await admin.post(f"{API}/projects", json={"name": "team-x"})
    assert r.status_code == 409, r.text
    r = await admin.post(f"{API}/projects", params={"upsert": "true"}, json={"name": "team-x"})
    assert r.status_code == 200, r.text
    project = await get_project(kube, "team-x", server.namespace)
    assert project is not None and project.source_repos == () and project.destinations == ()
    r = await admin.put(
        f"{API}/projects/team-x",
        json={
            "description": "team x",
            "sourceRepos": [env.repo.url],
            "destinations": [{"name": "in-cluster", "namespace": env.namespace}],
            "namespaceResourceWhitelist": [{"group": "", "kind": "ConfigMap"}],
        },
    )
    assert r.status_code == 200, r.text
    project = await get_project(kube, "team-x", server.namespace)
    assert project is not None and project.source_repos == (env.repo.url,)
    r = await admin.get(f"{API}/projects/team-x")
    assert r.status_code == 200
    assert r.json()["namespaceResourceWhitelist"] == [{"group": "", "kind": "ConfigMap"}]
    assert "team-x" in [p["name"] for p in (await admin.get(f"{API}/projects")).json()]

    r = await admin.post(f"{API}/applications", json=app_body(env, "user", project="team-x"))
    assert r.status_code == 201, r.text
    r = await admin.delete(f"{API}/projects/team-x")
    assert r.status_code == 409, r.text
    assert "user" in r.json()["detail"]
    assert await get_project(kube, "team-x", server.namespace) is not None

    r = await admin.delete(f"{API}/applications/user", params={"cascade": "false"})
    assert r.status_code == 200, r.text

    # The app is gone from the API server once its DELETE has answered.
    r = await admin.delete(f"{API}/projects/team-x")
    assert r.status_code == 200, r.text
    assert (await admin.get(f"{API}/projects/team-x")).status_code == 404
    assert await store.list_apps(kube, server.namespace) == []
