"""SOPS-encrypted files, decrypted by the real ``sops`` before a render.

An app that names a decryption Secret (``spec.source.decryption``, Flux's
``spec.decryption``) is rendered from a private copy of its checkout in which
every SOPS-encrypted file has been replaced by its plaintext:

- **What is decrypted.** Every file of the repository outside hidden
  directories (``.git``; ``.venv`` in a working tree) that holds a SOPS document: YAML or JSON manifests with a top-level ``sops``
  block, dotenv files with ``sops_mac=``, INI files with a ``[sops]`` section,
  and sops's binary format (``{"data": "ENC[…]", "sops": {…}}``) under any
  other name. So an encrypted Secret manifest and an encrypted env file that a
  kustomize ``secretGenerator`` reads are both plaintext when kustomize runs,
  and kustomize's transformers (namespace, labels) act after decryption, where
  they cannot break the MAC. (Flux decrypts built objects and generator sources
  separately; one pass over the files covers both.)
- **Where.** In a fresh ``mkdtemp`` directory (mode 0700) outside the shared
  checkout: the checkout's files are hard-linked there (copied where links
  cannot be made), and each encrypted file's link is removed before ``sops``
  writes its plaintext in its place, so the checkout is never written. The
  directory is removed when the render is done, whatever happened.
- **How.** ``sops --decrypt`` with the keys in ``SOPS_AGE_KEY`` (its
  environment, never its argv) and a fresh ``HOME`` (no ``~/.ssh`` keys, no
  ``~/.config/sops/age/keys.txt`` of the controller's), shut in as every tool
  is (``proc``). sops verifies the MAC over the whole document.
- **Errors** name the file (repo-relative) and what to do, and leave nothing
  rendered, when the render reads that file (another team's file, encrypted for
  a key this app does not hold, holds nothing up): no key, a key for another recipient, a tampered value, a MAC
  mismatch, a key that is not an age key, a file encrypted for PGP or a cloud
  KMS only. sops's complaint is never passed on raw.

Without decryption, a render that holds SOPS data is refused too (``check_no_sops``):
applying ``ENC[AES256_GCM,…]`` strings as a Secret's values would break
whatever reads them, silently.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from gitmoor.model import UserInputError
from gitmoor.model.jsondata import leaves
from gitmoor.render.limits import MAX_FILE_BYTES
from gitmoor.render.proc import command_from_env, run_tool

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gitmoor.model import JSONDict, Manifest
    from gitmoor.render.base import DecryptionKeys

log = logging.getLogger(__name__)

#: sops's input types, by what the file name says (sops's own rule, ``formats.FormatForPath``)
_BY_SUFFIX = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".env": "dotenv", ".ini": "ini"}
_ENC = b"ENC[AES256_GCM,"
_YAML_SOPS = re.compile(rb"^sops:[ \t]*(?:#.*)?$", re.M)
_YAML_MAC = re.compile(rb"^[ \t]+mac:[ \t]", re.M)
_DOTENV_MAC = re.compile(rb"^sops_mac=", re.M)
_INI_SOPS = re.compile(rb"^\[sops\][ \t]*$", re.M)
_INI_MAC = re.compile(rb"^mac[ \t]*=", re.M)
#: age recipients as each format writes them (for "it is encrypted for ..." messages)
_RECIPIENT = re.compile(rb"(age1[0-9a-z]{58})")
#: sops processes run at once by one render
_PARALLEL = max(2, min(8, os.cpu_count() or 2))
_AGE_STANZA = re.compile(rb"(?:^[ \t-]*age:|sops_age__list_|\"age\"[ \t]*:|^age__list_)", re.M)


def sops_format(path: Path, data: bytes) -> str | None:
    """sops's input type for ``data`` (read from ``path``) if it is a SOPS
    document, else None. Cheap for the common case: no ``ENC[`` marker, no parse."""
    if _ENC not in data:
        return None
    kind = _BY_SUFFIX.get(path.suffix.lower())
    if kind == "dotenv":
        return "dotenv" if _DOTENV_MAC.search(data) else None
    if kind == "ini":
        return "ini" if _INI_SOPS.search(data) and _INI_MAC.search(data) else None
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("sops"), dict) and "mac" in doc["sops"]:
            # sops's binary format is JSON of exactly these two keys, whatever the name.
            if set(doc) == {"data", "sops"} and isinstance(doc["data"], str) and kind != "json":
                return "binary"
            return "json" if kind in ("json", None, "yaml") else None
        return None
    if kind == "yaml":
        return "yaml" if _YAML_SOPS.search(data) and _YAML_MAC.search(data) else None
    return None


def encrypted_files(root: Path) -> list[tuple[Path, str]]:
    """Every SOPS file of the checkout ``root`` with its sops input type, in a
    stable order. Symlinks are not followed (the render's own checks refuse
    the ones that leave the repository); files over ``MAX_FILE_BYTES`` are not
    read (no render reads them either)."""
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        # Hidden directories are skipped, as the directory renderer skips them:
        # .git, and in a working tree .venv, .local and the like, thousands of
        # files no render reads.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            try:
                st = path.lstat()
                if not path.is_file() or path.is_symlink() or st.st_size > MAX_FILE_BYTES:
                    continue
                data = path.read_bytes()
            except OSError:
                continue  # unreadable: the render says so if it reads it
            kind = sops_format(path, data)
            if kind is not None:
                found.append((path, kind))
    return found


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` mirrors ``src`` (``.git`` aside): files hard-linked where the file
    system allows, else copied; symlinks kept as links."""

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(
        src,
        dst,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git"),
        copy_function=link_or_copy,
    )


def _recipients(data: bytes) -> list[str]:
    return sorted({m.decode() for m in _RECIPIENT.findall(data)})


def _explain(stderr: str, rel: str, keys: DecryptionKeys, data: bytes) -> str:
    """sops's complaint as a sentence for the author; never sops's text itself,
    which names the controller's paths and environment variables."""
    text = stderr.lower()
    if "mac mismatch" in text:
        return (
            f"{rel}: its MAC does not match its content: the file was changed after it "
            "was encrypted (edit it with `gitmoor secret edit` or `sops`, never by hand)"
        )
    if "could not decrypt value" in text or "message authentication failed" in text:
        return (
            f"{rel}: an encrypted value does not decrypt: it was altered or corrupted "
            "after encryption; encrypt the file again"
        )
    if "unknown identity type" in text or "failed to parse" in text:
        # settings.decryption keeps only keys that parse as age X25519 keys, so
        # this is a key sops reads differently from age's own parser.
        return f"{rel}: sops could not read the keys in Secret {keys.secret} as age keys"
    if "did not match any of the recipients" in text or "no master key was able" in text:
        recipients = ", ".join(_recipients(data)) or "no age recipient"
        return (
            f"{rel}: none of the age keys in Secret {keys.secret} can decrypt it; "
            f"it is encrypted for {recipients}"
        )
    log.warning("event=decrypt_failed file=%s reason=unrecognised", rel)
    return (
        f"{rel}: sops could not decrypt it; `gitmoor secret decrypt {rel}` with the same "
        "key shows why"
    )


def _decrypt_file(
    source: Path, target: Path, kind: str, rel: str, keys: DecryptionKeys, timeout: float
) -> set[str]:
    """Replace ``target`` (the copy's link to ``source``) by the plaintext; the values
    that were encrypted. On failure ``target`` holds the ciphertext again, so a
    render that reads it is refused (``check_no_sops``) and one that does not is
    not held up by it."""
    data = source.read_bytes()
    if not keys.age:
        raise UserInputError(
            f"{rel} is encrypted with SOPS, but {keys.missing or 'no age key was given'}",
            concerns=rel,
        )
    if not _AGE_STANZA.search(data):
        raise UserInputError(
            f"{rel} is encrypted for PGP or a cloud KMS only: gitmoor decrypts with age "
            "keys; add an age recipient (`gitmoor secret rotate --add-age …`)",
            concerns=rel,
        )
    target.unlink()  # the hard link to the checkout's file: sops writes a new file
    cmd = [
        *command_from_env("GITMOOR_SOPS", "sops"),
        "--decrypt",
        "--input-type",
        kind,
        "--output-type",
        kind,
        "--output",
        str(target),
        "--",
        str(source),
    ]
    try:
        run_tool(
            cmd,
            what="sops",
            concerns=rel,
            timeout=timeout,
            env={"SOPS_AGE_KEY": "\n".join(keys.age)},
            scrub=(source.parent, target.parent),
        )
    except UserInputError as err:
        target.write_bytes(data)  # a new file, never the checkout's
        raise UserInputError(_explain(err.message, rel, keys, data), concerns=rel) from None
    return encrypted_values(data, target.read_bytes(), kind)


def encrypted_values(ciphertext: bytes, plaintext: bytes, kind: str) -> set[str]:
    """The plaintext of each value that was ``ENC[…]`` in ``ciphertext``, as a
    manifest would hold it (and, for a base64 string, decoded too). Values left
    readable (outside ``encrypted_regex``, ``_unencrypted`` keys) are not among
    them: they were never secret."""
    values: set[str] = set()
    if kind == "binary":
        values.add(plaintext.decode("utf-8", "replace"))
    elif kind in ("dotenv", "ini"):
        enc, plain = _env_pairs(ciphertext), _env_pairs(plaintext)
        for key, value in enc.items():
            if value.startswith("ENC[AES256_GCM,") and key in plain:
                values.update(_forms(plain[key]))
                values.update(_forms(plain[key].strip("'\"")))
    else:
        with contextlib.suppress(yaml.YAMLError, RecursionError, UnicodeDecodeError):
            enc_docs = list(yaml.safe_load_all(ciphertext.decode("utf-8")))
            plain_docs = list(yaml.safe_load_all(plaintext.decode("utf-8")))
            for enc_doc, plain_doc in zip(enc_docs, plain_docs, strict=False):
                _walk_encrypted(enc_doc, plain_doc, values)
    return values


def _env_pairs(data: bytes) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _walk_encrypted(enc: object, plain: object, values: set[str]) -> None:
    if isinstance(enc, dict) and isinstance(plain, dict):
        for key, value in enc.items():
            if key in plain:
                _walk_encrypted(value, plain[key], values)
    elif isinstance(enc, list) and isinstance(plain, list):
        for e, p in zip(enc, plain, strict=False):
            _walk_encrypted(e, p, values)
    elif isinstance(enc, str) and enc.startswith("ENC[AES256_GCM,") and plain is not None:
        values.update(_forms(plain if isinstance(plain, str) else json.dumps(plain)))


def _forms(value: str) -> set[str]:
    """``value``, and its base64 decoding when it is base64 (a Secret's ``data``)."""
    forms = {value}
    with contextlib.suppress(binascii.Error, ValueError):
        forms.add(base64.b64decode(value, validate=True).decode("utf-8"))
    return forms


@dataclass(frozen=True, slots=True)
class Decrypted:
    """A checkout to render from, and what was decrypted in it."""

    root: Path
    #: the values that were encrypted (``encrypted_values``); memory only
    secret_values: frozenset[str] = field(default=frozenset(), repr=False)
    #: why each file that could not be decrypted could not, by repo-relative path;
    #: raised only if the render reads that file (``check_no_sops``)
    failures: dict[str, UserInputError] = field(default_factory=dict)
    #: repo-relative paths of every SOPS file, decrypted or not
    sops_files: frozenset[str] = frozenset()


#: a private copy older than this was left by a process that was killed
_STALE_COPY_SECONDS = 3600.0
_COPY_PREFIX = "gitmoor-decrypt-"


def _sweep_stale_copies() -> None:
    """Remove the private copies a killed process left (SIGKILL, OOM): they hold
    plaintext. A live render's copy is seconds old, so an hour is safe."""
    tmp = Path(tempfile.gettempdir())
    cutoff = time.time() - _STALE_COPY_SECONDS
    with contextlib.suppress(OSError):
        for entry in tmp.glob(_COPY_PREFIX + "*"):
            with contextlib.suppress(OSError):
                if entry.is_dir() and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry)
                    log.warning("event=decrypt_leftover_removed path=%s", entry)


@contextlib.contextmanager
def decrypted(root: Path, keys: DecryptionKeys, *, timeout: float) -> Iterator[Decrypted]:
    """The checkout ``root``, or, when it holds SOPS files, a private copy of it
    in which they are plaintext; the copy is removed on leaving.

    Every SOPS file of the repository is tried, but one that cannot be decrypted
    (another team's key, a PGP-only file, a tampered value) fails the render only
    if the render reads it: its ciphertext stays in the copy, and
    ``check_no_sops`` names it with the reason from ``failures``."""
    found = encrypted_files(root)
    if not found:
        yield Decrypted(root)
        return
    rels = [p.relative_to(root).as_posix() for p, _ in found]
    if not keys.age:
        # Nothing can be decrypted: the checkout itself, with every file's reason.
        reason = keys.missing or "no age key was given"
        yield Decrypted(
            root,
            failures={
                rel: UserInputError(f"{rel} is encrypted with SOPS, but {reason}", concerns=rel)
                for rel in rels
            },
            sops_files=frozenset(rels),
        )
        return
    _sweep_stale_copies()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=_COPY_PREFIX))  # mode 0700
    try:
        copy = tmp / "repo"
        _link_tree(root, copy)
        values: set[str] = set()
        failures: dict[str, UserInputError] = {}
        # One sops process per file (about 20 ms each, mostly its start): a few at once.
        with ThreadPoolExecutor(max_workers=min(len(found), _PARALLEL)) as pool:
            runs = [
                pool.submit(_decrypt_file, path, copy / rel, kind, rel, keys, timeout)
                for (path, kind), rel in zip(found, rels, strict=True)
            ]
            for rel, run in zip(rels, runs, strict=True):
                try:
                    values |= run.result()
                except UserInputError as err:
                    failures[rel] = err
        log.info(
            "event=decrypted files=%d failed=%d secret=%s seconds=%.3f",
            len(found) - len(failures),
            len(failures),
            keys.secret,
            time.monotonic() - started,
        )
        yield Decrypted(copy, frozenset(values), failures, frozenset(rels))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp.exists():
            log.error("event=decrypt_copy_not_removed path=%s", tmp)


def scrub_values(err: UserInputError, values: frozenset[str]) -> UserInputError:
    """``err`` with every decrypted value (of 4 characters or more) it quotes
    replaced: kustomize or helm may echo a line of a decrypted file."""
    message = err.message
    for value in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
        message = message.replace(value, "<redacted>")
    if message == err.message:
        return err
    return UserInputError(message, concerns=err.concerns)


# ------------------------------------------------------------ checks on the render


def decoded_secret_values(obj: JSONDict) -> Iterator[str]:
    """A Secret's values as ``RenderResult.secret_values`` holds them: ``data``
    decoded from base64 (as written when it is not base64), ``stringData`` as
    written."""
    for section in ("data", "stringData"):
        values = obj.get(section)
        if not isinstance(values, dict):
            continue
        for value in values.values():
            if not isinstance(value, str):
                continue
            if section == "data":
                try:
                    yield base64.b64decode(value, validate=True).decode("utf-8", "replace")
                except (binascii.Error, ValueError):
                    yield value
            else:
                yield value


def _where(m: Manifest, app_path: str) -> str:
    if m.source is not None and m.source.file:
        return str(m.source)
    return f"the render of {app_path} ({m.ref.kind} {m.ref.name})"


_ENC_TOKEN = re.compile(r"ENC\[AES256_GCM,[^\]]*\]")


def _sops_token(obj: JSONDict) -> str | None:
    """Something of SOPS in ``obj`` that its file holds verbatim (to find which file
    it came from), or None: a ``sops`` block's MAC, an ``ENC[…]`` value in any
    field, or one a Secret's ``data`` holds base64-encoded (a generator fed an
    encrypted env file)."""
    block = obj.get("sops")
    if isinstance(block, dict):
        return str(block.get("mac") or "sops")
    for leaf in leaves(obj):
        if isinstance(leaf, str) and "ENC[AES256_GCM," in leaf:
            found = _ENC_TOKEN.search(leaf)
            return found.group(0) if found else leaf
    if obj.get("kind") == "Secret":
        for value in decoded_secret_values(obj):
            found = _ENC_TOKEN.search(value)
            if found:
                return found.group(0)
    return None


def check_no_sops(
    manifests: tuple[Manifest, ...],
    app_path: str,
    failures: dict[str, UserInputError] | None = None,
    root: Path | None = None,
) -> None:
    """Refuse a render that still holds SOPS data: ``ENC[…]`` strings would be
    applied as values. With ``failures`` (decryption was asked for), the error is
    the one of the file the data came from: the manifest's own file, else the
    failed file whose ciphertext (in the checkout ``root``) holds it."""
    for m in manifests:
        token = _sops_token(m.obj)
        if token is None:
            continue
        if failures:
            if m.source is not None and m.source.file:
                own = _repo_file(m, app_path)
                if own in failures:
                    raise failures[own]
            # The app's own files first: a copy of the same file elsewhere in the
            # repository holds the same MAC.
            inside = f"{app_path.rstrip('/')}/" if app_path not in ("", ".") else ""
            for rel, err in sorted(
                failures.items(), key=lambda item: (not item[0].startswith(inside), item[0])
            ):
                # A failed file holds its ciphertext in the render's checkout.
                with contextlib.suppress(OSError):
                    if root is None or token.encode() in (root / rel).read_bytes():
                        raise err
        where = _where(m, app_path)
        if failures is None:
            raise UserInputError(
                f"{where} is encrypted with SOPS, but the app names no decryption: set "
                "spec.source.decryption.secretRef.name to the Secret that holds its age key",
                concerns=where,
            )
        raise UserInputError(
            f"{where} holds SOPS-encrypted data that was not decrypted", concerns=where
        )


def check_encrypted_secrets(
    manifests: tuple[Manifest, ...],
    app_path: str,
    secret_values: frozenset[str],
    root: Path | None = None,
    sops_files: frozenset[str] = frozenset(),
) -> None:
    """``requireEncryptedSecrets``: every value of every Secret was encrypted in Git.

    Judged by value, whatever the renderer: a value counts when a SOPS file held
    it encrypted (``encrypted_values``), so a Secret from a file whose
    ``stringData`` was left readable, a ``secretGenerator`` literal or a plain env
    file are refused, and a Helm chart's Secret fed from an encrypted values file
    or a generator fed from an encrypted env file pass. And a manifest file that
    is not a SOPS file but spells a value out (in the checkout ``root``) is refused
    even when the same value is also encrypted elsewhere: it is in Git in clear."""
    for m in manifests:
        if m.ref.kind != "Secret" or m.ref.group:
            continue
        values = list(decoded_secret_values(m.obj))
        if all(v in secret_values for v in values) and not _spelled_out(
            m, app_path, root, sops_files
        ):
            continue
        where = _where(m, app_path)
        raise UserInputError(
            f"{where} holds a plaintext Secret ({m.ref.name}), and the project requires "
            "Secrets to be encrypted with SOPS: encrypt it (`gitmoor secret encrypt`)",
            concerns=where,
        )


def _spelled_out(m: Manifest, app_path: str, root: Path | None, sops_files: frozenset[str]) -> bool:
    """Whether the plain (not SOPS) file ``m`` came from holds one of its values as
    written (``stringData`` as is, ``data`` in base64)."""
    if root is None or m.source is None or not m.source.file:
        return False
    rel = _repo_file(m, app_path)
    if rel in sops_files:
        return False
    try:
        text = (root / rel).read_text("utf-8", errors="replace")
    except OSError:
        return False
    written = [
        v
        for section in ("data", "stringData")
        for v in (m.obj.get(section) or {}).values()
        if isinstance(v, str) and len(v) >= 4
    ]
    return any(v in text for v in written)


def _repo_file(m: Manifest, app_path: str) -> str:
    assert m.source is not None
    file = m.source.file
    return file if app_path in ("", ".") else f"{app_path.rstrip('/')}/{file}"
