"""One redaction policy on the real control plane (issue 13): the Engine's diff
masks Secret values and the fields an app's and its project's ``redactions``
name, an unchanged value shows no change, a changed one shows as changed, and no
plaintext reaches the diff, the sync's messages or the app's status."""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

from gitmoor.model.project import AppProject, ProjectDestination
from gitmoor.model.redaction import RedactRule
from gitmoor.model.status import AppStatus
from gitmoor.settings import create_project
from support.apps import configmap, diff_changes, dump, secret

if TYPE_CHECKING:
    from gitmoor.engine.compare import Comparison, ResourceStatus
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv

MASK = re.compile(r"<redacted:[0-9a-f]{8}>")

TOKEN_1, TOKEN_2 = "tok-redact-4c1e-first", "tok-redact-4c1e-second"
DSN = "postgres://app:dsn-pw-77aa@db/app"
PASSWORD_1, PASSWORD_2 = "pw-redact-9f8e-first", "pw-redact-9f8e-second"
USER = "app-user-3b5d"
PLAINTEXT = (TOKEN_1, TOKEN_2, DSN, PASSWORD_1, PASSWORD_2, USER)


def _files(token: str, password: str) -> dict[str, str]:
    return {
        "cm.yaml": dump(configmap("settings", {"api-token": token, "dsn": DSN, "mode": "fast"})),
        "secret.yaml": dump(secret("creds", {"password": password, "user": USER})),
    }


def _assert_no_plaintext(text: str, where: str) -> None:
    for value in PLAINTEXT:
        assert value not in text, (where, value)
        assert base64.b64encode(value.encode()).decode() not in text, (where, value)


def _one(cmp: Comparison, kind: str) -> ResourceStatus:
    (found,) = [r for r in cmp.resources if r.ref.kind == kind]
    return found


def _masked_line(diff: str, key: str) -> list[str]:
    """The masks of ``key`` in the diff's lines (context, removed or added)."""
    return [m.group(1) for m in re.finditer(rf"^[ +-]\s+{re.escape(key)}: (\S+)$", diff, re.M)]


async def _redacting_app(env: AppEnv, kube: KubeClient, name: str) -> None:
    """An app whose own rule masks ``data.*token*`` of ConfigMaps, in a project
    whose rule masks ``/data/dsn``: both apply."""
    await create_project(
        kube,
        AppProject(
            name=f"{name}-proj",
            namespace=env.apps_namespace,
            source_repos=(env.repo.url,),
            destinations=(ProjectDestination(namespace=env.namespace),),
            redactions=(RedactRule(kind="ConfigMap", fields=("/data/dsn",), group=""),),
        ),
    )
    await env.create(
        name,
        spec={
            "project": f"{name}-proj",
            "redactions": [{"kind": "ConfigMap", "fields": ["data.*token*"]}],
        },
    )


async def test_diff_masks_secrets_and_redacted_fields_and_keeps_changes_visible(
    env: AppEnv, kube: KubeClient
) -> None:
    env.repo.commit(_files(TOKEN_1, PASSWORD_1))
    await _redacting_app(env, kube, "masked")

    created = await env.engine.diff(await env.app("masked"))
    cm, sec = _one(created, "ConfigMap"), _one(created, "Secret")
    assert cm.diff is not None and sec.diff is not None
    for key in ("api-token", "dsn"):
        assert [bool(MASK.fullmatch(m)) for m in _masked_line(cm.diff.diff, key)] == [True], (
            cm.diff.diff
        )
    assert "+  mode: fast" in cm.diff.diff, "a field no rule names is shown"
    for key in ("password", "user"):
        assert [bool(MASK.fullmatch(m)) for m in _masked_line(sec.diff.diff, key)] == [True]
    _assert_no_plaintext(cm.diff.diff + sec.diff.diff, "diff of objects to create")

    assert (await env.sync("masked")).ok
    synced = await env.engine.diff(await env.app("masked"))
    assert all(not r.diff or not r.diff.changed for r in synced.resources), [
        r.diff.diff for r in synced.resources if r.diff
    ]
    assert synced.sync.value == "Synced"

    # The token changes, the dsn and the Secret do not.
    env.repo.commit(_files(TOKEN_2, PASSWORD_1))
    changed = await env.engine.diff(await env.app("masked"))
    cm, sec = _one(changed, "ConfigMap"), _one(changed, "Secret")
    assert cm.sync.value == "OutOfSync" and sec.sync.value == "Synced"
    assert cm.diff is not None
    removed, added = diff_changes(cm.diff.diff)
    assert len(removed) == len(added) == 1, cm.diff.diff
    old_mask, new_mask = removed[0].split(": ")[1], added[0].split(": ")[1]
    assert removed[0].startswith("api-token: ") and added[0].startswith("api-token: ")
    assert MASK.fullmatch(old_mask) and MASK.fullmatch(new_mask) and old_mask != new_mask
    _assert_no_plaintext(cm.diff.diff, "diff of a changed token")

    # Now the Secret's password changes: a change of mask, its user keeps its mask.
    env.repo.commit(_files(TOKEN_2, PASSWORD_2))
    changed = await env.engine.diff(await env.app("masked"))
    sec = _one(changed, "Secret")
    assert sec.sync.value == "OutOfSync" and sec.diff is not None
    removed, added = diff_changes(sec.diff.diff)
    assert [r.split(": ")[0] for r in removed] == ["password"] == [a.split(": ")[0] for a in added]
    assert removed[0] != added[0]
    user_masks = _masked_line(sec.diff.diff, "user")
    assert len(user_masks) == 1 and MASK.fullmatch(user_masks[0]), sec.diff.diff
    _assert_no_plaintext(
        "".join(r.diff.diff for r in changed.resources if r.diff), "diff of a changed password"
    )

    # The sync's results, the app's status (resources, operation, history) and
    # the inventory the engine keeps hold no value either.
    result = await env.sync("masked")
    assert result.ok, result.message
    app, _ = await env.refresh("masked")
    _assert_no_plaintext(json.dumps(app.status), "the app's status")
    _assert_no_plaintext(
        json.dumps(await env.engine.resources(app))
        + json.dumps(await env.engine.sync_results(app)),
        "the app's resources and sync results",
    )
    assert AppStatus.from_dict(app.status).operation_state is not None


async def test_a_value_an_apply_error_quotes_is_masked_in_every_message(
    env: AppEnv, kube: KubeClient
) -> None:
    # The API server quotes an invalid externalName; the app redacts that field.
    bad = "Bad_Host.tok-redact-4c1e-quoted"
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "upstream"},
        "spec": {"type": "ExternalName", "externalName": bad},
    }
    env.repo.commit({"svc.yaml": dump(service)})
    await env.create(
        "quoting", spec={"redactions": [{"kind": "Service", "fields": ["spec.externalName"]}]}
    )

    result = await env.sync("quoting")

    assert not result.ok
    (failed,) = [r for r in result.resources if r.action.value == "failed"]
    assert "externalName" in failed.message, failed.message
    assert MASK.search(failed.message), failed.message
    app = await env.app("quoting")
    texts = [result.message, failed.message, json.dumps(app.status)]
    for text in texts:
        assert bad not in text, text
