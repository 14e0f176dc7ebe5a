"""Server messages about a Secret never carry its values."""

from __future__ import annotations

from gitmoor.engine.compare import safe_message
from gitmoor.model import ObjectRef
from gitmoor.model.redaction import RedactRule
from gitmoor.secrets.redact import Redactor

SECRET = ObjectRef("", "v1", "Secret", "ns", "db")
CM = ObjectRef("", "v1", "ConfigMap", "ns", "cfg")


def test_a_value_the_server_quotes_for_a_secret_is_masked() -> None:
    msg = (
        'Secret "db" is invalid: .stringData.pin: expected string, '
        "got &value.valueUnstructured{Value:987654321}"
    )
    out = safe_message(SECRET, msg)
    assert "987654321" not in out
    assert ".stringData.pin" in out


def test_invalid_value_quotes_are_masked_for_secrets_only() -> None:
    msg = 'data[token]: Invalid value: "hunter2-secret": a valid config key must consist of'
    assert "hunter2-secret" not in safe_message(SECRET, msg)
    assert "hunter2-secret" in safe_message(CM, msg), "other kinds keep the server's words"


def test_a_value_the_app_redacts_is_scrubbed_for_any_kind() -> None:
    redactor = Redactor("ns/app/uid", [RedactRule(kind="ConfigMap", fields=("data.*token*",))])
    redactor.learn(
        {"apiVersion": "v1", "kind": "ConfigMap", "data": {"api-token": "cm-t0k3n-value"}}
    )
    msg = 'data[api-token]: Invalid value: "cm-t0k3n-value": too long'
    out = safe_message(CM, msg, redactor)
    assert "cm-t0k3n-value" not in out
    assert redactor.mask_value("cm-t0k3n-value") in out
