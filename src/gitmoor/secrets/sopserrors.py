"""The errors of SOPS files read and written in Python, drawn once:

    UserInputError (gitmoor.model.errors)
    └── SopsError          a SOPS file could not be read, decrypted or written
        ├── NotSopsFile    no sops metadata: plaintext, or another format
        ├── NoMatchingKey  no given age identity is a recipient
        ├── TamperedValue  one value does not authenticate (changed, moved, damaged)
        ├── MacMismatch    the values do not match the MAC
        └── UnsupportedFile a sops feature left to the real ``sops``

``concerns`` is the file. No message carries a plaintext value or a private key.
"""

from __future__ import annotations

from gitmoor.model.errors import UserInputError


class SopsError(UserInputError):
    """A SOPS file could not be read, decrypted or written; ``concerns`` is the file."""


class NotSopsFile(SopsError):
    """The file holds no ``sops`` metadata (it is plaintext, or not this format)."""


class NoMatchingKey(SopsError):
    """None of the given age identities is a recipient of the file's data key."""


class MacMismatch(SopsError):
    """The values do not match the file's MAC: something was changed without the key."""


class TamperedValue(SopsError):
    """One encrypted value does not authenticate under the data key."""


class UnsupportedFile(SopsError):
    """The file uses a sops feature this module does not implement (use ``sops``)."""


__all__ = [
    "MacMismatch",
    "NoMatchingKey",
    "NotSopsFile",
    "SopsError",
    "TamperedValue",
    "UnsupportedFile",
]
