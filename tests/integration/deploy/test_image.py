"""The container image of ``make image`` (``image/build.sh``), run as a cluster would run it.

No container runtime is needed, nor available here: umoci unpacks the OCI layout
into a root filesystem, and each command runs in a private mount namespace where
that filesystem is mounted read-only with tmpfs on the image's two volumes (``/tmp``
and ``/cache``, the ``emptyDir``s of deploy/), then ``chroot`` into it as the
image's user with the image's environment, which is what the Deployment's
``readOnlyRootFilesystem: true`` and ``runAsUser: 65532`` ask of a kubelet.

The image is built once for this module into a temporary directory (about a
minute warm; the Debian root filesystem is cached per day in
``~/.cache/gitmoor/image``, about a minute more when cold). Needs root (chroot,
mount namespaces), ``mmdebstrap`` and ``umoci`` (``make image-tools``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from packaging.markers import Marker

import gitmoor

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[3]
UID = 65532

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="building and running the image needs root (mmdebstrap, chroot)"
)


@dataclass(frozen=True)
class Image:
    out: Path  # image/build.sh's IMAGE_OUT: oci/, digest, reference, sbom.json
    rootfs: Path  # the image unpacked by umoci
    config: dict[str, Any]  # the OCI image config's "config" (User, Env, Entrypoint, ...)
    digest: str

    def run(
        self, argv: list[str], *, mounts: dict[str, Path] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` in the image: read-only root, tmpfs volumes, the image's user and env.

        ``mounts`` bind host directories read-only at the given image paths."""
        root = shlex.quote(str(self.rootfs))
        setup = [
            f"mount --bind {root} {root}",
            f"mount -o remount,bind,ro {root}",
        ]
        # A runtime's /dev (runc mounts a tmpfs with these nodes); the image has none.
        setup.append(f"mount -t tmpfs -o mode=0755 tmpfs {root}/dev")
        for node in ("null", "zero", "full", "random", "urandom", "tty"):
            setup.append(f"touch {root}/dev/{node} && mount --bind /dev/{node} {root}/dev/{node}")
        for volume in self.config.get("Volumes", {}):
            setup.append(f"mount -t tmpfs -o uid={UID},gid={UID},mode=0755 tmpfs {root}{volume}")
        for target, source in (mounts or {}).items():
            setup.append(f"mount --bind {shlex.quote(str(source))} {root}{target}")
            setup.append(f"mount -o remount,bind,ro {root}{target}")
        user = self.config["User"]
        env = ["/usr/bin/env", "-i", *self.config["Env"]]
        workdir = self.config.get("WorkingDir", "/")
        inner = f"cd {shlex.quote(workdir)} && exec " + shlex.join(argv)
        chroot = shlex.join(["chroot", f"--userspec={user}", str(self.rootfs), *env, "sh", "-c"])
        script = " && ".join([*setup, f"{chroot} {shlex.quote(inner)}"])
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _blob(layout: Path, digest: str) -> dict[str, Any]:
    algo, _, hexdigest = digest.partition(":")
    data: dict[str, Any] = json.loads((layout / "blobs" / algo / hexdigest).read_text())
    return data


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    for tool in ("mmdebstrap", "umoci", "unshare"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: make image-tools (apt-get install mmdebstrap umoci)")
    work = Path(tempfile.mkdtemp(prefix="gitmoor-image-test-"))
    try:
        out = work / "out"
        env = {**os.environ, "IMAGE_OUT": str(out)}
        built = subprocess.run(
            ["bash", str(REPO / "image" / "build.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert built.returncode == 0, built.stderr[-4000:]
        digest = (out / "digest").read_text().strip()
        # What `make image` prints last: the digest, then the pinned reference.
        assert built.stdout.split() == [digest, f"ghcr.io/gitmoor/gitmoor@{digest}"]

        layout = out / "oci"
        index = json.loads((layout / "index.json").read_text())
        (entry,) = index["manifests"]
        assert entry["digest"] == digest
        tag = entry["annotations"]["org.opencontainers.image.ref.name"]
        manifest = _blob(layout, digest)
        config = _blob(layout, manifest["config"]["digest"])["config"]

        rootfs = work / "rootfs"
        subprocess.run(
            ["umoci", "raw", "unpack", "--image", f"{layout}:{tag}", str(rootfs)],
            capture_output=True,
            check=True,
            timeout=600,
        )
        yield Image(out=out, rootfs=rootfs, config=config, digest=digest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_layers_are_complete_tar_archives_with_their_diff_ids(image: Image) -> None:
    # What a registry client checks on pull (containerd, Docker: Go's archive/tar
    # and the config's diff_ids); Debian's umoci 0.4.7 `insert` once wrote layers
    # without the end-of-archive blocks, which they refuse with "unexpected EOF".
    layout = image.out / "oci"
    manifest = _blob(layout, image.digest)
    config = _blob(layout, manifest["config"]["digest"])
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert len(manifest["layers"]) == len(config["rootfs"]["diff_ids"]) == 2
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        blob = layout / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")
        assert blob.stat().st_size == layer["size"]
        with gzip.open(blob) as raw:
            data = raw.read()
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == diff_id
        assert data.endswith(b"\0" * 1024)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = tar.getnames()
        assert names, layer["digest"]
    # The top layer holds gitmoor.
    assert "usr/local/bin/gitmoor" in names


def test_entrypoint_prints_the_version_as_nonroot_on_a_read_only_root(image: Image) -> None:
    # deploy/ runs the pod as 65532 with readOnlyRootFilesystem: the image must
    # work exactly so, with writes going only to its volumes.
    assert image.config["User"] == f"{UID}:{UID}"
    assert set(image.config["Volumes"]) == {"/tmp", "/cache"}
    env = dict(e.split("=", 1) for e in image.config["Env"])
    assert env["HOME"] == "/cache" and env["GITMOOR_CACHE_DIR"] == "/cache/gitmoor"

    done = image.run([*image.config["Entrypoint"], "version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gitmoor {gitmoor.__version__}"

    done = image.run(["sh", "-c", "id -u; touch /probe || echo refused; touch /tmp/probe /cache/p"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(UID), "refused"]
    assert "Read-only file system" in done.stderr


def test_renders_kustomize_and_helm_inside_the_image_as_the_tests_do(image: Image) -> None:
    # The image ships the kubectl (kustomize), helm, git of the tests: rendering
    # the examples inside it gives byte for byte what the test machine renders.
    host_gitmoor = Path(sys.executable).with_name("gitmoor")
    cases = [
        ["--root", "{root}", "{root}/apps/guestbook/overlays/prod"],
        ["{root}/apps/dashboard", "-f", "values-prod.yaml"],
    ]
    for case in cases:
        inside = image.run(
            ["gitmoor", "render", *(a.format(root="/mnt") for a in case)],
            mounts={"/mnt": REPO / "examples"},
        )
        assert inside.returncode == 0, inside.stderr
        host = subprocess.run(
            [str(host_gitmoor), "render", *(a.format(root=REPO / "examples") for a in case)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert "kind: Deployment" in inside.stdout
        assert inside.stdout == host.stdout

    done = image.run(["git", "--version"])
    assert done.stdout.startswith("git version "), done.stderr


def _locked_runtime_packages() -> dict[str, str]:
    exported = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted: dict[str, str] = {}
    for line in exported.splitlines():
        requirement, _, marker = line.partition(";")
        if not requirement or requirement.startswith((" ", "#", "-")):
            continue
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue  # e.g. colorama, Windows only
        name, _, version = requirement.strip().partition("==")
        wanted[re.sub(r"[-_.]+", "-", name).lower()] = version
    return wanted


def test_sbom_lists_debian_python_and_the_tools_of_the_tests(image: Image) -> None:
    inside = json.loads((image.rootfs / "usr/share/doc/gitmoor/sbom.json").read_text())
    beside = json.loads((image.out / "sbom.json").read_text())
    assert inside == beside
    assert inside["spdxVersion"] == "SPDX-2.3"

    by_kind: dict[str, dict[str, str]] = {"deb": {}, "pypi": {}, "golang": {}}
    for package in inside["packages"]:
        for ref in package.get("externalRefs", []):
            kind = ref["referenceLocator"].split("/", 1)[0].removeprefix("pkg:")
            by_kind[kind][package["name"]] = package["versionInfo"]

    # Debian's packages, with the versions dpkg installed in the image.
    status = (image.rootfs / "var/lib/dpkg/status").read_text()
    for name in ("python3", "git", "openssh-client", "ca-certificates", "libc6"):
        match = re.search(
            rf"^Package: {re.escape(name)}\n(?:.+\n)*?Version: (.+)$", status, re.MULTILINE
        )
        assert match is not None, name
        assert by_kind["deb"][name] == match.group(1)

    # Every locked runtime dependency at its locked version, and gitmoor itself.
    python = {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in by_kind["pypi"].items()}
    assert python.pop("gitmoor") == gitmoor.__version__
    assert python == _locked_runtime_packages()

    # The tool versions testenv/build.sh builds for the tests; kubectl the one on PATH.
    build_sh = (REPO / "testenv" / "build.sh").read_text()
    for tool in ("helm", "sops", "age"):
        pinned = re.search(rf'^{tool}_version="(v[^"]+)"', build_sh, re.MULTILINE)
        assert pinned is not None
        assert by_kind["golang"][tool] == pinned.group(1)
    client = json.loads(
        subprocess.run(
            ["kubectl", "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert by_kind["golang"]["kustomize"] == client["kustomizeVersion"]
