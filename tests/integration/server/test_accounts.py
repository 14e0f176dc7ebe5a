"""Local accounts through a running ``gitmoor server``: login and logout, login
limits, API tokens, password changes, and the CLI's recovery and login paths.

Every client is a real HTTP client against the server on loopback; the settings
live in the real ``gitmoor-cm``/``gitmoor-secret`` of the test's namespace.
"""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from typing import TYPE_CHECKING

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.server.auth.ratelimit import WINDOW, LoginLimiter
from gitmoor.server.auth.sessions import CSRF_HEADER, SESSION_COOKIE
from gitmoor.settings import accounts

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from support.cli import Gitmoor

    from .conftest import Server

SESSION = "/api/v1/session"
USERINFO = "/api/v1/session/userinfo"


async def _secret_text(kube: KubeClient, namespace: str) -> str:
    obj = await kube.get(ObjectRef("", "v1", "Secret", namespace, accounts.SETTINGS_SECRET))
    assert obj is not None
    return json.dumps(accounts.secret_data(obj))


async def test_login_sets_a_safe_cookie_and_logout_kills_it(server: Server) -> None:
    c = server.anonymous()
    r = await c.post(SESSION, json={"username": "admin", "password": server.admin_password})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["username"] == "admin" and body["token"] and body["csrf"]
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    low = cookie.lower()
    assert "httponly" in low and "samesite=lax" in low and "path=/" in low
    assert "secure" not in low  # plain http here; Secure is set under TLS
    info = (await c.get(USERINFO)).json()
    assert info["username"] == "admin" and info["via"] == "session"
    assert "role:admin" in info["roles"] and info["csrf"] == body["csrf"]

    old_cookie = c.cookies[SESSION_COOKIE]
    # Logout is state-changing: without the CSRF token it is refused.
    assert (await c.delete(SESSION)).status_code == 403
    r = await c.delete(SESSION, headers={CSRF_HEADER: body["csrf"]})
    assert r.status_code == 200, r.text
    assert SESSION_COOKIE not in c.cookies  # the server cleared it

    replay = server.anonymous(cookies={SESSION_COOKIE: old_cookie})
    assert (await replay.get(USERINFO)).status_code == 401
    assert (await server.bearer(body["token"]).get(USERINFO)).status_code == 401


async def test_wrong_password_and_unknown_user_get_the_same_401(server: Server) -> None:
    c = server.anonymous()
    wrong = await c.post(SESSION, json={"username": "admin", "password": "not-the-password"})
    unknown = await c.post(SESSION, json={"username": "nobody", "password": "not-the-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert SESSION_COOKIE not in c.cookies
    form = await c.post(
        SESSION, data={"username": "admin", "password": server.admin_password}
    )  # a plain HTML form works too
    assert form.status_code == 200 and SESSION_COOKIE in c.cookies


async def test_a_login_posted_from_another_site_is_refused(server: Server) -> None:
    c = server.anonymous(headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    r = await c.post(SESSION, data={"username": "admin", "password": server.admin_password})
    assert r.status_code == 403
    assert SESSION_COOKIE not in c.cookies


async def test_eleven_failed_logins_get_429_and_the_password_works_after_the_window(
    server: Server,
) -> None:
    # The limiter's clock is the test's: the window passes when the test says so,
    # however slowly ten argon2 verifications run on a loaded machine.
    now = [1000.0]
    server.state.limiter = LoginLimiter(clock=lambda: now[0])
    c = server.anonymous()
    bad = {"username": "admin", "password": "guess-guess"}
    for _ in range(10):
        assert (await c.post(SESSION, json=bad)).status_code == 401
    r = await c.post(SESSION, json=bad)
    assert r.status_code == 429
    assert r.headers["retry-after"] == str(int(WINDOW))
    good = {"username": "admin", "password": server.admin_password}
    # Limited: even the right password is not checked, let alone accepted.
    assert (await c.post(SESSION, json=good)).status_code == 429
    now[0] += WINDOW - 1
    r = await c.post(SESSION, json=good)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"

    now[0] += 1
    assert (await c.post(SESSION, json=good)).status_code == 200
    # The success cleared the account's counter: a new mistake is a 401, not a 429.
    assert (await c.post(SESSION, json=bad)).status_code == 401


async def test_api_token_works_as_bearer_until_revoked(server: Server) -> None:
    await server.add_user("ci", "ci-password-1", capabilities=("login", "apiKey"))
    ci = await server.login("ci", "ci-password-1")
    r = await ci.post("/api/v1/accounts/ci/tokens", json={"expiresIn": "24h", "id": "deploy"})
    assert r.status_code == 200, r.text
    created = r.json()
    token = created["token"]
    assert created["id"] == "deploy"

    bearer = server.bearer(token)
    info = (await bearer.get(USERINFO)).json()
    assert info["username"] == "ci" and info["via"] == "token"

    listed = (await ci.get("/api/v1/accounts/ci/tokens")).json()
    assert [t["id"] for t in listed] == ["deploy"]
    assert listed[0]["expiresAt"] is not None and not listed[0]["expired"]
    every = json.dumps(listed) + (await ci.get("/api/v1/accounts")).text
    stored = await _secret_text(server.kube, server.namespace)
    assert token not in every and token not in stored  # shown once, stored hashed
    assert accounts.token_hash(token) in stored and accounts.token_hash(token) not in every

    # A leaked token cannot mint itself successors (a session or the RBAC rule can).
    r = await bearer.post("/api/v1/accounts/ci/tokens", json={})
    assert r.status_code == 403
    assert "cannot create tokens" in r.json()["detail"]

    # A token needs no CSRF header: it is not a cookie a browser sends on its own.
    r = await bearer.delete("/api/v1/accounts/ci/tokens/deploy")
    assert r.status_code == 200, r.text
    r = await bearer.get(USERINFO)  # refused at once, no watch round-trip needed
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert (await ci.delete("/api/v1/accounts/ci/tokens/deploy")).status_code == 404


async def test_a_token_needs_the_api_key_capability(server: Server) -> None:
    await server.add_user("human", "human-password-1")
    c = await server.login("human", "human-password-1")
    r = await c.post("/api/v1/accounts/human/tokens", json={})
    assert r.status_code == 400 and "apiKey" in r.json()["detail"]


async def test_an_expired_token_is_refused(server: Server) -> None:
    await server.add_user("bot", "bot-password-1", capabilities=("apiKey", "login"))
    c = await server.login("bot", "bot-password-1")
    long = (await c.post("/api/v1/accounts/bot/tokens", json={"expiresIn": 3600})).json()
    short = (await c.post("/api/v1/accounts/bot/tokens", json={"expiresIn": "1s"})).json()
    assert (await server.bearer(long["token"]).get(USERINFO)).status_code == 200
    refused = server.bearer(short["token"])

    async def expired() -> bool:
        return (await refused.get(USERINFO)).status_code == 401

    await wait_for(expired, within=15, what="short-lived token refused")
    listed = {t["id"]: t for t in (await c.get("/api/v1/accounts/bot/tokens")).json()}
    assert listed[short["id"]]["expired"] and not listed[long["id"]]["expired"]


async def test_changing_a_password_ends_the_old_sessions(server: Server) -> None:
    await server.add_user("alice", "alice-password-1")
    browser = await server.login("alice", "alice-password-1")
    script = server.bearer(await server.token("alice", "alice-password-1"))
    assert (await script.get(USERINFO)).status_code == 200

    url = "/api/v1/accounts/alice/password"
    r = await browser.put(url, json={"currentPassword": "wrong-one!", "newPassword": "x" * 12})
    assert r.status_code == 403
    r = await browser.put(
        url, json={"currentPassword": "alice-password-1", "newPassword": "alice-password-2"}
    )
    assert r.status_code == 200, r.text
    assert (await browser.get(USERINFO)).status_code == 401
    assert (await script.get(USERINFO)).status_code == 401
    c = server.anonymous()
    old = {"username": "alice", "password": "alice-password-1"}
    assert (await c.post(SESSION, json=old)).status_code == 401
    await server.login("alice", "alice-password-2")


async def test_a_user_manages_only_their_own_account(server: Server) -> None:
    await server.add_user("alice", "alice-password-1", capabilities=("login", "apiKey"))
    await server.add_user("mallory", "mallory-pass-1", capabilities=("login", "apiKey"))
    m = await server.login("mallory", "mallory-pass-1")
    assert [a["name"] for a in (await m.get("/api/v1/accounts")).json()] == ["mallory"]
    assert (await m.post("/api/v1/accounts/alice/tokens", json={})).status_code == 403
    assert (await m.get("/api/v1/accounts/alice/tokens")).status_code == 403
    r = await m.put(
        "/api/v1/accounts/alice/password",
        json={"currentPassword": "mallory-pass-1", "newPassword": "taken-over-1"},
    )
    assert r.status_code == 403
    # admin (role:admin) may, proving who they are with their own password.
    admin = await server.login()
    r = await admin.put(
        "/api/v1/accounts/alice/password",
        json={"currentPassword": server.admin_password, "newPassword": "alice-password-9"},
    )
    assert r.status_code == 200, r.text
    await server.login("alice", "alice-password-9")
    names = [a["name"] for a in (await admin.get("/api/v1/accounts")).json()]
    assert names == ["admin", "alice", "mallory"]


async def test_requests_without_credentials_get_401(server: Server) -> None:
    c = server.anonymous()
    assert (await c.get(USERINFO)).status_code == 401
    assert (await c.delete(SESSION)).status_code == 401
    assert (await c.get("/api/v1/accounts")).status_code == 401
    assert (await c.post("/api/v1/accounts/admin/tokens", json={})).status_code == 401
    r = await c.put(
        "/api/v1/accounts/admin/password",
        json={"currentPassword": "a" * 10, "newPassword": "b" * 10},
    )
    assert r.status_code == 401
    assert (await server.bearer("gmt_forged.secret").get(USERINFO)).status_code == 401


# ---------------------------------------------------------------------- the CLI


def _cli_env(gitmoor: Gitmoor, home: Path) -> Gitmoor:
    env = dict(gitmoor.env, XDG_CONFIG_HOME=str(home / "config"), HOME=str(home))
    return type(gitmoor)(gitmoor.kubeconfig, gitmoor.apps_namespace, env)


async def test_admin_reset_password_with_cluster_rights_then_login(
    server: Server, gitmoor: Gitmoor
) -> None:
    r = await asyncio.to_thread(
        gitmoor, "admin", "reset-password", "--account", "admin", "--password", "recovered-pw-1"
    )
    assert r.returncode == 0, r.stderr
    assert "recovered-pw-1" not in r.stdout  # it was given: no need to echo it
    await server.login("admin", "recovered-pw-1")
    old = {"username": "admin", "password": server.admin_password}
    assert (await server.anonymous().post(SESSION, json=old)).status_code == 401

    r = await asyncio.to_thread(gitmoor, "admin", "reset-password", "--account", "admin")
    assert r.returncode == 0, r.stderr
    generated = r.stdout.strip().splitlines()[-1].strip()
    await server.login("admin", generated)


async def test_cli_login_account_commands_and_logout(
    server: Server, gitmoor: Gitmoor, tmp_path: Path
) -> None:
    await server.add_user("ops", "ops-password-1", capabilities=("login", "apiKey"))
    cli = _cli_env(gitmoor, tmp_path)

    async def run(*args: str) -> str:
        r = await asyncio.to_thread(cli, *args)
        assert r.returncode == 0, f"{args}: {r.stderr}"
        return r.stdout

    r = await asyncio.to_thread(
        cli, "login", server.url, "--username", "ops", "--password", "not-it-at-all"
    )
    assert r.returncode == 2 and "invalid username or password" in r.stderr
    await run("login", server.url, "--username", "ops", "--password", "ops-password-1")
    config = tmp_path / "config" / "gitmoor" / "config"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "ops-password-1" not in config.read_text()

    assert "ops" in await run("account", "list")
    out = await run("account", "generate-token", "--expires-in", "24h", "--id", "nightly")
    token = out.strip().splitlines()[-1].strip()
    assert token.startswith("gmt_nightly.")
    assert (await server.bearer(token).get(USERINFO)).json()["username"] == "ops"
    assert "nightly" in await run("account", "list-tokens")
    await run("account", "delete-token", "nightly")
    assert (await server.bearer(token).get(USERINFO)).status_code == 401

    await run(
        "account", "update-password", "--current-password", "ops-password-1",
        "--new-password", "ops-password-2",
    )  # fmt: skip
    # The stored session ended with the password change: log in again.
    r = await asyncio.to_thread(cli, "account", "list")
    assert r.returncode != 0 and "gitmoor login" in r.stderr
    await run("login", server.url, "--username", "ops", "--password", "ops-password-2")
    session_token = json.loads(config.read_text())["token"]
    await run("logout")
    assert (await server.bearer(session_token).get(USERINFO)).status_code == 401
    assert "token" not in json.loads(config.read_text())


async def test_install_prints_the_admin_password_once(
    kube: KubeClient, gitmoor: Gitmoor, apps_namespace: str
) -> None:
    first = await asyncio.to_thread(gitmoor, "install")
    assert first.returncode == 0, first.stderr
    lines = [ln for ln in first.stdout.splitlines() if "admin password" in ln.lower()]
    assert lines, first.stdout
    password = first.stdout.split("admin password:")[1].split()[0]
    assert "reset-password" in first.stdout  # says how to get a new one

    every = accounts.parse_accounts(
        await kube.get(
            ObjectRef("", "v1", "ConfigMap", apps_namespace, accounts.SETTINGS_CONFIGMAP)
        ),
        await kube.get(ObjectRef("", "v1", "Secret", apps_namespace, accounts.SETTINGS_SECRET)),
    )
    assert accounts.verify_password(every["admin"], password)
    assert password not in await _secret_text(kube, apps_namespace)

    second = await asyncio.to_thread(gitmoor, "install")
    assert second.returncode == 0, second.stderr
    assert password not in second.stdout and "admin password:" not in second.stdout
    secret = await kube.get(ObjectRef("", "v1", "Secret", apps_namespace, accounts.SETTINGS_SECRET))
    assert secret is not None
    labels = secret["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "gitmoor"
    assert base64.b64decode(secret["data"]["server.secretkey"])


async def test_settings_writes_keep_keys_they_do_not_own(
    kube: KubeClient, apps_namespace: str
) -> None:
    ref = ObjectRef("", "v1", "Secret", apps_namespace, accounts.SETTINGS_SECRET)
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ref.name, "namespace": apps_namespace},
            "stringData": {"webhook.github.secret": "hook-secret-value"},
        }
    )
    assert await accounts.ensure_settings(kube, apps_namespace) is not None
    await accounts.add_account(kube, apps_namespace, "ci", capabilities=("apiKey",))
    # Two writers at once: both tokens land, neither write is lost.
    results = await asyncio.gather(
        *(accounts.generate_token(kube, apps_namespace, "ci", None, f"t{i}") for i in range(4))
    )
    data = accounts.secret_data(await kube.get(ref))
    assert data["webhook.github.secret"] == "hook-secret-value"
    ids = {t["id"] for t in json.loads(data["accounts.ci.tokens"])}
    assert ids == {tid for tid, _ in results} == {"t0", "t1", "t2", "t3"}
    assert await accounts.revoke_token(kube, apps_namespace, "ci", "t1")
    assert not await accounts.revoke_token(kube, apps_namespace, "ci", "t1")
