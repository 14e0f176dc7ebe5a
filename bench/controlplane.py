"""Figures for the local control plane: build, start, a Deployment's rollout, memory.

    uv run python bench/controlplane.py            # warm start, rollout, memory
    uv run python bench/controlplane.py --cold     # also a cold build into an empty cache (~10 min)

Prints one line per figure (key=value) so runs can be compared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from gitmoor.testenv import ControlPlane, find_binaries  # noqa: E402

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
"""


def rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def cold_build() -> float:
    cache = Path(tempfile.mkdtemp(prefix="gitmoor-bench-cache-"))
    gocache = Path(tempfile.mkdtemp(prefix="gitmoor-bench-gocache-"))
    env = {**os.environ, "GITMOOR_BIN_CACHE": str(cache), "GOCACHE": str(gocache)}
    t0 = time.monotonic()
    subprocess.run(["bash", str(REPO / "testenv" / "build.sh"), "k8s"], env=env, check=True)
    took = time.monotonic() - t0
    shutil.rmtree(cache)
    shutil.rmtree(gocache)
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", action="store_true", help="also time a cold build (~10 min)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.cold:
        print(
            f"cold_build_k8s_seconds={cold_build():.0f}  (module download cached, Go build cache empty)"
        )
    bins = find_binaries()
    starts, rollouts, rss = [], [], []
    for i in range(args.runs):
        home = Path(tempfile.mkdtemp(prefix="gitmoor-bench-cp-"))
        cp = ControlPlane(home=home / "cp", name=f"bench{i}")
        t0 = time.monotonic()
        cp.start(bins)
        starts.append(time.monotonic() - t0)
        try:
            env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
            subprocess.run(
                ["kubectl", "apply", "-f", "-"],
                input=DEPLOYMENT,
                text=True,
                env=env,
                check=True,
                capture_output=True,
            )
            t1 = time.monotonic()
            subprocess.run(
                ["kubectl", "wait", "deploy/web", "--for=condition=Available", "--timeout=60s"],
                env=env,
                check=True,
                capture_output=True,
            )
            rollouts.append(time.monotonic() - t1)
            rss.append(rss_mb([p.pid for p in cp.procs]))
        finally:
            cp.stop()
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"warm_start_to_ready_seconds median={statistics.median(starts):.2f} "
        f"all={[round(s, 2) for s in starts]}  (etcd, apiserver, controllers, kwok node Ready, leases held)"
    )
    print(
        f"deployment_3_replicas_apply_to_available_seconds median={statistics.median(rollouts):.2f} "
        f"all={[round(s, 2) for s in rollouts]}"
    )
    print(
        f"control_plane_rss_mb median={statistics.median(rss):.0f}  (etcd+apiserver+cm+scheduler+kwok)"
    )


if __name__ == "__main__":
    main()
