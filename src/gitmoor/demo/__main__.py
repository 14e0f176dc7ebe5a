"""`make demo`: the local control plane with the example app on it.

It starts (or reuses) the control plane of `make cluster`, deploys the example
guestbook's dev overlay, waits until it is Available and prints how to look at
it. The control plane keeps running afterwards; `make demo-down` stops it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from gitmoor.testenv import ControlPlane, ControlPlaneError

REPO = Path(__file__).resolve().parents[3]


def _kubectl(kubeconfig: Path, *args: str, input_text: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.run(
        ["kubectl", *args], env=env, input=input_text, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"error: kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m gitmoor.demo", description=__doc__)
    ap.add_argument("--home", type=Path, default=REPO / ".local" / "cluster")
    args = ap.parse_args()

    print("== 1. local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    t0 = time.monotonic()
    cp = ControlPlane.attach(args.home)
    if cp is None:
        stale = ControlPlane.load(args.home)
        if stale is not None:
            stale.stop()
        cp = ControlPlane(home=args.home, nodes=2)
        try:
            cp.start()
        except ControlPlaneError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"   started in {time.monotonic() - t0:.1f}s at {cp.server}")
    else:
        print(f"   reusing the one running at {cp.server}")
    kc = cp.kubeconfig
    print(_kubectl(kc, "get", "nodes", "-o", "wide").rstrip())

    overlay = REPO / "examples" / "apps" / "guestbook" / "overlays" / "dev"
    print(f"\n== 2. the example app: kubectl apply -k {overlay.relative_to(REPO)}")
    ns_yaml = _kubectl(kc, "create", "namespace", "guestbook-dev", "--dry-run=client", "-o", "yaml")
    _kubectl(kc, "apply", "-f", "-", input_text=ns_yaml)
    print(_kubectl(kc, "apply", "--server-side", "-k", str(overlay)).rstrip())
    t1 = time.monotonic()
    _kubectl(
        kc,
        "-n",
        "guestbook-dev",
        "wait",
        "deployment/guestbook",
        "--for=condition=Available",
        "--timeout=60s",
    )
    print(f"   Available after {time.monotonic() - t1:.1f}s")
    print(_kubectl(kc, "-n", "guestbook-dev", "get", "deploy,rs,pods,svc,cm").rstrip())

    print(
        "\n== Look around:\n"
        f"   export KUBECONFIG={kc}\n"
        "   kubectl get all -n guestbook-dev\n"
        "   make demo-down      # stop the control plane"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
