"""Redaction scoped to one app (issue 13 review): an app's text is scrubbed by its
own Redactors only, values decrypted from SOPS are masked in any kind in a diff,
and ``changed`` is decided before masking (a mask is 32 bits of a digest)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from gitmoor.engine import app_identity, redactor_for, scrub_identity, scrub_message
from gitmoor.engine.normalize import compare
from gitmoor.model import ObjectRef
from gitmoor.model.application import (
    Application,
    AppSource,
    Destination,
    application_manifest,
    parse_application,
)
from gitmoor.model.project import AppProject
from gitmoor.model.redaction import RedactRule
from gitmoor.secrets import redact

if TYPE_CHECKING:
    import pytest


def _app(name: str, uid: str) -> Application:
    manifest = application_manifest(
        name, "gitmoor", AppSource("https://git.example.com/shop.git"), Destination(name)
    )
    manifest["metadata"]["uid"] = uid
    return parse_application(manifest)


def _secret(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _configmap(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "env", "namespace": "shop"},
        "data": dict(data),
    }


def test_an_apps_messages_are_scrubbed_of_its_own_values_only() -> None:
    victim, tenant = _app("victim", "uid-victim-1"), _app("tenant", "uid-tenant-1")
    redactor_for(victim).learn(_secret(password="victim-db-pw-90210"))
    redactor_for(tenant).learn(_secret(password="tenant-db-pw-11111"))
    # The tenant's pod prints guesses; its app's logs/Events/status go through
    # the tenant's Redactors, which never learned the victim's value.
    printed = "try victim-db-pw-90210 then tenant-db-pw-11111"
    out = scrub_message(tenant, printed)
    assert "victim-db-pw-90210" in out, "no oracle: another app's value is not marked"
    assert "tenant-db-pw-11111" not in out
    assert redactor_for(tenant).mask_value("tenant-db-pw-11111") in out
    # The victim's own view hides its value.
    assert "victim-db-pw-90210" not in scrub_message(victim, printed)
    assert scrub_identity(app_identity(tenant), printed) == out


def test_every_redactor_of_the_app_scrubs_its_text() -> None:
    # A Redactor under the project's rules learned the value; a message scrubbed
    # where the project is not at hand is scrubbed all the same.
    app = _app("ruled", "uid-ruled-1")
    project = AppProject(
        name="team", redactions=(RedactRule(kind="ConfigMap", fields=("data.token",)),)
    )
    redactor_for(app, project).learn(_configmap(token="ruled-token-4242"))
    assert "ruled-token-4242" not in scrub_message(app, "token ruled-token-4242 refused")


def test_a_value_decrypted_into_a_configmap_is_masked_in_the_diff() -> None:
    app = _app("env-app", "uid-env-1")
    redactor = redactor_for(app)
    redactor.learn_secret_values(frozenset({"env-db-pw-old-1", "env-db-pw-new-2"}))
    ref = ObjectRef("", "v1", "ConfigMap", "shop", "env")
    live = _configmap(DB_PASSWORD="env-db-pw-old-1", DB_HOST="db")
    predicted = _configmap(DB_PASSWORD="env-db-pw-new-2", DB_HOST="db")
    result = compare(ref, live, predicted, (), redactor)
    assert result.changed
    assert "env-db-pw" not in result.diff
    assert redactor.mask_value("env-db-pw-old-1") in result.diff
    assert redactor.mask_value("env-db-pw-new-2") in result.diff
    same = compare(ref, live, dict(live), (), redactor)
    assert not same.changed and same.diff == ""
    assert same.live is not None and same.live["data"]["DB_PASSWORD"] != "env-db-pw-old-1"
    assert live["data"]["DB_PASSWORD"] == "env-db-pw-old-1", "the caller's object is not masked"


def test_a_change_whose_masks_collide_is_still_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two values with the same 32-bit mask: the sync must still apply the change.
    monkeypatch.setattr(redact, "_mask_bytes", lambda key, value: "<redacted:00000000>")
    redactor = redact.Redactor("shop/collide/uid-c")
    ref = ObjectRef("", "v1", "Secret", "shop", "db")
    result = compare(
        ref, _secret(password="collide-a-1"), _secret(password="collide-b-2"), (), redactor
    )
    assert result.changed
    assert result.diff, "a changed object never shows an empty diff"
    assert "collide-a-1" not in result.diff and "collide-b-2" not in result.diff
    assert (
        compare(
            ref, _secret(password="collide-a-1"), _secret(password="collide-a-1"), (), redactor
        ).changed
        is False
    )
