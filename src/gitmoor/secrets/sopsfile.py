"""SOPS files with age recipients, read and written in Python (no ``sops`` binary).

Authors encrypt, edit and rotate the files that gitmoor decrypts at render time
with the real ``sops`` (``gitmoor.render.decrypt``), so what this module writes
must mean to sops v3.13 exactly what sops itself would have written. The facts
below are sops's (``sops.go``, ``aes/cipher.go``, ``stores/*``, ``age/keysource.go``):

- **Values.** Each leaf value is encrypted alone with AES-256-GCM under the
  file's 32-byte data key, with a fresh 32-byte IV and the value's path as
  additional data (the mapping keys that lead to it, each followed by ``:``;
  list indices are not part of it). It is written
  ``ENC[AES256_GCM,data:…,iv:…,tag:…,type:str|int|float|bool|time|comment]``. An
  empty string stays empty, ``null`` stays ``null``; keys are never encrypted.
- **Which values.** All of them, except those below a key ending in
  ``unencrypted_suffix`` (``_unencrypted`` by default), or only those below a key
  that matches ``encrypted_regex`` / ends in ``encrypted_suffix``, or all but
  those matching ``unencrypted_regex``: one rule per file, kept in the metadata.
- **MAC.** SHA-512 over the plaintext of every value in document order (with
  ``mac_only_encrypted``, only the encrypted ones, after a fixed 32-byte
  prefix), hex in upper case, encrypted like a value with the
  ``lastmodified`` timestamp (RFC 3339) as additional data. Comments are outside it.
- **Data key.** Encrypted for each age recipient, ASCII-armored, in
  ``sops.age[].enc``; any one identity of any recipient opens the file.
- **Formats** (:mod:`gitmoor.secrets.sopsstores`). YAML (every document of a
  multi-document file is a branch, each carries the same ``sops`` block, the MAC
  runs over all of them), JSON, dotenv (the metadata flattened into ``sops_*``
  lines, comments encrypted like values) and binary (the whole file is the value
  ``data`` of a JSON document).

Limits, each refused with a clear error rather than guessed: YAML comments are
not kept (PyYAML does not read them; sops encrypts them, and they are outside
the MAC, so dropping them changes no value), comment-driven rules
(``encrypted_comment_regex``) and Shamir key groups need the real ``sops``, and
a file with PGP or cloud KMS keys can be decrypted and edited here (its other
keys keep the same data key) but not rotated.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gitmoor.secrets import agekeys
from gitmoor.secrets.sopserrors import (
    MacMismatch,
    NoMatchingKey,
    NotSopsFile,
    SopsError,
    TamperedValue,
    UnsupportedFile,
)
from gitmoor.secrets.sopsstores import (
    FORMATS,
    Branch,
    Comment,
    Format,
    GoTime,
    emit_dotenv,
    emit_json,
    emit_plain,
    emit_yaml,
    format_float,
    load,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

#: the version written into ``sops.version``: the sops whose format this follows
SOPS_VERSION = "3.13.3"
DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"
#: what Flux's guide sets for Kubernetes Secrets: kind and name stay readable
SECRET_ENCRYPTED_REGEX = "^(data|stringData)$"
#: sops's MACOnlyEncryptedInitialization: sha256(b"sops")
_MAC_ONLY_ENCRYPTED_INIT = hashlib.sha256(b"sops").digest()


def _mac_digest(mac_only_encrypted: bool) -> hashlib._Hash:
    """The running SHA-512 of a file's MAC; with ``mac_only_encrypted`` it starts
    from sops's marker, so such a MAC never equals one over every value."""
    digest = hashlib.sha512()
    if mac_only_encrypted:
        digest.update(_MAC_ONLY_ENCRYPTED_INIT)
    return digest


_NONCE_BYTES = 32  # sops's nonceSize; AES-GCM with a 256-bit IV, as sops does
_TAG_BYTES = 16
_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_SOPS_KEY = "sops"
_DOTENV_PREFIX = "sops_"
_AGE_ID = re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+")


# --- rules and metadata ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncryptionRules:
    """Which values get encrypted: at most one of the four, as sops allows.

    With none given, sops's default applies: every value except those below a key
    ending in ``_unencrypted`` (for the binary format, simply the one value)."""

    encrypted_regex: str | None = None
    unencrypted_regex: str | None = None
    encrypted_suffix: str | None = None
    unencrypted_suffix: str | None = None
    #: the MAC covers only the encrypted values (sops's ``mac_only_encrypted``)
    mac_only_encrypted: bool = False

    @property
    def given(self) -> bool:
        return any(
            (
                self.encrypted_regex,
                self.unencrypted_regex,
                self.encrypted_suffix,
                self.unencrypted_suffix,
            )
        )

    def check(self, where: str) -> None:
        count = sum(
            bool(v)
            for v in (
                self.encrypted_regex,
                self.unencrypted_regex,
                self.encrypted_suffix,
                self.unencrypted_suffix,
            )
        )
        if count > 1:
            raise SopsError(
                "use only one of encrypted_regex, unencrypted_regex, encrypted_suffix "
                "and unencrypted_suffix (sops refuses more than one)",
                concerns=where,
            )
        for regex in (self.encrypted_regex, self.unencrypted_regex):
            if regex:
                try:
                    re.compile(regex)
                except re.error as e:
                    raise SopsError(
                        f"invalid regular expression {regex!r}: {e}", concerns=where
                    ) from e

    def encrypts(self, path: Sequence[str]) -> bool:
        """sops's ``shouldBeEncrypted`` for a value below ``path`` (mapping keys)."""
        encrypted = True
        if self.unencrypted_suffix and any(p.endswith(self.unencrypted_suffix) for p in path):
            encrypted = False
        if self.encrypted_suffix:
            encrypted = any(p.endswith(self.encrypted_suffix) for p in path)
        if self.unencrypted_regex and any(re.search(self.unencrypted_regex, p) for p in path):
            encrypted = False
        if self.encrypted_regex:
            encrypted = any(re.search(self.encrypted_regex, p) for p in path)
        return encrypted


@dataclass(frozen=True, slots=True)
class AgeStanza:
    """One age recipient of the data key and the data key encrypted for it (armored)."""

    recipient: str
    enc: str


@dataclass(frozen=True, slots=True)
class Metadata:
    """A file's ``sops`` block: what this module reads, and what it must write back."""

    age: tuple[AgeStanza, ...]
    rules: EncryptionRules
    lastmodified: str
    mac: str
    version: str = SOPS_VERSION
    #: key types other than age (pgp, kms, gcp_kms, azure_kv, hc_vault, hckms) kept
    #: verbatim: they encrypt the same data key, so an edit keeps them valid
    others: tuple[tuple[str, Any], ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(s.recipient for s in self.age)


def _to_bytes(value: Any) -> bytes:
    """sops's ``ToBytes``: what the MAC and the cipher see of a plaintext value."""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return format_float(value).encode()
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise SopsError(f"cannot encrypt a value of type {type(value).__name__}")


def _type_of(value: Any) -> str:
    if isinstance(value, GoTime):
        return "time"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def _parse_bool(text: str) -> bool:
    # Go's strconv.ParseBool
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


class _Cipher:
    """sops's AES-GCM value cipher, with its IV stash: a value decrypted and then
    encrypted again unchanged, under the same path, gets the same ciphertext, so an
    edit changes only the lines whose value changed (sops's ``aes.Cipher.stash``)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._stash: dict[tuple[str, str, str], bytes] = {}

    def encrypt(self, value: Any, aad: str, *, comment: bool = False) -> str:
        if value == "" and isinstance(value, str):
            return ""
        kind = "comment" if comment else _type_of(value)
        plain = _to_bytes(value)
        stash_key = (kind, plain.decode("utf-8", "surrogateescape"), aad)
        iv = self._stash.get(stash_key) or os.urandom(_NONCE_BYTES)
        out = self._aead.encrypt(iv, plain, aad.encode())
        data, tag = out[:-_TAG_BYTES], out[-_TAG_BYTES:]
        b64 = base64.b64encode
        return (
            f"ENC[AES256_GCM,data:{b64(data).decode()},iv:{b64(iv).decode()},"
            f"tag:{b64(tag).decode()},type:{kind}]"
        )

    def decrypt(self, text: str, aad: str) -> tuple[Any, str]:
        """The plaintext value and its sops type; ValueError/InvalidTag when it fails."""
        if text == "":
            return "", "str"
        m = _ENC.match(text)
        if m is None:
            raise ValueError("not an ENC[AES256_GCM,…] value")
        data, iv, tag = (base64.b64decode(m.group(i), validate=True) for i in (1, 2, 3))
        kind = m.group(4)
        if kind not in ("str", "int", "float", "bool", "bytes", "time", "comment"):
            raise ValueError(f"unknown value type {kind!r}")
        plain = _gcm_open(self._aead, iv, data + tag, aad.encode())
        text_value = plain.decode("utf-8", "surrogateescape")
        value: Any
        if kind == "int":
            value = int(text_value)
        elif kind == "float":
            value = float(text_value)
        elif kind == "bool":
            value = _parse_bool(text_value)
        elif kind == "time":
            value = GoTime(text_value)
        else:
            value = text_value
        stash_kind = "str" if kind == "bytes" else kind
        self._stash[(stash_kind, _to_bytes(value).decode("utf-8", "surrogateescape"), aad)] = iv
        return value, kind


def _gcm_open(aead: AESGCM, iv: bytes, data: bytes, aad: bytes) -> bytes:
    """AES-GCM open with whatever IV length the file carries (sops reads any)."""
    if not 8 <= len(iv) <= 128:
        raise ValueError("IV length out of range")
    return aead.decrypt(iv, data, aad)


def _walk(
    branches: list[Branch],
    on_leaf: Callable[[Any, list[str]], Any],
    on_comment: Callable[[Comment, list[str]], Comment],
    where: str,
) -> list[Branch]:
    """Each leaf in document order (sops's ``walkBranch``), rebuilt with ``on_leaf``'s
    result; ``path`` is the mapping keys that lead to it."""

    def value(v: Any, path: list[str]) -> Any:
        if isinstance(v, dict):
            return branch(v, path)
        if isinstance(v, list):
            return [value(item, path) for item in v]
        if v is None:
            return None
        return on_leaf(v, path)

    def branch(b: Branch, path: list[str]) -> Branch:
        out: Branch = {}
        for k, v in b.items():
            if isinstance(k, Comment):
                out[on_comment(k, path)] = None
                continue
            if not isinstance(k, str):
                raise SopsError(
                    f"the key {k!r} is not a string: sops supports only string keys",
                    concerns=where,
                )
            out[k] = value(v, [*path, k])
        return out

    return [branch(b, []) for b in branches]


# --- metadata in and out ----------------------------------------------------------

_OTHER_KEY_TYPES = ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms")
_RULE_FIELDS = ("encrypted_regex", "unencrypted_regex", "encrypted_suffix", "unencrypted_suffix")


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """sops's ``unflattenTreeBranch``: ``age__list_0__map_enc`` → ``{age: [{enc}]}``."""
    root: dict[Any, Any] = {}
    for key, value in flat.items():
        parts = re.split(r"(__map_|__list_)", key)
        tokens: list[Any] = [parts[0]]
        for sep, tok in zip(parts[1::2], parts[2::2], strict=True):
            tokens.append(("list", int(tok)) if sep == "__list_" and tok.isdigit() else tok)
        node = root
        for tok in tokens[:-1]:
            node = node.setdefault(tok, {})
        node[tokens[-1]] = value

    def build(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if node and all(isinstance(k, tuple) for k in node):
            return [build(v) for _, v in sorted(node.items(), key=lambda kv: kv[0][1])]
        return {k: build(v) for k, v in node.items()}

    result = build(root)
    assert isinstance(result, dict)
    return result


def _flatten(tree: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(v: Any, key: str) -> None:
        if isinstance(v, dict):
            for k, sub in v.items():
                walk(sub, f"{key}__map_{k}")
        elif isinstance(v, list):
            for i, sub in enumerate(v):
                walk(sub, f"{key}__list_{i}")
        else:
            out[key] = v

    for k, v in tree.items():
        walk(v, prefix + k)
    return out


def _metadata_tree(meta: Metadata, fmt: Format) -> dict[str, Any]:
    """The ``sops`` block as sops serialises it: keys sorted by name, empty ones left out."""
    tree: dict[str, Any] = {}
    if meta.age:
        tree["age"] = [{"enc": s.enc, "recipient": s.recipient} for s in meta.age]
    for name, value in meta.others:
        tree[name] = value
    for name in _RULE_FIELDS:
        value = getattr(meta.rules, name)
        if value:
            tree[name] = value
    tree["lastmodified"] = meta.lastmodified
    tree["mac"] = meta.mac
    if meta.rules.mac_only_encrypted:
        tree["mac_only_encrypted"] = True
    tree["version"] = meta.version
    return dict(sorted(tree.items()))


def _split_metadata(branches: list[Branch], fmt: Format, where: str) -> tuple[list[Branch], Any]:
    """The branches without sops metadata, and the first branch's raw ``sops`` tree
    (sops's ``ExtractMetadata``: the first document's block counts)."""
    if not branches:
        raise NotSopsFile("the file is empty: not a SOPS file", concerns=where)
    if fmt == "dotenv":
        first = branches[0]
        flat = {
            k[len(_DOTENV_PREFIX) :]: v
            for k, v in first.items()
            if isinstance(k, str) and k.startswith(_DOTENV_PREFIX)
        }
        if not flat:
            raise NotSopsFile("no sops_* metadata lines: not a SOPS file", concerns=where)
        rest = {
            k: v
            for k, v in first.items()
            if not (isinstance(k, str) and k.startswith(_DOTENV_PREFIX))
        }
        return [rest], _unflatten(flat)
    raw = branches[0].get(_SOPS_KEY)
    if raw is None:
        raise NotSopsFile("no top-level 'sops' metadata: not a SOPS file", concerns=where)
    if not isinstance(raw, dict):
        raise NotSopsFile("the 'sops' entry is not a mapping", concerns=where)
    return [{k: v for k, v in b.items() if k != _SOPS_KEY} for b in branches], raw


def _parse_metadata(raw: dict[str, Any], where: str) -> Metadata:
    if raw.get("key_groups"):
        raise UnsupportedFile(
            "the file uses key_groups (Shamir secret sharing): use the real sops for it",
            concerns=where,
        )
    if raw.get("encrypted_comment_regex") or raw.get("unencrypted_comment_regex"):
        raise UnsupportedFile(
            "the file uses encrypted_comment_regex/unencrypted_comment_regex, which depend "
            "on YAML comments: use the real sops for it",
            concerns=where,
        )
    stanzas = []
    for i, entry in enumerate(raw.get("age") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("recipient"), str):
            raise SopsError(f"sops.age[{i}] has no recipient", concerns=where)
        stanzas.append(AgeStanza(recipient=entry["recipient"], enc=str(entry.get("enc") or "")))
    others = tuple((k, raw[k]) for k in _OTHER_KEY_TYPES if raw.get(k))
    if not stanzas and not others:
        raise SopsError("the sops metadata names no key that can open the file", concerns=where)
    mac_only = raw.get("mac_only_encrypted")
    rules = EncryptionRules(
        **{name: (str(raw[name]) if raw.get(name) else None) for name in _RULE_FIELDS},
        mac_only_encrypted=mac_only is True or str(mac_only).lower() in ("true", "1"),
    )
    rules.check(where)
    lastmodified = raw.get("lastmodified")
    mac = raw.get("mac")
    if not isinstance(lastmodified, str) or not isinstance(mac, str):
        raise SopsError("the sops metadata has no lastmodified or mac", concerns=where)
    version = raw.get("version")
    return Metadata(
        age=tuple(stanzas),
        rules=rules,
        lastmodified=lastmodified,
        mac=mac,
        version=str(version) if version else SOPS_VERSION,
        others=others,
    )


def _effective_rules(rules: EncryptionRules, fmt: Format) -> EncryptionRules:
    """With no rule given, sops applies ``unencrypted_suffix: _unencrypted`` (and
    writes it), except for the binary format's single value."""
    if rules.given or fmt == "binary":
        return rules
    return replace(rules, unencrypted_suffix=DEFAULT_UNENCRYPTED_SUFFIX)


def _walk_rules(rules: EncryptionRules) -> EncryptionRules:
    """The rules a walk applies: a file that names none gets ``_unencrypted`` on
    reading, whatever its format (sops's ``metadata.ToInternal``)."""
    if rules.given:
        return rules
    return replace(rules, unencrypted_suffix=DEFAULT_UNENCRYPTED_SUFFIX)


def _mac_aad(lastmodified: str, where: str) -> str:
    """The MAC's additional data: ``lastmodified`` as Go's ``Format(time.RFC3339)``
    prints it after parsing (no fraction, ``Z`` for UTC)."""
    m = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(?:\.\d+)?([Zz]|[+-]\d{2}:\d{2})", lastmodified
    )
    if m is None:
        raise SopsError(
            f"sops.lastmodified {lastmodified!r} is not an RFC 3339 time", concerns=where
        )
    zone = m.group(2).upper()
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return m.group(1).upper() + zone


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the document -----------------------------------------------------------------


@dataclass
class SopsDocument:
    """An opened SOPS file: its plaintext tree, metadata and data key (in memory only).

    Obtained from :func:`open_document`; :meth:`plaintext` is what ``sops --decrypt``
    prints, :meth:`encrypt_plaintext` re-encrypts an edited plaintext with the same
    data key and recipients (what ``sops edit`` does)."""

    fmt: Format
    where: str
    branches: list[Branch]
    metadata: Metadata
    data_key: bytes = field(repr=False)
    _cipher: _Cipher = field(repr=False)

    def plaintext(self) -> bytes:
        return emit_plain(self.branches, self.fmt)

    def encrypt_plaintext(self, plain: str | bytes) -> str:
        """``plain`` (this document edited) encrypted with the same data key, rules and
        recipients; values left unchanged keep their ciphertext (sops's IV stash)."""
        data = plain.encode("utf-8", "surrogateescape") if isinstance(plain, str) else plain
        branches = load(data, self.fmt, self.where)
        _refuse_sops_key(branches, self.fmt, self.where)
        return _seal(branches, self.fmt, self.metadata, self.data_key, self._cipher, self.where)


def _refuse_sops_key(branches: list[Branch], fmt: Format, where: str) -> None:
    for b in branches:
        for k in b:
            if isinstance(k, str) and (
                k.startswith(_DOTENV_PREFIX) if fmt == "dotenv" else k == _SOPS_KEY
            ):
                raise SopsError(
                    f"the key {k!r} is reserved for SOPS metadata: the file is already "
                    "encrypted, or holds a key sops cannot keep",
                    concerns=where,
                )


def _seal(
    branches: list[Branch],
    fmt: Format,
    meta: Metadata,
    data_key: bytes,
    cipher: _Cipher,
    where: str,
) -> str:
    """Encrypt ``branches`` and emit them with ``meta`` (new MAC, new lastmodified):
    sops's ``EncryptTree`` followed by ``EmitEncryptedFile``."""
    rules = _walk_rules(meta.rules)
    digest = _mac_digest(rules.mac_only_encrypted)

    def leaf(v: Any, path: list[str]) -> Any:
        encrypted = rules.encrypts(path)
        if not rules.mac_only_encrypted or encrypted:
            digest.update(_to_bytes(v))
        return cipher.encrypt(v, ":".join(path) + ":") if encrypted else v

    def comment(c: Comment, path: list[str]) -> Comment:
        if not rules.encrypts(path):
            return c
        return Comment(cipher.encrypt(c.text, ":".join(path) + ":", comment=True), c.n)

    encrypted = _walk(branches, leaf, comment, where)
    lastmodified = _now()
    mac = cipher.encrypt(digest.hexdigest().upper(), _mac_aad(lastmodified, where))
    meta = replace(meta, lastmodified=lastmodified, mac=mac, version=SOPS_VERSION)
    tree = _metadata_tree(meta, fmt)
    if fmt == "dotenv":
        out = dict(encrypted[0])
        out.update(_flatten(tree, _DOTENV_PREFIX))
        return emit_dotenv([out])
    documents = [{**b, _SOPS_KEY: tree} for b in encrypted]
    if fmt == "yaml":
        return emit_yaml(documents)
    return emit_json(documents)


def _recover_data_key(meta: Metadata, identities: Sequence[str], where: str) -> bytes:
    ids = agekeys.parse_identities(identities, where)
    if not meta.age:
        raise NoMatchingKey(
            "the file is encrypted for no age recipient (only "
            + ", ".join(k for k, _ in meta.others)
            + "): use the real sops",
            concerns=where,
        )
    if not ids:
        raise NoMatchingKey(
            "no age identity was given; the file is encrypted for " + ", ".join(meta.recipients),
            concerns=where,
        )
    for stanza in meta.age:
        key = agekeys.decrypt_armored(stanza.enc, ids)
        if key is not None:
            if len(key) != 32:
                raise SopsError("the data key is not 32 bytes long", concerns=where)
            return key
    raise NoMatchingKey(
        "no given age identity matches a recipient of the file (it is encrypted for "
        + ", ".join(meta.recipients)
        + ")",
        concerns=where,
    )


def read_metadata(text: str | bytes, fmt: Format, *, where: str = "<input>") -> Metadata:
    """The ``sops`` block of a SOPS file (recipients, rules), without any key."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    _, raw = _split_metadata(load(data, "json" if fmt == "binary" else fmt, where), fmt, where)
    return _parse_metadata(raw, where)


def open_document(
    text: str | bytes, fmt: Format, identities: Sequence[str], *, where: str = "<input>"
) -> SopsDocument:
    """Decrypt a SOPS file and verify its MAC (sops's ``DecryptTree``).

    ``where`` names the file in errors. Raises :class:`NotSopsFile`,
    :class:`NoMatchingKey`, :class:`TamperedValue`, :class:`MacMismatch`,
    :class:`UnsupportedFile`; never with a plaintext value in the message."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    loaded = load(data, "json" if fmt == "binary" else fmt, where)
    branches, raw = _split_metadata(loaded, fmt, where)
    meta = _parse_metadata(raw, where)
    key = _recover_data_key(meta, identities, where)
    cipher = _Cipher(key)
    rules = _walk_rules(meta.rules)
    digest = _mac_digest(rules.mac_only_encrypted)

    def leaf(v: Any, path: list[str]) -> Any:
        encrypted = rules.encrypts(path)
        plain = v
        if encrypted:
            shown = "/".join(path) or "(top)"
            if not isinstance(v, str):
                raise TamperedValue(
                    f"the value at {shown} should be encrypted but is a plain {type(v).__name__}",
                    concerns=where,
                )
            try:
                plain, _ = cipher.decrypt(v, ":".join(path) + ":")
            except (InvalidTag, ValueError, binascii.Error) as e:
                raise TamperedValue(
                    f"the value at {shown} does not decrypt with the data key: it was "
                    "changed or damaged",
                    concerns=where,
                ) from e
        if not rules.mac_only_encrypted or encrypted:
            digest.update(_to_bytes(plain))
        return plain

    def comment(c: Comment, path: list[str]) -> Comment:
        if not rules.encrypts(path):
            return c
        try:
            text_value, _ = cipher.decrypt(c.text, ":".join(path) + ":")
        except (InvalidTag, ValueError, binascii.Error):
            return c  # sops keeps a comment it cannot decrypt (written by an older sops)
        return Comment(str(text_value), c.n)

    plain = _walk(branches, leaf, comment, where)
    try:
        stored, _ = cipher.decrypt(meta.mac, _mac_aad(meta.lastmodified, where))
    except (InvalidTag, ValueError, binascii.Error) as e:
        raise MacMismatch(
            "the MAC does not decrypt (sops.mac or sops.lastmodified was changed)",
            concerns=where,
        ) from e
    if stored != digest.hexdigest().upper():
        raise MacMismatch(
            "MAC mismatch: the values were changed, added, removed or reordered without the key",
            concerns=where,
        )
    return SopsDocument(fmt, where, plain, meta, key, cipher)


def decrypt_bytes(
    text: str | bytes, fmt: Format, identities: Sequence[str], *, where: str = "<input>"
) -> bytes:
    """The plaintext file (what ``sops --decrypt`` prints), MAC verified."""
    return open_document(text, fmt, identities, where=where).plaintext()


def decrypt(
    text: str | bytes, fmt: Format, identities: Sequence[str], *, where: str = "<input>"
) -> str:
    """The plaintext of a text SOPS file (YAML, JSON, dotenv), MAC verified; for the
    binary format use :func:`decrypt_bytes`."""
    return decrypt_bytes(text, fmt, identities, where=where).decode("utf-8", "surrogateescape")


def encrypt(
    plain: str | bytes,
    fmt: Format,
    recipients: Sequence[str],
    rules: EncryptionRules | None = None,
    *,
    where: str = "<input>",
) -> str:
    """``plain`` encrypted for the age ``recipients`` with a new data key
    (``sops --encrypt --age R1,R2``). Refuses a file that is already encrypted."""
    data = plain.encode("utf-8", "surrogateescape") if isinstance(plain, str) else plain
    if not recipients:
        raise SopsError("no age recipient given (--age or a .sops.yaml rule)", concerns=where)
    rules = _effective_rules(rules or EncryptionRules(), fmt)
    rules.check(where)
    branches = load(data, fmt, where)
    if fmt != "binary":
        _refuse_sops_key(branches, fmt, where)
    key = os.urandom(32)
    stanzas = tuple(
        AgeStanza(r, agekeys.encrypt_armored(key, r, where)) for r in _unique(recipients)
    )
    meta = Metadata(age=stanzas, rules=rules, lastmodified="", mac="")
    return _seal(branches, fmt, meta, key, _Cipher(key), where)


def rotate(
    text: str | bytes,
    fmt: Format,
    identities: Sequence[str],
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    where: str = "<input>",
) -> str:
    """The file re-encrypted under a NEW data key for its age recipients plus ``add``
    minus ``remove`` (``sops rotate --add-age/--rm-age``): a removed recipient's key
    cannot open the result, nor anything written after it."""
    doc = open_document(text, fmt, identities, where=where)
    meta = doc.metadata
    if meta.others:
        raise UnsupportedFile(
            "the file is also encrypted for "
            + ", ".join(k for k, _ in meta.others)
            + " keys, which cannot be re-encrypted here: use `sops rotate`",
            concerns=where,
        )
    # A recipient to remove that the file does not have is no error (sops's
    # RemoveMasterKeys): a directory-wide rotation removes a key from the files that have it.
    recipients = [r for r in _unique([*meta.recipients, *add]) if r not in set(remove)]
    if not recipients:
        raise SopsError("rotation would leave the file with no recipient", concerns=where)
    key = os.urandom(32)
    stanzas = tuple(AgeStanza(r, agekeys.encrypt_armored(key, r, where)) for r in recipients)
    return _seal(doc.branches, doc.fmt, replace(meta, age=stanzas), key, _Cipher(key), where)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i.strip() for i in items if i.strip()))


# --- detection --------------------------------------------------------------------

_BY_SUFFIX: dict[str, Format] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".env": "dotenv",
}


def format_for_path(path: str) -> Format:
    """sops's ``FormatForPath``: by the file name's suffix, binary otherwise."""
    name = path.lower()
    for suffix, fmt in _BY_SUFFIX.items():
        if name.endswith(suffix):
            return fmt
    return "binary"


def is_encrypted(text: str | bytes, fmt: Format) -> bool:
    """Whether ``text`` is a SOPS file of ``fmt`` (has sops metadata with a MAC)."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    try:
        loaded = load(data, "json" if fmt == "binary" else fmt, "<check>")
        _, raw = _split_metadata(loaded, fmt, "<check>")
    except SopsError:
        return False
    return isinstance(raw, dict) and "mac" in raw


def is_kubernetes_secret(plain: str | bytes, fmt: Format) -> bool:
    """Whether any document is a Kubernetes ``Secret`` (``apiVersion: v1``)."""
    if fmt not in ("yaml", "json"):
        return False
    data = plain.encode() if isinstance(plain, str) else plain
    try:
        branches = load(data, fmt, "<check>")
    except SopsError:
        return False
    return any(b.get("kind") == "Secret" and b.get("apiVersion") == "v1" for b in branches)


def find_identities(text: str) -> list[str]:
    """The age identities (``AGE-SECRET-KEY-1…``) in a key file's text; several per
    line are allowed, as in ``SOPS_AGE_KEY``."""
    return _AGE_ID.findall(text)


__all__ = [
    "DEFAULT_UNENCRYPTED_SUFFIX",
    "FORMATS",
    "SECRET_ENCRYPTED_REGEX",
    "SOPS_VERSION",
    "AgeStanza",
    "EncryptionRules",
    "Format",
    "MacMismatch",
    "Metadata",
    "NoMatchingKey",
    "NotSopsFile",
    "SopsDocument",
    "SopsError",
    "TamperedValue",
    "UnsupportedFile",
    "decrypt",
    "decrypt_bytes",
    "encrypt",
    "find_identities",
    "format_for_path",
    "is_encrypted",
    "is_kubernetes_secret",
    "open_document",
    "read_metadata",
    "rotate",
]
