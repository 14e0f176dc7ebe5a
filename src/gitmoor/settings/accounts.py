"""Local accounts, passwords and API tokens, kept as Argo CD keeps them.

Storage (Argo CD's ``argocd-cm``/``argocd-secret`` pair, ``util/settings/accounts.go``):

``gitmoor-cm`` (ConfigMap)
    ``accounts.<name>: "apiKey, login"``  an account and its capabilities
    ``accounts.<name>.enabled: "false"``  a disabled account
    ``admin.enabled: "false"``            the built-in ``admin`` disabled

``gitmoor-secret`` (Secret)
    ``admin.password`` / ``accounts.<name>.password``  argon2id hash (never the password)
    ``admin.passwordMtime`` / ``accounts.<name>.passwordMtime``  RFC 3339 time of the change
    ``admin.tokens`` / ``accounts.<name>.tokens``  JSON list of ``{id, iat, exp, hash}``
    ``server.secretkey``  the key that signs session cookies

Both carry ``app.kubernetes.io/part-of: gitmoor`` (the server watches that label)
and are merged key by key: ``gitmoor-secret`` also holds other components' keys
(webhook secrets), which a write here never drops.

``admin`` is built in: it exists without a ConfigMap key, can log in, and is
enabled unless ``admin.enabled: "false"`` (Argo CD's ``admin.enabled``).

Passwords are hashed with argon2id (argon2-cffi's defaults; Argo CD uses bcrypt).
API tokens are opaque random strings ``gmt_<id>.<secret>`` stored as a SHA-256
hash only, so the Secret never holds a usable credential and a token is shown
once. Argo CD issues JWTs for the same job and lists their ids in
``accounts.<name>.tokens``; an opaque token keeps revocation a plain list edit
and needs no key rotation story.

Every write reads the object, changes its keys and patches it with the
``resourceVersion`` it read (a 409 on a concurrent change, then a new read), so
two writers never lose each other's keys.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gitmoor.kube import ConflictError
from gitmoor.model import JSONDict, ObjectRef, PermanentError, RetryableError, UserInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.settings.accounts")

SETTINGS_CONFIGMAP = "gitmoor-cm"
RBAC_CONFIGMAP = "gitmoor-rbac-cm"
SETTINGS_SECRET = "gitmoor-secret"
PART_OF = ("app.kubernetes.io/part-of", "gitmoor")
SERVER_KEY = "server.secretkey"

ADMIN = "admin"
CAP_LOGIN = "login"
CAP_API_KEY = "apiKey"
CAPABILITIES = (CAP_LOGIN, CAP_API_KEY)

TOKEN_PREFIX = "gmt_"
#: account and token names: no dots, since a dot separates the parts of a key
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
MIN_PASSWORD = 8
#: argon2 works on any length; the cap only stops a megabyte "password" costing CPU
MAX_PASSWORD = 1024

#: The hasher every password goes through. Production keeps argon2-cffi's defaults
#: (RFC 9106's second recommended option); only tests may swap in a cheaper one.
#: A hash records its own parameters, so verification works whichever made it.
HASHER = PasswordHasher()

_WRITE_ATTEMPTS = 8


class AccountError(UserInputError):
    """An account operation the input makes impossible (unknown account, capability
    missing, bad password or token id)."""


class WrongPasswordError(PermanentError):
    """The password given to prove who the caller is does not match."""


# ---------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One API token as stored: never the token itself."""

    id: str
    #: issued at, Unix seconds
    iat: float
    #: expires at, Unix seconds; 0 for never
    exp: float
    hash: str = field(repr=False)

    def expired(self, now: float) -> bool:
        return self.exp > 0 and now >= self.exp

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "iat": self.iat, "exp": self.exp, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    enabled: bool
    capabilities: tuple[str, ...]
    password_hash: str = field(default="", repr=False)
    password_mtime: str = ""
    tokens: tuple[TokenEntry, ...] = ()

    @property
    def can_login(self) -> bool:
        return self.enabled and CAP_LOGIN in self.capabilities and bool(self.password_hash)

    @property
    def can_use_tokens(self) -> bool:
        return self.enabled and CAP_API_KEY in self.capabilities


def check_name(name: str, what: str = "account") -> str:
    if not _NAME.match(name):
        raise AccountError(
            f"{what} name {name!r} must be 1-63 letters, digits, '-' or '_' "
            "(starting with a letter or digit)",
            concerns=name,
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    return password


def key_of(account: str, suffix: str) -> str:
    """The settings key of one of an account's fields; ``admin``'s are ``admin.*``
    (Argo CD's ``admin.password``, ``admin.passwordMtime``, ``admin.tokens``)."""
    return f"{ADMIN}.{suffix}" if account == ADMIN else f"accounts.{account}.{suffix}"


def _data(obj: JSONDict | None) -> dict[str, str]:
    data = (obj or {}).get("data") or {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def secret_data(obj: JSONDict | None) -> dict[str, str]:
    """A Secret's ``data``, decoded; keys that do not decode are skipped (not ours
    to judge, and never logged)."""
    out = {}
    for k, v in _data(obj).items():
        try:
            out[k] = base64.b64decode(v, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return out


def _capabilities(text: str) -> tuple[str, ...]:
    caps = [c.strip() for c in text.split(",") if c.strip()]
    return tuple(c for c in CAPABILITIES if c in caps)


def parse_tokens(text: str | None) -> tuple[TokenEntry, ...]:
    """The ``tokens`` list of an account; malformed entries are skipped, so one
    hand-edited entry does not lock an account's other tokens out."""
    if not text:
        return ()
    try:
        raw = json.loads(text)
    except ValueError:
        log.warning("event=tokens_unreadable reason=not_json")
        return ()
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            out.append(
                TokenEntry(
                    str(item["id"]),
                    float(item.get("iat") or 0),
                    float(item.get("exp") or 0),
                    str(item["hash"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(out)


def parse_accounts(configmap: JSONDict | None, secret: JSONDict | None) -> dict[str, Account]:
    """Every account, from ``gitmoor-cm`` and ``gitmoor-secret`` as the API or a
    watch returns them."""
    cm = _data(configmap)
    sec = secret_data(secret)
    caps: dict[str, tuple[str, ...]] = {ADMIN: (CAP_LOGIN,)}
    disabled: set[str] = set()
    if cm.get(f"{ADMIN}.enabled", "").strip().lower() == "false":
        disabled.add(ADMIN)
    for key, value in cm.items():
        if not key.startswith("accounts."):
            continue
        rest = key[len("accounts.") :]
        if rest.endswith(".enabled"):
            name = rest[: -len(".enabled")]
            if value.strip().lower() == "false":
                disabled.add(name)
            continue
        if _NAME.match(rest):
            caps[rest] = _capabilities(value)
    return {
        name: Account(
            name,
            name not in disabled,
            c,
            sec.get(key_of(name, "password"), ""),
            sec.get(key_of(name, "passwordMtime"), ""),
            parse_tokens(sec.get(key_of(name, "tokens"))),
        )
        for name, c in sorted(caps.items())
    }


# ---------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    return HASHER.hash(password)


_dummy_hash: str | None = None


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = HASHER.hash(secrets.token_urlsafe(16))
    return _dummy_hash


def verify_password(account: Account | None, password: str) -> bool:
    """Does ``password`` open ``account``? argon2's verify compares in constant
    time; an unknown, disabled or password-less account still costs one verify
    against a dummy hash, so the answer's timing does not tell which names exist
    (Argo CD verifies against a dummy bcrypt hash for the same reason)."""
    if len(password) > MAX_PASSWORD:
        return False
    usable = account is not None and account.can_login
    stored = account.password_hash if usable and account is not None else _dummy()
    ok: bool
    try:
        ok = HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    return ok and usable


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- tokens


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(token_id: str) -> str:
    return f"{TOKEN_PREFIX}{token_id}.{secrets.token_urlsafe(32)}"


def token_id_of(token: str) -> str | None:
    """The id part of a ``gmt_<id>.<secret>`` token (None: not one of ours)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    tid, sep, rest = token[len(TOKEN_PREFIX) :].partition(".")
    return tid if sep and rest and _NAME.match(tid) else None


def verify_token(
    accounts: Iterable[Account], token: str, *, now: float | None = None
) -> tuple[Account, TokenEntry] | None:
    """The account and entry an API token belongs to, if it is valid now: known,
    not expired, its account enabled with the ``apiKey`` capability (Argo CD
    refuses a disabled account's tokens the same way). Ids are per account, so
    every entry with the token's id is compared; the hash comparison is
    constant-time."""
    tid = token_id_of(token)
    if tid is None or len(token) > 512:
        return None
    digest = token_hash(token)
    when = time.time() if now is None else now
    for account in accounts:
        for entry in account.tokens:
            # Bytes: a hand-edited, non-ASCII hash would make a str compare raise.
            if entry.id == tid and hmac.compare_digest(entry.hash.encode(), digest.encode()):
                if entry.expired(when) or not account.can_use_tokens:
                    return None
                return account, entry
    return None


# ---------------------------------------------------------------------- writes


def _configmap_ref(namespace: str, name: str = SETTINGS_CONFIGMAP) -> ObjectRef:
    return ObjectRef("", "v1", "ConfigMap", namespace, name)


def _secret_ref(namespace: str) -> ObjectRef:
    return ObjectRef("", "v1", "Secret", namespace, SETTINGS_SECRET)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _same(value: str) -> str:
    return value


#: a change to an object's keys: a value sets, None removes
Changes = dict[str, str | None]


async def _update(
    kube: KubeClient,
    ref: ObjectRef,
    compute: Callable[[JSONDict | None], Changes],
    *,
    create: bool = True,
) -> JSONDict | None:
    """Apply ``compute(current)``'s key changes to a settings object: create it
    (labelled part-of) when absent, else merge-patch only those keys with the
    read ``resourceVersion``, retrying on a conflict. Returns the object as
    written, or as read when nothing needed changing (None: absent and not created)."""
    is_secret = ref.kind == "Secret"
    for _ in range(_WRITE_ATTEMPTS):
        current = await kube.get(ref)
        changes = compute(current)
        meta = (current or {}).get("metadata") or {}
        labels = meta.get("labels") or {}
        needs_label = labels.get(PART_OF[0]) != PART_OF[1]
        if current is None and not create:
            return None
        present = secret_data(current) if is_secret else _data(current)
        changes = {k: v for k, v in changes.items() if present.get(k) != v}
        if current is not None and not changes and not needs_label:
            return current
        encode = _b64 if is_secret else _same
        try:
            if current is None:
                obj: JSONDict = {
                    "apiVersion": "v1",
                    "kind": ref.kind,
                    "metadata": {
                        "name": ref.name,
                        "namespace": ref.namespace,
                        "labels": {PART_OF[0]: PART_OF[1]},
                    },
                    "data": {k: encode(v) for k, v in changes.items() if v is not None},
                }
                if is_secret:
                    obj["type"] = "Opaque"
                return await kube.create(obj)
            patch: JSONDict = {
                "metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    "labels": {PART_OF[0]: PART_OF[1]},
                },
            }
            if changes:
                patch["data"] = {k: None if v is None else encode(v) for k, v in changes.items()}
            return await kube.merge_patch(ref, patch)
        except ConflictError:
            continue  # changed (or created) since we read it: read again
    raise RetryableError(
        f"{ref.name} kept changing while gitmoor wrote to it; try again", concerns=str(ref)
    )


async def read_accounts(kube: KubeClient, namespace: str) -> dict[str, Account]:
    cm = await kube.get(_configmap_ref(namespace))
    sec = await kube.get(_secret_ref(namespace))
    return parse_accounts(cm, sec)


def _account_in(cm: JSONDict | None, name: str) -> Account:
    account = parse_accounts(cm, None).get(name)
    if account is None:
        raise AccountError(
            f"account {name} does not exist (add accounts.{name} to {SETTINGS_CONFIGMAP})",
            concerns=name,
        )
    return account


async def ensure_server_key(kube: KubeClient, namespace: str) -> JSONDict:
    """``gitmoor-secret`` with a ``server.secretkey`` (created when absent); the
    Secret as written or read."""

    def compute(current: JSONDict | None) -> Changes:
        have = secret_data(current).get(SERVER_KEY)
        return {} if have else {SERVER_KEY: secrets.token_urlsafe(32)}

    written = await _update(kube, _secret_ref(namespace), compute)
    assert written is not None
    return written


async def ensure_settings(kube: KubeClient, namespace: str) -> str | None:
    """Create the settings objects an installation needs, keeping what is there:
    ``gitmoor-cm``, ``gitmoor-rbac-cm`` (``policy.default: ""``: deny, and an
    empty ``policy.csv``) and ``gitmoor-secret`` with a server key and, when no
    admin password is set, a generated one. Returns that generated password
    (shown once by ``gitmoor install``; only its hash is kept), else None, as
    Argo CD's ``argocd-initial-admin-secret`` is made only the first time."""
    await _update(kube, _configmap_ref(namespace), lambda _: {})

    def rbac_defaults(current: JSONDict | None) -> Changes:
        return {} if current is not None else {"policy.default": "", "policy.csv": ""}

    await _update(kube, _configmap_ref(namespace, RBAC_CONFIGMAP), rbac_defaults)
    generated: list[str] = []

    def secret(current: JSONDict | None) -> Changes:
        generated.clear()
        have = secret_data(current)
        changes: Changes = {}
        if not have.get(SERVER_KEY):
            changes[SERVER_KEY] = secrets.token_urlsafe(32)
        if not have.get(key_of(ADMIN, "password")):
            password = generate_password()
            generated.append(password)
            changes[key_of(ADMIN, "password")] = hash_password(password)
            changes[key_of(ADMIN, "passwordMtime")] = now_rfc3339()
        return changes

    await _update(kube, _secret_ref(namespace), secret)
    if generated:
        log.info("event=admin_password_generated namespace=%s", namespace)
    return generated[0] if generated else None


async def set_password(kube: KubeClient, namespace: str, account: str, password: str) -> JSONDict:
    """Store ``password``'s hash for ``account`` (which must exist); the Secret as written."""
    check_password(password)
    _account_in(await kube.get(_configmap_ref(namespace)), account)
    hashed = hash_password(password)

    def compute(_: JSONDict | None) -> Changes:
        return {
            key_of(account, "password"): hashed,
            key_of(account, "passwordMtime"): now_rfc3339(),
        }

    written = await _update(kube, _secret_ref(namespace), compute)
    assert written is not None
    log.info("event=password_set account=%s namespace=%s", account, namespace)
    return written


async def reset_password(
    kube: KubeClient, namespace: str, account: str, password: str | None = None
) -> str:
    """Set ``account``'s password with the cluster rights of the caller (the
    operator's recovery path, ``gitmoor admin reset-password``); returns the
    password set, generated when None."""
    chosen = password if password is not None else generate_password()
    await set_password(kube, namespace, account, chosen)
    return chosen


async def add_account(
    kube: KubeClient,
    namespace: str,
    name: str,
    capabilities: Iterable[str] = (CAP_LOGIN,),
    enabled: bool = True,
) -> JSONDict:
    """Declare (or redeclare) an account in ``gitmoor-cm``; the ConfigMap as written."""
    check_name(name)
    caps = list(capabilities)
    unknown = [c for c in caps if c not in CAPABILITIES]
    if unknown:
        raise AccountError(
            f"unknown capabilities {', '.join(unknown)} (known: {', '.join(CAPABILITIES)})"
        )

    def compute(_: JSONDict | None) -> Changes:
        if name == ADMIN:
            return {
                f"{ADMIN}.enabled": None if enabled else "false",
                "accounts.admin": ", ".join(caps),
            }
        return {
            f"accounts.{name}": ", ".join(caps),
            f"accounts.{name}.enabled": None if enabled else "false",
        }

    written = await _update(kube, _configmap_ref(namespace), compute)
    assert written is not None
    return written


async def add_token(
    kube: KubeClient,
    namespace: str,
    account: str,
    expires_in: float | None = None,
    token_id: str | None = None,
) -> tuple[str, str, JSONDict]:
    """Issue an API token for ``account``: (id, token, the Secret as written).
    The account needs the ``apiKey`` capability, as Argo CD requires."""
    acc = _account_in(await kube.get(_configmap_ref(namespace)), account)
    if not acc.enabled or CAP_API_KEY not in acc.capabilities:
        raise AccountError(
            f"account {account} cannot have API tokens: it needs the {CAP_API_KEY} "
            f"capability (accounts.{account}: {CAP_API_KEY}, {CAP_LOGIN}) and to be enabled",
            concerns=account,
        )
    if expires_in is not None and expires_in <= 0:
        raise AccountError("a token's lifetime must be positive (omit it for no expiry)")
    tid = check_name(token_id, "token id") if token_id else secrets.token_hex(8)
    token = new_token(tid)
    now = time.time()
    entry = TokenEntry(tid, round(now), round(now + expires_in) if expires_in else 0, "")
    key = key_of(account, "tokens")

    def compute(current: JSONDict | None) -> Changes:
        tokens = list(parse_tokens(secret_data(current).get(key)))
        if any(t.id == tid for t in tokens):
            raise AccountError(f"account {account} already has a token {tid}", concerns=tid)
        tokens.append(TokenEntry(entry.id, entry.iat, entry.exp, token_hash(token)))
        return {key: json.dumps([t.to_json() for t in tokens], separators=(",", ":"))}

    written = await _update(kube, _secret_ref(namespace), compute)
    assert written is not None
    log.info("event=token_generated account=%s token_id=%s exp=%d", account, tid, entry.exp)
    return tid, token, written


async def generate_token(
    kube: KubeClient,
    namespace: str,
    account: str,
    expires_in: float | None = None,
    token_id: str | None = None,
) -> tuple[str, str]:
    """(id, token): the token is shown to the caller once; only its hash is kept."""
    tid, token, _ = await add_token(kube, namespace, account, expires_in, token_id)
    return tid, token


async def remove_token(
    kube: KubeClient, namespace: str, account: str, token_id: str
) -> tuple[bool, JSONDict | None]:
    """Revoke one token: (whether it existed, the Secret as written or read)."""
    key = key_of(account, "tokens")
    found: list[bool] = []

    def compute(current: JSONDict | None) -> Changes:
        tokens = parse_tokens(secret_data(current).get(key))
        kept = [t for t in tokens if t.id != token_id]
        found[:] = [len(kept) != len(tokens)]
        if not found[0]:
            return {}
        return {key: json.dumps([t.to_json() for t in kept], separators=(",", ":"))}

    written = await _update(kube, _secret_ref(namespace), compute, create=False)
    if found and found[0]:
        log.info("event=token_revoked account=%s token_id=%s", account, token_id)
    return bool(found and found[0]), written


async def revoke_token(kube: KubeClient, namespace: str, account: str, token_id: str) -> bool:
    """Revoke ``account``'s token ``token_id``; False when there was none."""
    return (await remove_token(kube, namespace, account, token_id))[0]
