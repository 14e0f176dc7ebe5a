"""``make image-pin`` (image/pin.py): deploy/ names the built image by digest.

Rendered with the real kustomize (``kubectl kustomize``) on a copy of deploy/: the
default install and every overlay then run ``ghcr.io/gitmoor/gitmoor@sha256:…`` in
both Deployments, a second pin replaces the first, and unpinning (what the image's
own copy of deploy/ gets) gives back the files byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PIN = REPO / "image" / "pin.py"
TARGETS = (".", "overlays/ha", "overlays/namespaced", "overlays/impersonation")


@pytest.fixture
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl not found")
        pytest.skip("kubectl not found")
    return found


def images(kubectl: str, path: Path) -> set[str]:
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return {
        c["image"]
        for doc in yaml.safe_load_all(out)
        if doc and doc.get("kind") == "Deployment"
        for c in doc["spec"]["template"]["spec"]["containers"]
    }


def pin(*args: str) -> None:
    subprocess.run([sys.executable, str(PIN), *args], check=True, capture_output=True)


def test_pin_names_the_digest_everywhere_and_unpin_restores_the_files(
    kubectl: str, tmp_path: Path
) -> None:
    deploy = tmp_path / "deploy"
    shutil.copytree(REPO / "deploy", deploy)
    pin("--unpin", str(deploy))  # start from the tag, whatever the checkout pins
    before = {p: p.read_bytes() for p in deploy.rglob("kustomization.yaml")}
    assert images(kubectl, deploy) == {"ghcr.io/gitmoor/gitmoor:0.1.0"}

    first, second = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    pin("--deploy", str(deploy), first)
    pin("--deploy", str(deploy), second)
    for target in TARGETS:
        assert images(kubectl, deploy / target) == {f"ghcr.io/gitmoor/gitmoor@{second}"}, target

    pin("--unpin", str(deploy))
    assert {p: p.read_bytes() for p in deploy.rglob("kustomization.yaml")} == before


def test_pin_refuses_what_is_not_a_digest(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    shutil.copytree(REPO / "deploy", deploy)
    done = subprocess.run(
        [sys.executable, str(PIN), "--deploy", str(deploy), "0.1.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "not a sha256 digest" in done.stderr
