"""Server messages about a Secret never carry its values."""

from __future__ import annotations

from gitmoor.engine.compare import safe_message
from gitmoor.model import ObjectRef

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
