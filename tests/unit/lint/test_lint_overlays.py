"""``gitmoor lint --compare-overlays``: the seed's "dev 1.2, test 1.1, prod 1.3"
drift of one base's overlays, at a glance, and nothing that is the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

from gitmoor.lint.overlays import compare_overlays

if TYPE_CHECKING:
    from pathlib import Path

BASE = {
    "shop/base/kustomization.yaml": """\
resources: [deployment.yaml, secret.yaml]
configMapGenerator:
- name: shop-config
  literals: [LOG_LEVEL=info, CURRENCY=EUR]
""",
    "shop/base/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example.com/shop/web:1.0
        resources:
          requests: {cpu: 100m, memory: 128Mi}
      - name: proxy
        image: envoyproxy/envoy:v1.31.0
""",
    "shop/base/secret.yaml": """\
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: hunter2-base}
""",
}


def _overlay(env: str, tag: str, extra: str = "") -> dict[str, str]:
    return {
        f"shop/overlays/{env}/kustomization.yaml": f"""\
namespace: shop-{env}
namePrefix: {env}-
resources: [../../base]
images:
- name: registry.example.com/shop/web
  newTag: "{tag}"
configMapGenerator:
- name: shop-config
  behavior: merge
  literals: [LOG_LEVEL={"debug" if env == "dev" else "info"}]
{extra}"""
    }


PROD_EXTRA = """\
replicas:
- name: web
  count: 3
patches:
- path: bigger.yaml
"""
PROD_PATCH = {
    "shop/overlays/prod/bigger.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: web
        resources:
          requests: {cpu: 500m}
          limits: {memory: 512Mi}
""",
    "shop/overlays/prod/secret.yaml": """\
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: hunter2-prod, replica-password: hunter2-replica}
""",
}


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files = {
        **BASE,
        **_overlay("dev", "1.2"),
        **_overlay("test", "1.1"),
        **_overlay("prod", "1.3", PROD_EXTRA + "- path: secret.yaml\n"),
        **PROD_PATCH,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / ".git").mkdir()
    return root.resolve()


def test_differences_between_dev_test_and_prod(tmp_path: Path) -> None:
    root = _repo(tmp_path)

    (group,) = compare_overlays(root, [root])

    envs = ["shop/overlays/dev", "shop/overlays/prod", "shop/overlays/test"]
    assert group.base == "shop/base" and group.overlays == envs and not group.errors
    rows = {(d.object, d.field): [d.values[e] for e in envs] for d in group.differences}
    assert rows == {
        # generated names (hash) and the overlays' namePrefix do not split an object
        ("ConfigMap shop-config", "data.LOG_LEVEL"): ["debug", "info", "info"],
        ("Deployment web", "image[web]"): [
            "registry.example.com/shop/web:1.2",
            "registry.example.com/shop/web:1.3",
            "registry.example.com/shop/web:1.1",
        ],
        ("Deployment web", "replicas"): ["1", "3", "1"],
        ("Deployment web", "resources[web].requests.cpu"): ["100m", "500m", "100m"],
        ("Deployment web", "resources[web].limits.memory"): ["-", "512Mi", "-"],
        # a Secret's key that only prod sets; its values are never read out
        ("Secret db", "data.replica-password"): ["-", "(set)", "-"],
    }


def test_the_cli_table_and_json_never_show_secret_values(tmp_path: Path) -> None:
    root = _repo(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gitmoor.cli.main", "lint", "--compare-overlays", *args],
            capture_output=True,
            text=True,
            cwd=root,
            env=dict(os.environ),
            timeout=120,
        )

    human = run(".")
    assert human.returncode == 0, human.stderr
    assert "shop/base: 3 overlays" in human.stdout
    header = next(line for line in human.stdout.splitlines() if "object" in line)
    assert header.index("dev") < header.index("prod") < header.index("test")
    row = next(line for line in human.stdout.splitlines() if "image[web]" in line)
    assert [row.index(v) for v in ("shop/web:1.2", "shop/web:1.3", "shop/web:1.1")] == sorted(
        row.index(v) for v in ("shop/web:1.2", "shop/web:1.3", "shop/web:1.1")
    )
    as_json = run("-o", "json", ".")
    assert as_json.returncode == 0, as_json.stderr
    (group,) = json.loads(as_json.stdout)["groups"]
    assert len(group["differences"]) == 6
    for output in (human.stdout, as_json.stdout):
        assert "hunter2" not in output and "aHVudGVy" not in output  # nor its base64
    refused = run("-o", "sarif", ".")
    assert refused.returncode == 2 and "-o human or -o json" in refused.stderr
