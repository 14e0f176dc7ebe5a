"""age X25519 keys through ``pyrage`` (the Rust ``age`` crate), typed.

What sops does with age (``age/keysource.go``): the 32-byte data key is
encrypted for one recipient at a time and ASCII-armored (``-----BEGIN AGE
ENCRYPTED FILE-----``), one ``sops.age[]`` entry per recipient; any identity
that matches one entry opens the file. Identities are ``AGE-SECRET-KEY-1…``
lines in ``age-keygen``'s file format. Nothing here logs or echoes a key: the
errors say which recipient or which line, never the secret.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyrage  # type: ignore[import-untyped]  # ships no type information

from gitmoor.model.errors import UserInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

_IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
_RECIPIENT_PREFIX = "age1"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A new age key: the file text to keep private, and the public recipient."""

    identity: str = ""
    recipient: str = ""

    def file_text(self, created: dt.datetime | None = None) -> str:
        """``age-keygen``'s file: ``# created:`` and ``# public key:`` comments, then
        the identity on its own line."""
        when = (created or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"# created: {when}\n# public key: {self.recipient}\n{self.identity}\n"

    def __repr__(self) -> str:  # never print the identity by accident
        return f"KeyPair(recipient={self.recipient!r})"


def generate() -> KeyPair:
    identity = pyrage.x25519.Identity.generate()
    return KeyPair(identity=str(identity), recipient=str(identity.to_public()))


def check_recipient(recipient: str, where: str = "recipient") -> str:
    """``recipient`` stripped, if it is an age X25519 recipient (``age1…``)."""
    r = recipient.strip()
    if not r.startswith(_RECIPIENT_PREFIX):
        raise UserInputError(
            f"{r!r} is not an age recipient (age1…); SSH and plugin recipients are not "
            "supported here",
            concerns=where,
        )
    try:
        pyrage.x25519.Recipient.from_str(r)
    except pyrage.RecipientError as e:
        raise UserInputError(f"{r!r} is not a valid age recipient: {e}", concerns=where) from e
    return r


def parse_identities(identities: Sequence[str], where: str) -> list[Any]:
    """pyrage identities from ``AGE-SECRET-KEY-1…`` strings (an error names which one
    by position, never by value)."""
    parsed = []
    for i, text in enumerate(identities):
        value = text.strip()
        if not value.upper().startswith(_IDENTITY_PREFIX):
            raise UserInputError(
                f"age identity #{i + 1} is not an AGE-SECRET-KEY-1… key", concerns=where
            )
        try:
            parsed.append(pyrage.x25519.Identity.from_str(value))
        except pyrage.IdentityError:
            raise UserInputError(
                f"age identity #{i + 1} is not a valid age X25519 key", concerns=where
            ) from None
    return parsed


def public_of(identity: str) -> str:
    """The recipient of one identity string."""
    (parsed,) = parse_identities([identity], "identity")
    return str(parsed.to_public())


def encrypt_armored(data: bytes, recipient: str, where: str) -> str:
    """``data`` encrypted for ``recipient``, armored as sops writes ``sops.age[].enc``."""
    r = check_recipient(recipient, where)
    try:
        out = pyrage.encrypt(data, [pyrage.x25519.Recipient.from_str(r)], armored=True)
    except pyrage.EncryptError as e:
        raise UserInputError(f"cannot encrypt for {r}: {e}", concerns=where) from e
    assert isinstance(out, bytes)
    return out.decode("ascii")


def decrypt_armored(enc: str, identities: Sequence[Any]) -> bytes | None:
    """The plaintext of an armored age file if one of ``identities`` opens it, else None."""
    try:
        out = pyrage.decrypt(enc.encode("ascii"), list(identities))
    except (pyrage.DecryptError, UnicodeEncodeError, ValueError):
        return None
    assert isinstance(out, bytes)
    return out


__all__ = [
    "KeyPair",
    "check_recipient",
    "decrypt_armored",
    "encrypt_armored",
    "generate",
    "parse_identities",
    "public_of",
]
