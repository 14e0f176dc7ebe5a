"""What `gitmoor lint` costs beside the seed's check: `uv run python bench/lint.py`.

A repository of one kustomize base of 25 objects (Deployments, Services,
ConfigMaps, a PodDisruptionBudget, an Ingress) and 20 overlays of it, each with
its own namespace, image tag and replicas: 500 objects rendered through 20
overlays (gitmoor lints the base on its own too: 525 checked). Measured in one
run, on the same files:

- ``gitmoor lint`` as a user runs it (a new process: start-up, imports,
  discovery, 21 kustomize renders, YAML, schema and policy checks), cold (the
  first run after the repository was written) and warm (median of the next
  runs: the OS caches hold the files, kubectl and Python);
- the seed's check on the same overlays: ``kubectl kustomize`` of each overlay
  into a file (the render the seed's CI needs too), then ``kubectl apply
  --dry-run=client -R -f`` over those rendered files. Client dry-run still asks
  the API server for discovery and the OpenAPI schema, so it needs a cluster:
  ``--kubeconfig`` (default: ``$KUBECONFIG``, else the local control plane at
  ``.local/cluster/kubeconfig``, else one started here).

Prints key=value lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from gitmoor.render.proc import _from_tool_cache  # noqa: E402

OVERLAYS = 20
BASE_OBJECTS = 25
WARM_RUNS = 3


def _deployment(i: int) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc{i}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: svc{i}}}
  template:
    metadata:
      labels: {{app: svc{i}}}
    spec:
      securityContext: {{runAsNonRoot: true}}
      containers:
      - name: main
        image: registry.example.com/shop/svc{i}:1.0.0
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}
        resources:
          requests: {{cpu: 50m, memory: 64Mi}}
          limits: {{memory: 128Mi}}
        securityContext: {{readOnlyRootFilesystem: true}}
"""


def _service(i: int) -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: svc{i}
spec:
  selector: {{app: svc{i}}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def _configmap(i: int) -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config{i}
data:
  LOG_LEVEL: info
  FEATURE_{i}: "on"
"""


EXTRA = {
    "pdb.yaml": """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: all
spec:
  maxUnavailable: 1
  selector: {}
""",
    "ingress.yaml": """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
spec:
  tls: [{hosts: [shop.example.com], secretName: shop-tls}]
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: svc0, port: {number: 80}}}
""",
}


def make_repo(root: Path) -> None:
    base = root / "shop" / "base"
    base.mkdir(parents=True)
    files: list[str] = []
    n = (BASE_OBJECTS - len(EXTRA)) // 3  # Deployment, Service and ConfigMap per service
    for i in range(n):
        for kind, text in (("deploy", _deployment(i)), ("svc", _service(i)), ("cm", _configmap(i))):
            name = f"{kind}{i}.yaml"
            (base / name).write_text(text)
            files.append(name)
    for name, text in EXTRA.items():
        (base / name).write_text(text)
        files.append(name)
    remaining = BASE_OBJECTS - len(files)
    for i in range(remaining):
        (base / f"extra-cm{i}.yaml").write_text(_configmap(100 + i))
        files.append(f"extra-cm{i}.yaml")
    (base / "kustomization.yaml").write_text("resources:\n" + "".join(f"- {f}\n" for f in files))
    for k in range(OVERLAYS):
        overlay = root / "shop" / "overlays" / f"env{k:02}"
        overlay.mkdir(parents=True)
        (overlay / "kustomization.yaml").write_text(
            f"namespace: shop-env{k:02}\nresources: [../../base]\n"
            f"images:\n- name: registry.example.com/shop/svc0\n  newTag: 1.{k}.0\n"
            f"replicas:\n- name: svc1\n  count: {1 + k % 3}\n"
        )
    (root / ".git").mkdir()


def _timed(cmd: list[str], **kw: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - started, done


def _kubeconfig(given: str | None) -> tuple[Path | None, object]:
    """A kubeconfig to dry-run against, and a control plane to stop (or None)."""
    if given:
        return Path(given), None
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"]), None
    local = ROOT / ".local" / "cluster" / "kubeconfig"
    if local.is_file():
        return local, None
    from gitmoor.testenv import ControlPlane, find_binaries

    cp = ControlPlane(
        home=Path(tempfile.mkdtemp(prefix="gitmoor-bench-lint-cp-")), name="bench-lint"
    )
    cp.start(find_binaries())
    return cp.kubeconfig, cp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", help="cluster for kubectl's client dry-run (see the docstring)")
    args, _unknown = ap.parse_known_args()  # bench/run.py passes its own arguments
    kubectl = shutil.which("kubectl") or str(_from_tool_cache("kubectl") or "kubectl")
    env = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="gitmoor-bench-lint-"))
    kubeconfig, cp = _kubeconfig(args.kubeconfig)
    try:
        repo = work / "repo"
        make_repo(repo)
        gitmoor = [sys.executable, "-m", "gitmoor.cli.main", "lint", "-o", "json", str(repo)]
        cold, first = _timed(gitmoor, env=env)
        if first.returncode not in (0, 1):
            raise SystemExit(f"gitmoor lint failed: {first.stderr}")
        report = json.loads(first.stdout)
        warm = [_timed(gitmoor, env=env)[0] for _ in range(WARM_RUNS)]

        rendered = work / "rendered"
        rendered.mkdir()
        render_times = []
        for overlay in sorted((repo / "shop" / "overlays").iterdir()):
            seconds, done = _timed([kubectl, "kustomize", str(overlay)], env=env)
            if done.returncode != 0:
                raise SystemExit(f"kubectl kustomize failed: {done.stderr}")
            (rendered / f"{overlay.name}.yaml").write_text(done.stdout)
            render_times.append(seconds)
        objects = sum(
            1 for f in rendered.iterdir() for line in f.read_text().splitlines() if line == "---"
        ) + len(list(rendered.iterdir()))
        dry = [kubectl, "--kubeconfig", str(kubeconfig), "apply", "--dry-run=client", "-R"]
        dry += ["-f", str(rendered)]
        dry_cold, done = _timed(dry, env=env)
        if done.returncode != 0:
            raise SystemExit(f"kubectl apply --dry-run=client failed: {done.stderr[:2000]}")
        dry_warm = [_timed(dry, env=env)[0] for _ in range(WARM_RUNS)]

        print(f"overlays={OVERLAYS} rendered_objects={objects}")
        print(
            f"gitmoor_lint_apps={len(report['apps'])} "
            f"gitmoor_lint_findings={len(report['findings'])} "
            f"gitmoor_lint_errors={report['errors']} gitmoor_lint_warnings={report['warnings']}"
        )
        print(f"gitmoor_lint_cold_seconds={cold:.3f}")
        print(f"gitmoor_lint_warm_seconds={statistics.median(warm):.3f}")
        print(f"kubectl_kustomize_render_seconds={sum(render_times):.3f}")
        print(f"kubectl_dry_run_client_cold_seconds={dry_cold:.3f}")
        print(f"kubectl_dry_run_client_warm_seconds={statistics.median(dry_warm):.3f}")
        seed = sum(render_times) + statistics.median(dry_warm)
        print(f"seed_check_warm_seconds={seed:.3f}  (render + client dry-run)")
        print(f"ratio_gitmoor_warm_to_seed_check={statistics.median(warm) / seed:.2f}  (aim < 1)")
        print(
            "ratio_gitmoor_warm_to_dry_run_alone="
            f"{statistics.median(warm) / statistics.median(dry_warm):.2f}"
        )
    finally:
        if cp is not None:
            cp.stop()  # type: ignore[attr-defined]
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
