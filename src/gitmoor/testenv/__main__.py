"""`python -m gitmoor.testenv up|down|status|user`: the local control plane from a shell.

`up` is idempotent: when a healthy control plane already runs from ``--home``
it is reused. The admin kubeconfig is written to ``<home>/kubeconfig``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from gitmoor.testenv.controlplane import ControlPlane, ControlPlaneError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gitmoor.testenv", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "user"])
    parser.add_argument("--home", type=Path, default=Path(".local/cluster"), help="state directory")
    parser.add_argument("--nodes", type=int, default=1, help="simulated nodes (up)")
    parser.add_argument("--name", default="gitmoor-local", help="cluster name (up)")
    parser.add_argument("--user", help="user name (user)")
    parser.add_argument("--group", action="append", default=[], help="group (user, repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    if args.command == "up":
        t0 = time.monotonic()
        try:
            plane, started = ControlPlane.ensure(args.home, nodes=args.nodes, name=args.name)
        except ControlPlaneError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if not started:
            print(f"event=control_plane_reused server={plane.server} kubeconfig={plane.kubeconfig}")
            return 0
        print(
            f"event=control_plane_up server={plane.server} seconds={time.monotonic() - t0:.1f}\n"
            f"  export KUBECONFIG={plane.kubeconfig}\n"
            f"  kubectl get nodes"
        )
        return 0
    if args.command == "down":
        cp = ControlPlane.load(args.home)
        if cp is None:
            print("event=control_plane_absent")
            return 0
        cp.stop()
        print("event=control_plane_down")
        return 0
    if args.command == "status":
        cp = ControlPlane.attach(args.home)
        if cp is None:
            print("event=control_plane_absent")
            return 1
        print(f"event=control_plane_up server={cp.server} kubeconfig={cp.kubeconfig}")
        return 0
    # user
    cp = ControlPlane.attach(args.home)
    if cp is None or not args.user:
        print("error: needs a running control plane and --user", file=sys.stderr)
        return 1
    print(cp.mint_kubeconfig(args.user, args.group))
    return 0


if __name__ == "__main__":
    sys.exit(main())
