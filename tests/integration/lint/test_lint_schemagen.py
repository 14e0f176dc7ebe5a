"""The schemas `gitmoor lint` ships are what `make schemas` makes from the real
API server: regenerated from the running control plane, they equal the
committed file (decoded: the JSON, not the gzip bytes), and a CRD the cluster
serves is left out of them."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import TYPE_CHECKING

from gitmoor.lint.schema import SCHEMA_DIR
from gitmoor.lint.schemagen import encode, fetch_schemas, generate, minor_version

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient


async def test_generator_reproduces_the_committed_schemas(
    kube: KubeClient, kubeconfig: Path, tmp_path: Path, app_crd: None
) -> None:
    # app_crd: gitmoor's own CRDs are installed, so the skip of extensions is exercised
    # what `make schemas` runs (its own event loop: a thread of its own here)
    written = await asyncio.to_thread(generate, kubeconfig, tmp_path)
    version = minor_version((await kube.get_raw("/version"))["gitVersion"])
    committed = SCHEMA_DIR / f"v{version}.json.gz"
    assert written.name == committed.name
    fresh = json.loads(gzip.decompress(written.read_bytes()))
    assert fresh == json.loads(gzip.decompress(committed.read_bytes()))
    assert fresh["kinds"]["apps/v1/Deployment"] == "io.k8s.api.apps.v1.Deployment"
    assert not any(k.startswith("gitmoor.io/") for k in fresh["kinds"])
    # descriptions are dropped: the file stays small enough to ship
    assert "description" not in json.dumps(fresh["definitions"]["io.k8s.api.core.v1.Container"])
    # the same server gives the same bytes (no timestamp in the gzip header)
    assert encode(await fetch_schemas(kube)) == written.read_bytes()
