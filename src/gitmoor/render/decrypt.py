"""SOPS-encrypted files, decrypted by the real ``sops`` before a render.

An app that names a decryption Secret (``spec.source.decryption``, Flux's
``spec.decryption``) is rendered from a private copy of its checkout in which
every SOPS-encrypted file has been replaced by its plaintext:

- **What is decrypted.** Every file of the repository (``.git`` aside) that
  holds a SOPS document: YAML or JSON manifests with a top-level ``sops``
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
  rendered: no key, a key for another recipient, a tampered value, a MAC
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
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
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
        return (
            f"{rel}: the keys in Secret {keys.secret} are not age private keys "
            "(AGE-SECRET-KEY-1…): that key type is not supported"
        )
    if "did not match any of the recipients" in text or "no master key was able" in text:
        recipients = ", ".join(_recipients(data)) or "no age recipient"
        return (
            f"{rel}: none of the age keys in Secret {keys.secret} can decrypt it; "
            f"it is encrypted for {recipients}"
        )
    first = next((line.strip() for line in stderr.splitlines() if line.strip()), "no reason given")
    return f"{rel}: sops could not decrypt it: {first[:300]}"


def _decrypt_file(
    source: Path, target: Path, kind: str, rel: str, keys: DecryptionKeys, timeout: float
) -> None:
    data = source.read_bytes()
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
        raise UserInputError(_explain(err.message, rel, keys, data), concerns=rel) from None


@dataclass(frozen=True, slots=True)
class Decrypted:
    """A checkout to render from, and what was decrypted in it."""

    root: Path
    #: repo-relative paths of the files that were decrypted
    files: frozenset[str] = frozenset()
    #: the values those files held (see ``plaintext_values``); memory only
    plaintext: frozenset[str] = field(default=frozenset(), repr=False)


@contextlib.contextmanager
def decrypted(root: Path, keys: DecryptionKeys, *, timeout: float) -> Iterator[Decrypted]:
    """The checkout ``root``, or, when it holds SOPS files, a private copy of it
    in which they are plaintext; the copy is removed on leaving.

    Raises ``UserInputError`` naming the first file that cannot be decrypted;
    no copy is left behind then either."""
    found = encrypted_files(root)
    if not found:
        yield Decrypted(root)
        return
    first_rel = found[0][0].relative_to(root).as_posix()
    if not keys.age:
        raise UserInputError(
            f"{first_rel} is encrypted with SOPS, but {keys.missing or 'no age key was given'}",
            concerns=first_rel,
        )
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="gitmoor-decrypt-"))  # mode 0700
    try:
        copy = tmp / "repo"
        _link_tree(root, copy)
        files = [(copy / p.relative_to(root), kind) for p, kind in found]
        # One sops process per file (about 20 ms each, mostly its start): a few at
        # once. The first failure in file order is the one reported.
        with ThreadPoolExecutor(max_workers=min(len(found), _PARALLEL)) as pool:
            runs = [
                pool.submit(
                    _decrypt_file,
                    path,
                    target,
                    kind,
                    target.relative_to(copy).as_posix(),
                    keys,
                    timeout,
                )
                for (path, kind), (target, _) in zip(found, files, strict=True)
            ]
            for run in runs:
                run.result()
        log.info(
            "event=decrypted files=%d secret=%s seconds=%.3f",
            len(found),
            keys.secret,
            time.monotonic() - started,
        )
        yield Decrypted(
            copy,
            frozenset(p.relative_to(copy).as_posix() for p, _ in files),
            frozenset(plaintext_values(files)),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------ checks on the render


def _secret_values(obj: JSONDict) -> Iterator[str]:
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


def check_no_sops(manifests: tuple[Manifest, ...], app_path: str) -> None:
    """Refuse a render that still holds SOPS data: the app names no decryption,
    or a file escaped it. ``ENC[…]`` strings would be applied as values."""
    for m in manifests:
        sops_block = isinstance(m.obj.get("sops"), dict)
        generated = m.ref.kind == "Secret" and any(
            v.startswith("ENC[AES256_GCM,") or v.startswith("sops_mac=")
            for v in _secret_values(m.obj)
        )
        if sops_block or generated:
            where = _where(m, app_path)
            raise UserInputError(
                f"{where} is encrypted with SOPS, but the app names no decryption: set "
                "spec.source.decryption.secretRef.name to the Secret that holds its age key",
                concerns=where,
            )


def plaintext_values(files: list[tuple[Path, str]]) -> set[str]:
    """Every value the decrypted ``files`` hold: string leaves of YAML and JSON
    (and, base64-decoded, a Secret's ``data``), env values, whole files (what a
    ``secretGenerator`` ``files`` entry takes). A generated Secret whose values
    all come from here was encrypted in Git."""
    values: set[str] = set()
    for path, kind in files:
        try:
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            continue
        values.add(text)
        if kind in ("dotenv", "ini"):
            for line in text.splitlines():
                if "=" in line and not line.lstrip().startswith(("#", ";")):
                    value = line.split("=", 1)[1].strip()
                    values.update((value, value.strip("'\"")))
        elif kind in ("yaml", "json"):
            with contextlib.suppress(yaml.YAMLError, RecursionError):
                for doc in yaml.safe_load_all(text):
                    values.update(_leaves(doc))
    return values


def _leaves(node: object) -> Iterator[str]:
    """Each scalar as text, and a string's base64 decoding too (a Secret's ``data``)."""
    for leaf in leaves(node):
        if leaf is None:
            continue
        text = str(leaf)
        yield text
        if isinstance(leaf, str):
            decoded = None
            with contextlib.suppress(binascii.Error, ValueError):
                decoded = base64.b64decode(leaf, validate=True).decode("utf-8", "replace")
            if decoded is not None:
                yield decoded


def check_encrypted_secrets(
    manifests: tuple[Manifest, ...],
    app_path: str,
    decrypted_files: set[str],
    plaintext: set[str],
) -> None:
    """``requireEncryptedSecrets``: every Secret with values came from a SOPS file.

    A manifest whose file is known counts when that file was decrypted. A Secret
    that kustomize generated has no file: it counts when each of its values is
    one a decrypted file held (a ``secretGenerator`` fed from an encrypted env
    file), and not when a value was written in the clear (``literals``, a plain
    env file)."""
    for m in manifests:
        if m.ref.kind != "Secret" or m.ref.group:
            continue
        values = list(_secret_values(m.obj))
        if not values:
            continue
        if m.source is not None and m.source.file:
            if _repo_file(m, app_path) in decrypted_files:
                continue
        elif all(v in plaintext for v in values):
            continue
        where = _where(m, app_path)
        raise UserInputError(
            f"{where} holds a plaintext Secret ({m.ref.name}), and the project requires "
            "Secrets to be encrypted with SOPS: encrypt it (`gitmoor secret encrypt`)",
            concerns=where,
        )


def _repo_file(m: Manifest, app_path: str) -> str:
    assert m.source is not None
    file = m.source.file
    return file if app_path in ("", ".") else f"{app_path.rstrip('/')}/{file}"
