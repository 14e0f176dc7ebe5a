"""Decryption keys kept as a Kubernetes Secret, the way Flux keeps them.

The Secret an Application (or its project) names in ``decryption.secretRef``
lives in the Application's namespace. Each entry whose key ends in ``.agekey``
holds one or more age private keys (``AGE-SECRET-KEY-1…`` lines, as
``age-keygen`` writes them, ``#`` comments allowed): Flux's
kustomize-controller reads the same suffix. PGP keys (``.asc``) are not
supported; a Secret that holds only those says so in the app's error.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING

from gitmoor.model import ObjectRef, UserInputError
from gitmoor.render import DecryptionKeys
from gitmoor.secrets.agekeys import parse_identities

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.model.redaction import Decryption

log = logging.getLogger(__name__)

AGE_KEY_SUFFIX = ".agekey"
_AGE_PREFIX = "AGE-SECRET-KEY-1"


def keys_from_secret(secret: dict[str, object], where: str) -> DecryptionKeys:
    """The age keys of a Secret object; ``missing`` says why there are none."""
    data = secret.get("data")
    entries = data if isinstance(data, dict) else {}
    keys: list[str] = []
    unsupported: list[str] = []
    for name, value in sorted(entries.items()):
        if not isinstance(value, str):
            continue
        if not name.endswith(AGE_KEY_SUFFIX):
            if name.endswith((".asc", ".gpg", ".pgp")):
                unsupported.append(f"{name} (PGP)")
            continue
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            unsupported.append(f"{name} (not text)")
            continue
        lines = [ln.strip() for ln in text.splitlines()]
        found = [ln for ln in lines if ln.startswith(_AGE_PREFIX) and _parses(ln)]
        if len(found) < sum(1 for ln in lines if ln.startswith(_AGE_PREFIX)):
            # One malformed key (a bad checksum, a truncated copy) would make sops
            # refuse every key given with it: left out, and said.
            unsupported.append(f"{name} (a malformed AGE-SECRET-KEY-1 line, left out)")
        elif not found and any(ln and not ln.startswith("#") for ln in lines):
            # AGE-PLUGIN-… identities and anything else sops could not use here.
            unsupported.append(f"{name} (not an age X25519 key)")
        keys.extend(found)
    if keys:
        if unsupported:
            log.warning(
                "event=decryption_keys_skipped secret=%s entries=%s", where, ",".join(unsupported)
            )
        return DecryptionKeys(secret=where, age=tuple(keys))
    reason = f"the Secret {where} holds no age private key (an entry NAME{AGE_KEY_SUFFIX})"
    if unsupported:
        reason += "; unsupported key type: " + ", ".join(unsupported)
    return DecryptionKeys(secret=where, missing=reason)


def _parses(line: str) -> bool:
    try:
        parse_identities([line], "key")
    except UserInputError:
        return False
    return True


async def load_decryption_keys(
    kube: KubeClient, namespace: str, decryption: Decryption
) -> DecryptionKeys:
    """The keys of ``decryption``'s Secret in ``namespace`` (the apps namespace).

    A missing Secret is not an error here: an app whose files are not encrypted
    renders without it, and one whose files are says which file it could not
    decrypt, and why."""
    where = f"{namespace}/{decryption.secret_name}"
    secret = await kube.get(ObjectRef("", "v1", "Secret", namespace, decryption.secret_name))
    if secret is None:
        return DecryptionKeys(secret=where, missing=f"the decryption Secret {where} does not exist")
    return keys_from_secret(secret, where)
