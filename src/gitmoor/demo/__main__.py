"""`make demo`: gitmoor on a local Kubernetes control plane, from a fresh machine.

1. starts (or reuses) the control plane of `make cluster`;
2. installs gitmoor (the CRDs, its namespace, the default project);
3. turns `examples/` into a git repository under `.local/demo/repo`, and stores
   the demo's age key (``demo.agekey``, for the demo only) as the decryption
   Secret ``sops-age`` that the `credentials` app names;
4. creates a restricted `team-a` project (that repository, `team-a-*` namespaces);
5. creates Applications for the example overlays, the Helm chart, the CRD app,
   the SOPS-encrypted credentials app, and one of team-a;
6. syncs each with the `gitmoor` CLI, showing waves and hooks as they run;
7. prints their status;
8. starts the controller and 9. the API server and web UI (admin, and alice who
   sees team-a only), and prints what to try next.

The control plane keeps running afterwards; `make demo-down` stops it.
Every step runs the real `gitmoor` command, so what it prints is what a user sees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gitmoor.testenv import ControlPlane, ControlPlaneError

if TYPE_CHECKING:
    from collections.abc import Mapping

REPO = Path(__file__).resolve().parents[3]

#: The age key examples/apps/credentials is encrypted for. FOR THE DEMO ONLY: its
#: private half is public (it ships in this package), so nothing real may ever be
#: encrypted for it. Real keys: `gitmoor secret keygen`, README "Secrets in Git".
DEMO_AGE_KEY = Path(__file__).with_name("demo.agekey")
#: the Secret (in the apps namespace) that holds it, as `gitmoor secret install-key` makes it
DEMO_KEY_SECRET = "sops-age"

APPS: list[tuple[str, str, list[str]]] = [
    (
        "guestbook-dev",
        "apps/guestbook/overlays/dev",
        ["--dest-namespace", "guestbook-dev", "--auto-sync", "--auto-prune", "--self-heal"],
    ),
    ("guestbook-test", "apps/guestbook/overlays/test", ["--dest-namespace", "guestbook-test"]),
    ("guestbook-prod", "apps/guestbook/overlays/prod", ["--dest-namespace", "guestbook-prod"]),
    (
        "dashboard",
        "apps/dashboard",
        ["--dest-namespace", "dashboard", "--values", "values-prod.yaml"],
    ),
    ("backups", "apps/backups", ["--dest-namespace", "backups"]),
    # SOPS-encrypted files (a Secret, a secretGenerator's env file), decrypted at
    # render time with the key Secret sops-age (installed in step 3).
    (
        "credentials",
        "apps/credentials",
        ["--dest-namespace", "credentials", "--decryption-secret", DEMO_KEY_SECRET],
    ),
    # In the restricted team-a project (created below): team-a-* namespaces only.
    (
        "team-a-dashboard",
        "apps/dashboard",
        ["--dest-namespace", "team-a-dashboard", "--project", "team-a"],
    ),
]


#: local demo passwords, printed at the end: the demo is a sandbox on loopback
DEMO_ADMIN_PASSWORD = "gitmoor-demo-admin"
DEMO_ALICE_PASSWORD = "gitmoor-demo-alice"


def kubectl_apply(obj: Mapping[str, object], env: dict[str, str]) -> None:
    """Server-side apply of one object with kubectl (what an operator would type)."""
    import json

    proc = subprocess.run(
        # The demo owns these settings: it takes the fields install wrote.
        [
            "kubectl",
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "gitmoor-demo",
            "-f",
            "-",
        ],
        input=json.dumps(obj),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"demo failed at kubectl apply: {proc.stderr.strip()}")
    print(f"$ kubectl apply --server-side -f - ({proc.stdout.strip()})", flush=True)


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def sh(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, show: bool = True
) -> str:
    if show:
        shown = ["gitmoor", *args[1:]] if Path(args[0]).name == "gitmoor" else list(args)
        print(f"$ {' '.join(shown)}", flush=True)
    proc = subprocess.run(
        list(args), env=env, cwd=cwd, capture_output=not show, text=True, check=False
    )
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip() if not show else ""
        raise SystemExit(f"demo failed at: {' '.join(args)} (exit {proc.returncode}) {detail}")
    return proc.stdout or ""


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "gitmoor demo",
        "GIT_AUTHOR_EMAIL": "demo@gitmoor.invalid",
        "GIT_COMMITTER_NAME": "gitmoor demo",
        "GIT_COMMITTER_EMAIL": "demo@gitmoor.invalid",
    }
    return sh("git", "-C", str(repo), *args, env=env, show=False).strip()


def make_repo(target: Path) -> str:
    """A git repository holding a copy of examples/; commits when examples/ changed."""
    if not (target / ".git").exists():
        target.mkdir(parents=True, exist_ok=True)
        git(target, "init", "--quiet", "--initial-branch=main")
    for child in target.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(REPO / "examples", target, dirs_exist_ok=True)
    git(target, "add", "--all")
    if git(target, "status", "--porcelain"):
        git(target, "commit", "--quiet", "-m", "examples from the gitmoor checkout")
    return git(target, "rev-parse", "HEAD")


def start_background(
    name: str, gm: list[str], args: list[str], env: dict[str, str], demo_dir: Path
) -> int:
    """``gitmoor <name> <args>`` as a background process that outlives the demo."""
    pid_file = demo_dir / f"{name}.pid"
    stop_background(name, demo_dir)
    log = (demo_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [*gm, name, *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def stop_background(name: str, demo_dir: Path) -> None:
    pid_file = demo_dir / f"{name}.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if name.encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
    except (OSError, ValueError):
        pass
    pid_file.unlink(missing_ok=True)


def wait_ready(url: str, within: float = 60) -> bool:
    import urllib.request

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gitmoor.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--home", type=Path, default=REPO / ".local" / "cluster")
    ap.add_argument(
        "--down", action="store_true", help="stop the demo's controller (then make cluster-down)"
    )
    args = ap.parse_args()
    if args.down:
        for name in ("server", "controller"):
            stop_background(name, REPO / ".local" / "demo")
        print("event=demo_stopped what=server,controller")
        return 0
    started = time.monotonic()

    step(
        "1. A local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes)"
    )
    t0 = time.monotonic()
    try:
        cp, new = ControlPlane.ensure(args.home, nodes=2)
    except ControlPlaneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if new:
        print(f"started in {time.monotonic() - t0:.1f}s at {cp.server}")
    else:
        print(f"reusing the one running at {cp.server}")
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig), "GITMOOR_USER": "demo"}
    gm = [str(Path(sys.executable).with_name("gitmoor"))]
    sh("kubectl", "get", "nodes", env=env)

    step("2. Install gitmoor into the cluster")
    sh(*gm, "install", env=env)

    step("3. The example GitOps repository (examples/ as a git repository)")
    repo = REPO / ".local" / "demo" / "repo"
    commit = make_repo(repo)
    url = repo.as_uri()
    print(f"{url} at {commit[:12]}")
    # The CLI's syncs below fetch that file:// URL: allowed for this directory only.
    env["GITMOOR_ALLOW_FILE_REPOS"] = str(repo)
    # apps/credentials holds SOPS-encrypted files; the key that opens them goes into
    # the cluster, never into Git (the demo's key is public: demo only).
    print("the demo's age key, FOR THE DEMO ONLY, as the decryption Secret of apps/credentials")
    sh(
        *gm,
        "secret",
        "install-key",
        DEMO_KEY_SECRET,
        "--age-key-file",
        str(DEMO_AGE_KEY),
        env=env,
    )

    step("4. Projects: a restricted team-a next to the default one")
    # The example repository only, team-a-* namespaces of this cluster, no
    # cluster-scoped kind: what its apps ask beyond that is refused before any
    # git request or write (README, "Projects").
    sh(
        *gm,
        "proj",
        "create",
        "team-a",
        "--description",
        "Team A: the example repository, team-a-* namespaces, no cluster-scoped kinds",
        "--src",
        url,
        "--dest",
        "in-cluster,team-a-*",
        "--upsert",
        env=env,
    )
    sh(*gm, "proj", "list", env=env)

    step("5. Applications")
    for name, path, extra in APPS:
        sh(
            *gm,
            "app",
            "create",
            name,
            "--repo",
            url,
            "--path",
            path,
            "--revision",
            "main",
            "--sync-option",
            "CreateNamespace=true",
            "--upsert",
            *extra,
            env=env,
        )

    step("6. Sync")
    for name, _, _ in APPS:
        sh(*gm, "app", "sync", name, "--prune", "--timeout", "120", env=env)

    step("7. Status")
    sh(*gm, "app", "list", "-o", "wide", env=env)

    step("8. The controller (automated sync, self-heal, webhooks, metrics) in the background")
    demo_dir = REPO / ".local" / "demo"
    # The example repository is a file:// URL; gitmoor refuses file:// outside
    # the directories an operator names.
    allow = ["--allow-file-repos", str(repo)]
    pid = start_background(
        "controller",
        gm,
        ["--listen", "127.0.0.1:8081", "--interval", "60", *allow],
        env,
        demo_dir,
    )
    print(f"gitmoor controller running as pid {pid}; log: {demo_dir / 'controller.log'}")
    print(
        "webhook: POST http://127.0.0.1:8081/api/webhook   metrics: http://127.0.0.1:8081/metrics"
    )

    step("9. The API server and web UI, with accounts and RBAC")
    # Two local accounts: admin, and alice who may see and sync team-a's apps only
    # (the RBAC policy below, Argo CD's policy.csv format). The demo sets known
    # passwords, so the one `gitmoor install` printed above is replaced.
    print("the demo sets known passwords (the admin password printed by install is replaced)")
    sh(
        *gm,
        "admin",
        "reset-password",
        "--account",
        "admin",
        "--password",
        DEMO_ADMIN_PASSWORD,
        env=env,
    )
    rbac = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "gitmoor-rbac-cm",
            "namespace": "gitmoor",
            "labels": {"app.kubernetes.io/part-of": "gitmoor"},
        },
        "data": {
            "policy.default": "",
            "policy.csv": "p, role:team-a, applications, *, team-a/*, allow\n"
            "p, role:team-a, logs, get, team-a/*, allow\n"
            "g, alice, role:team-a\n",
        },
    }
    kubectl_apply(rbac, env)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "gitmoor-cm",
            "namespace": "gitmoor",
            "labels": {"app.kubernetes.io/part-of": "gitmoor"},
        },
        "data": {"accounts.alice": "login"},
    }
    kubectl_apply(cm, env)
    sh(
        *gm,
        "admin",
        "reset-password",
        "--account",
        "alice",
        "--password",
        DEMO_ALICE_PASSWORD,
        env=env,
    )
    pid = start_background("server", gm, ["--listen", "127.0.0.1:8080", *allow], env, demo_dir)
    if not wait_ready("http://127.0.0.1:8080/readyz"):
        raise SystemExit(f"the server did not become ready; see {demo_dir / 'server.log'}")
    print(f"gitmoor server running as pid {pid}; log: {demo_dir / 'server.log'}")
    print(
        f"web UI: http://127.0.0.1:8080   admin / {DEMO_ADMIN_PASSWORD}   "
        f"alice / {DEMO_ALICE_PASSWORD} (team-a only)"
    )
    print("API:    http://127.0.0.1:8080/api/docs")

    print(
        f"\n\033[1mDemo ready in {time.monotonic() - started:.0f}s.\033[0m Try:\n"
        f"  export KUBECONFIG={cp.kubeconfig}\n"
        f"  export GITMOOR_ALLOW_FILE_REPOS={repo}   # the demo's repository is a file:// URL\n"
        "  alias gitmoor='uv run gitmoor'\n"
        "  gitmoor app get guestbook-prod\n"
        "  kubectl -n guestbook-dev scale deployment guestbook --replicas=5   # self-heal reverts it\n"
        "  kubectl -n guestbook-prod scale deployment guestbook --replicas=5  # manual app: OutOfSync only\n"
        "  gitmoor app diff guestbook-prod         # shows the drift; exit code 1\n"
        "  gitmoor app why guestbook-prod          # why it is (not) synced and healthy, in one place\n"
        "  gitmoor app sync guestbook-prod         # takes replicas back: 'took spec.replicas from kubectl'\n"
        "  gitmoor app history guestbook-dev\n"
        "  gitmoor app diff credentials            # Secret values masked; Git holds only ciphertext\n"
        "  kubectl -n credentials get secret payments-db -o jsonpath='{.data.password}' | base64 -d\n"
        f"  gitmoor app create escape --project team-a --repo {url} --path apps/dashboard "
        "--dest-namespace kube-system\n"
        "  gitmoor app get escape --refresh        # InvalidSpecError: team-a permits team-a-* only\n"
        f"  # edit {repo}/apps/guestbook/overlays/dev, commit: applied within a minute (--interval 60)\n"
        "  curl -s http://127.0.0.1:8081/metrics | grep gitmoor_app_info\n"
        "  open http://127.0.0.1:8080 and sign in (admin, or alice who sees team-a only)\n"
        f"  gitmoor login http://127.0.0.1:8080 --username admin --password {DEMO_ADMIN_PASSWORD}\n"
        "  gitmoor app list                        # now through the API (gitmoor logout: back to kubeconfig)\n"
        "  make demo-down                          # stop the server, the controller and the control plane"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
