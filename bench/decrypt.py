"""What decrypting SOPS files costs a render: `uv run python bench/decrypt.py`.

A directory app of 200 ConfigMaps and N Secrets, rendered cold (no render
cache) with no encrypted file, then with N SOPS-encrypted Secrets (each one
`sops --decrypt` run, in a private hard-linked copy of the checkout), and a
kustomize app whose secretGenerator reads an encrypted env file. Files are
encrypted by the real sops for a key made by the real age-keygen; prints
key=value lines (median of 5 runs each).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gitmoor.render import DecryptionKeys, RenderOptions, render_app
from gitmoor.render.proc import _from_tool_cache
from support.sops import age_keygen, sops_encrypt

RUNS = 5


def _tools_on_path() -> None:
    sops = _from_tool_cache("sops")
    if sops is not None:
        os.environ["PATH"] = f"{sops.parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _median(fn: object) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    _tools_on_path()
    tmp = Path(tempfile.mkdtemp(prefix="bench-decrypt-"))
    key = age_keygen(tmp / "keys")
    keys = RenderOptions(decryption=DecryptionKeys(secret="bench/sops-age", age=(key.identity,)))
    for n in (1, 10, 50):
        # The same app twice: its Secrets in plaintext, and encrypted.
        for encrypted in (False, True):
            app = tmp / f"repo{n}-{encrypted}" / "app"
            app.mkdir(parents=True)
            for i in range(200):
                (app / f"cm{i}.yaml").write_text(
                    f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i}\ndata:\n  k: v{i}\n"
                )
            for i in range(n):
                secret = (
                    f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\n"
                    f"stringData:\n  password: value-{i}\n"
                )
                if encrypted:
                    secret = sops_encrypt(secret, [key.recipient], kind="yaml", home=tmp / "h")
                (app / f"secret{i}.yaml").write_text(secret)
        plain_root, enc_root = tmp / f"repo{n}-False", tmp / f"repo{n}-True"
        plain = _median(lambda r=plain_root: render_app(r, "app", "r", keys))  # type: ignore[misc]
        decrypted = _median(lambda r=enc_root: render_app(r, "app", "r", keys))  # type: ignore[misc]
        print(
            f"directory_app configmaps=200 secrets={n} render_plaintext_s={plain:.3f} "
            f"render_encrypted_s={decrypted:.3f} per_encrypted_file_ms="
            f"{(decrypted - plain) / n * 1000:.1f}",
            flush=True,
        )
    root = tmp / "kustomize"
    (root / "app").mkdir(parents=True)
    (root / "app" / "kustomization.yaml").write_text(
        "secretGenerator:\n- name: gen\n  envs: [creds.env]\n"
    )
    (root / "app" / "creds.env").write_text(
        sops_encrypt("TOKEN=abc\nUSER=admin\n", [key.recipient], kind="dotenv", home=tmp / "h")
    )
    seconds = _median(lambda: render_app(root, "app", "r", keys))
    print(f"kustomize_secret_generator encrypted_env_files=1 render_with_keys_s={seconds:.3f}")


if __name__ == "__main__":
    main()
