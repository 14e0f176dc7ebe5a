"""Secrets in Git: how an app decrypts, and which fields every output masks.

``spec.source.decryption`` (an Application's, or its project's ``spec.decryption``
when the app names none) follows Flux's ``spec.decryption``
(``{provider: sops, secretRef: {name}}``): the Secret in the apps namespace
whose ``*.agekey`` entries hold age private keys.

``spec.redactions`` (an app's and its project's, both apply) names fields to mask
in any kind, beyond Secret ``data``/``stringData`` (which are always masked):

    redactions:
      - kind: ConfigMap            # glob; group "" is the core group, "*" any
        fields: ["data.*token*"]   # a key path whose segments are globs
      - group: example.com
        kind: Database
        fields: ["/spec/credentials"]   # a JSON pointer (RFC 6901)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitmoor.model.errors import UserInputError

#: the only decryption provider, as in Flux
SOPS = "sops"


@dataclass(frozen=True, slots=True)
class Decryption:
    """Decrypt SOPS-encrypted files with the keys of the Secret ``secret_name``
    (in the apps namespace) before rendering."""

    secret_name: str
    provider: str = SOPS

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "secretRef": {"name": self.secret_name}}


@dataclass(frozen=True, slots=True)
class RedactRule:
    """Mask ``fields`` of objects of ``group``/``kind`` (globs) in every output.

    A field that starts with ``/`` is a JSON pointer (``~1`` is ``/``, ``~0`` is
    ``~``); any other is a dotted key path whose segments are shell globs
    (``data.*token*``: every key of ``data`` with ``token`` in it)."""

    kind: str
    fields: tuple[str, ...]
    group: str = "*"

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "kind": self.kind, "fields": list(self.fields)}


def parse_decryption(value: Any, where: str) -> Decryption | None:
    if value in (None, {}):
        return None
    if not isinstance(value, dict):
        raise UserInputError(f"{where} must be an object (provider, secretRef)", concerns=where)
    provider = value.get("provider") or SOPS
    if provider != SOPS:
        raise UserInputError(
            f"{where}.provider {provider!r} is not supported: the only provider is {SOPS!r}",
            concerns=where,
        )
    ref = value.get("secretRef")
    name = ref.get("name") if isinstance(ref, dict) else None
    if not isinstance(name, str) or not name:
        raise UserInputError(
            f"{where}.secretRef.name is required: the Secret that holds the age keys",
            concerns=where,
        )
    return Decryption(secret_name=name, provider=SOPS)


def parse_redactions(value: Any, where: str) -> tuple[RedactRule, ...]:
    if value in (None, []):
        return ()
    if not isinstance(value, list):
        raise UserInputError(f"{where} must be a list of {{kind, fields}}", concerns=where)
    rules: list[RedactRule] = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise UserInputError(f"{at} must be an object (group, kind, fields)", concerns=at)
        kind, group, fields = item.get("kind"), item.get("group", "*"), item.get("fields")
        if not isinstance(kind, str) or not kind:
            raise UserInputError(f"{at}.kind is required (a kind or a glob)", concerns=at)
        if not isinstance(group, str):
            raise UserInputError(f"{at}.group must be a string", concerns=at)
        if (
            not isinstance(fields, list)
            or not fields
            or not all(isinstance(f, str) and f.strip(" ./") for f in fields)
        ):
            raise UserInputError(
                f"{at}.fields must be a non-empty list of JSON pointers (/spec/password) "
                "or key paths (data.*token*)",
                concerns=at,
            )
        rules.append(RedactRule(kind=kind, fields=tuple(fields), group=group))
    return tuple(rules)
