"""The official ``sops`` and ``age-keygen`` binaries (built into the tool cache by
testenv/build.sh), run the way an author runs them, to make the encrypted files
the tests commit. Never ``sops --version``: it reaches for the network."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitmoor.render.proc import command_from_env

if TYPE_CHECKING:
    from pathlib import Path


def tool(name: str) -> str:
    return command_from_env(f"GITMOOR_{name.upper().replace('-', '_')}", name)[0]


@dataclass(frozen=True)
class AgeKey:
    identity: str  # AGE-SECRET-KEY-1...
    recipient: str  # age1...
    file: Path  # age-keygen's file (mode 0600)


def age_keygen(directory: Path, name: str = "key") -> AgeKey:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.txt"
    subprocess.run([tool("age-keygen"), "-o", str(path)], check=True, capture_output=True)
    text = path.read_text()
    identity = next(ln for ln in text.splitlines() if ln.startswith("AGE-SECRET-KEY-1"))
    recipient = next(ln for ln in text.splitlines() if ln.startswith("# public key: "))
    return AgeKey(identity, recipient.removeprefix("# public key: "), path)


def _env(home: Path, key: AgeKey | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
    if key is not None:
        env["SOPS_AGE_KEY_FILE"] = str(key.file)
    return env


def sops_encrypt(
    text: str,
    recipients: list[str],
    *,
    kind: str,
    home: Path,
    encrypted_regex: str | None = "^(data|stringData)$",
) -> str:
    """``text`` encrypted by the real sops for ``recipients``; ``kind`` is sops's
    input type (yaml, json, dotenv, binary). ``encrypted_regex`` applies to YAML
    and JSON only (Flux's recommended ``^(data|stringData)$`` by default)."""
    home.mkdir(parents=True, exist_ok=True)
    src = home / f"plain.{ {'dotenv': 'env', 'binary': 'bin'}.get(kind, kind) }"
    src.write_text(text)
    cmd = [tool("sops"), "--encrypt", "--age", ",".join(recipients)]
    cmd += ["--input-type", kind, "--output-type", kind]
    if encrypted_regex and kind in ("yaml", "json"):
        cmd += ["--encrypted-regex", encrypted_regex]
    out = subprocess.run(
        [*cmd, str(src)], check=True, capture_output=True, text=True, env=_env(home)
    ).stdout
    src.unlink()
    return out


def sops_decrypt(
    text: str, key: AgeKey, *, kind: str, home: Path
) -> subprocess.CompletedProcess[str]:
    """The real sops's decryption of ``text`` with ``key``: its result, not raised."""
    home.mkdir(parents=True, exist_ok=True)
    src = home / "enc.data"
    src.write_text(text)
    try:
        return subprocess.run(
            [tool("sops"), "--decrypt", "--input-type", kind, "--output-type", kind, str(src)],
            capture_output=True,
            text=True,
            env=_env(home, key),
        )
    finally:
        src.unlink()
