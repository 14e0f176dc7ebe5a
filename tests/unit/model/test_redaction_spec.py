"""Hostile or mistaken `decryption` and `redactions` specs: a sentence naming the field."""

from __future__ import annotations

import pytest

from gitmoor.model import UserInputError
from gitmoor.model.redaction import Decryption, RedactRule, parse_decryption, parse_redactions


def test_a_valid_decryption_and_redactions_parse() -> None:
    assert parse_decryption({"secretRef": {"name": "sops-age"}}, "d") == Decryption("sops-age")
    assert parse_decryption(None, "d") is None
    assert parse_redactions([{"kind": "ConfigMap", "fields": ["data.*token*"]}], "r") == (
        RedactRule(kind="ConfigMap", fields=("data.*token*",)),
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("sops-age", "spec.source.decryption must be an object"),
        ({"provider": "vault", "secretRef": {"name": "x"}}, "provider 'vault' is not supported"),
        ({"secretRef": {}}, "spec.source.decryption.secretRef.name is required"),
        ({"secretRef": {"name": ["x"]}}, "spec.source.decryption.secretRef.name is required"),
    ],
)
def test_a_bad_decryption_is_refused_naming_the_field(value: object, says: str) -> None:
    with pytest.raises(UserInputError, match=says.replace(".", r"\.")):
        parse_decryption(value, "spec.source.decryption")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"kind": "ConfigMap"}, "spec.redactions must be a list"),
        (["x"], r"spec.redactions\[0\] must be an object"),
        ([{"fields": ["/a"]}], r"spec.redactions\[0\].kind is required"),
        ([{"kind": "X", "group": 3, "fields": ["/a"]}], r"spec.redactions\[0\].group must be"),
        ([{"kind": "X", "fields": []}], r"spec.redactions\[0\].fields must be a non-empty list"),
        ([{"kind": "X", "fields": ["/"]}], r"spec.redactions\[0\].fields must be a non-empty list"),
        ([{"kind": "X", "fields": [1]}], r"spec.redactions\[0\].fields must be a non-empty list"),
    ],
)
def test_bad_redactions_are_refused_naming_the_entry(value: object, says: str) -> None:
    with pytest.raises(UserInputError, match=says):
        parse_redactions(value, "spec.redactions")
