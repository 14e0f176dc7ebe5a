"""Figures for the controller at scale: N Applications x M objects, one controller process.

    uv run python bench/controller.py                  # 200 apps x 50 objects (~10-15 min)
    uv run python bench/controller.py --quick          # 20 apps x 10 objects, a smoke run
    uv run python bench/controller.py --git-http       # the repository over HTTP (git http-backend)

Starts a control plane of its own (in a temporary directory, stopped at the end)
and a git repository with N apps under ``apps/<app>/``: M ConfigMaps of about
0.5 KB each plus one Deployment with 1 replica (so that self-heal is measured on
``spec.replicas``). N Applications, automated with selfHeal and prune, each
deploy into a namespace of their own (``CreateNamespace=true``). The controller
runs as a separate process (``python -m gitmoor.cli.main ... controller``) with a
kubeconfig of its own, so that its CPU and memory are read from /proc and its
requests are its own. Then, in order:

  bare      the baseline (issue 11): before the controller ever runs, a bare HTTP/2
            client (bench/bare.py: httpx, one connection, --in-flight requests at
            a time) server-side applies the same N x M ConfigMaps into N new
            namespaces of the apps' names; ``bare_write_seconds`` counts the
            ConfigMaps only. The namespaces are then deleted and awaited until
            gone, so the controller starts from an empty cluster.
  converge  the controller starts; seconds until every app is Synced and Healthy at
            the commit, with its sync recorded (a watch of the Applications). It
            includes what the baseline does not write: the process start, the
            namespaces (CreateNamespace) and each app's Deployment.
  steady    once the controller is idle, a window (--steady s) in which the
            benchmark makes no request at all: the controller's requests by verb
            (its own gitmoor_kube_requests_total, exact) and the API server's
            apiserver_request_total over the same window minus a background window
            of the same length measured with the controller stopped (kube-
            controller-manager, scheduler and kwok make requests of their own);
            controller CPU seconds per minute and RSS. Aim: no request beyond the
            watches; RSS < 300 MB.
  drift     --drifts apps in turn (each a different app, long idle, so the 5 s
            self-heal debounce does not apply): the Deployment scaled to 3 through
            the scale subresource (``kubectl scale``), then polled every 50 ms until
            it is back to 1. Aim: p50 < 2 s. Requests and CPU per heal too.
  push      --pushes apps in turn: a commit changes one ConfigMap of the app, a
            GitHub push event (HMAC-signed) is POSTed to the controller's
            /api/webhook, then the ConfigMap is polled every 50 ms until it holds the
            new value. Aim: p50 < 2 s. All N apps track the pushed branch of the one
            repository, so every push refreshes all of them: the time until every
            app was reconciled, and the controller's CPU and requests per push, are
            printed too.
  restart   SIGTERM; a background window (controller down); one commit changing a
            ConfigMap of every app; the controller started again; seconds until
            every app is Synced and Healthy with a recorded sync of that commit.

Prints one line per figure (key=value, the aim next to it) so runs can be
compared, then a summary against issue 11's aims: first and restart convergence
within 1.5x ``bare_write_seconds`` (``converge_ratio``, ``restart_ratio``) and
below Flux's 72-76 s on this machine, idle requests 0/min, idle CPU <= 1 s/min,
RSS <= 300 MB. Every wait has a deadline; the controller, the git server and the
control plane are stopped at the end, on failure too (the controller's log tail
is printed then).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from bare import apply_all, bare_client  # noqa: E402

from gitmoor.engine import store  # noqa: E402
from gitmoor.kube import KubeClient, load_kubeconfig  # noqa: E402
from gitmoor.model import GitmoorError, ObjectRef  # noqa: E402
from gitmoor.model.application import (  # noqa: E402
    GROUP,
    KIND,
    VERSION,
    AppSource,
    Automated,
    Destination,
    application_manifest,
)
from gitmoor.testenv import ControlPlane, find_binaries  # noqa: E402
from gitmoor.testenv.controlplane import free_port  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

APPS_NS = "gitmoor"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
PROBE = "cm-000"  # the ConfigMap of each app that pushes and the restart change
_FILLER = "x" * 48
TICK = os.sysconf("SC_CLK_TCK")

log = logging.getLogger("bench.controller")


# ---------------------------------------------------------------------- git


class Repo:
    """A working repository with a ``main`` branch; git with no user config."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.home = path.parent / ".git-home"
        self.home.mkdir(parents=True, exist_ok=True)
        path.mkdir(parents=True)
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "LC_ALL": "C",
        }
        self.git("init", "--quiet", "--initial-branch=main")
        # served by git http-backend (--git-http) without a post-update hook
        self.git("config", "http.receivepack", "false")

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.path, env=self.env, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def commit(self, files: dict[str, str], message: str) -> str:
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")


def configmap(app: str, i: int, value: str) -> str:
    """ConfigMap ``i`` of ``app``: about 0.5 KB of YAML, no namespace (the app's destination)."""
    data = {"value": value} | {f"key{k}": f"{app}-{i:03d}-{k}-{_FILLER}" for k in range(6)}
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:03d}", "labels": {"bench.gitmoor.io/set": "controller"}},
        "data": data,
    }
    return yaml.safe_dump(obj, sort_keys=False)


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
"""


def app_files(app: str, m: int, probe_value: str) -> dict[str, str]:
    files = {
        f"apps/{app}/cm-{i:03d}.yaml": configmap(app, i, probe_value if i == 0 else "v0")
        for i in range(m)
    }
    files[f"apps/{app}/deploy.yaml"] = DEPLOYMENT
    return files


class _GitHandler(BaseHTTPRequestHandler):
    """``git http-backend`` as a CGI, without authentication (tests/support/githttp.py
    without its Basic auth)."""

    root: Path

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        code, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def serve_git(root: Path) -> ThreadingHTTPServer:
    handler = type("Handler", (_GitHandler,), {"root": root})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True, name="git-http").start()
    return httpd


# ---------------------------------------------------------------------- metrics text

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Sample = tuple[str, tuple[tuple[str, str], ...]]
Counts = dict[str, float]


def parse_metrics(text: str, names: tuple[str, ...]) -> dict[Sample, float]:
    out: dict[Sample, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#" or not line.startswith(names):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def delta(after: dict[Sample, float], before: dict[Sample, float]) -> dict[Sample, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def by(samples: dict[Sample, float], name: str, *keys: str) -> Counts:
    """Sum the samples of metric ``name`` grouped by the given labels ("a/b")."""
    c: Counts = {}
    for (n, labels), v in samples.items():
        if n != name:
            continue
        d = dict(labels)
        k = "/".join(d.get(k, "") for k in keys)
        c[k] = c.get(k, 0.0) + v
    return c


def fmt(c: Counts, scale: float = 1.0) -> str:
    """``k:v,k:v`` with v scaled (per minute); whole numbers without decimals."""
    parts = []
    for k, v in sorted(c.items()):
        x = v * scale
        if round(x, 1):
            parts.append(f"{k}:{x:.0f}" if abs(x - round(x)) < 0.05 else f"{k}:{x:.1f}")
    return ",".join(parts) or "none"


# ---------------------------------------------------------------------- the controller


@dataclass
class ControllerProc:
    """`gitmoor controller` as a process of its own; /proc for CPU and RSS."""

    kubeconfig: Path
    port: int
    workers: int
    interval: float
    log_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"controller-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        args = [
            sys.executable,
            "-m",
            "gitmoor.cli.main",
            "--kubeconfig",
            str(self.kubeconfig),
            "--apps-namespace",
            APPS_NS,
            "controller",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--interval",
            str(self.interval),
            "--workers",
            str(self.workers),
            # The repository is a file:// URL in the bench's work directory (the
            # env names it too, see below; the flag is what an operator writes).
            "--allow-file-repos",
            str(self.log_dir),
            # The push phase measures how fast one push is applied; the
            # per-repository rate limit (5 at once, then one per 10 s) is not
            # what it measures.
            "--webhook-interval",
            "0",
        ]
        with self.log_path.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the controller exited with code {self.proc.returncode}")

    def stop(self, timeout: float = 30) -> tuple[float, int | None]:
        """SIGTERM; (seconds to exit, exit code). SIGKILL after ``timeout``."""
        if self.proc is None:
            return 0.0, None
        proc, self.proc = self.proc, None
        t0 = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return time.monotonic() - t0, proc.returncode

    def cpu(self) -> tuple[float, float]:
        """(CPU seconds of the process, of its exited children: git, helm, kustomize)."""
        assert self.proc is not None
        text = Path(f"/proc/{self.proc.pid}/stat").read_text()
        f = text[text.rfind(")") + 2 :].split()
        return (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB."""
        assert self.proc is not None
        vals: dict[str, float] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                vals[line.split(":")[0]] = int(line.split()[1]) / 1024
        return vals["VmRSS"], vals["VmHWM"]

    async def metrics(self, http: httpx.AsyncClient) -> dict[Sample, float]:
        r = await http.get(f"{self.url}/metrics", timeout=10)
        r.raise_for_status()
        return parse_metrics(
            r.text,
            (
                "gitmoor_kube_requests_total",
                "gitmoor_app_reconcile_total",
                "gitmoor_app_sync_total",
                "gitmoor_workqueue_depth",
                "gitmoor_cluster_cache_objects",
            ),
        )

    async def wait_http(self, http: httpx.AsyncClient, within: float = 60) -> float:
        deadline = time.monotonic() + within
        while True:
            self.check()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{self.url}/healthz", timeout=2)).status_code == 200:
                    return time.monotonic() - self.started_at
            if time.monotonic() > deadline:
                raise TimeoutError(f"the controller did not answer /healthz within {within:.0f}s")
            await asyncio.sleep(0.1)

    async def wait_idle(self, http: httpx.AsyncClient, *, quiet: float, within: float) -> float:
        """Seconds until the queue is empty and no reconcile and no request (watches
        aside) happened for ``quiet`` seconds. Reads the controller's /metrics only."""
        t0 = time.monotonic()
        deadline = t0 + within
        last: tuple[float, float] | None = None
        still_since = time.monotonic()
        while True:
            self.check()
            m = await self.metrics(http)
            depth = sum(v for (n, _), v in m.items() if n == "gitmoor_workqueue_depth")
            reconciles = sum(v for (n, _), v in m.items() if n == "gitmoor_app_reconcile_total")
            reqs = sum(
                v
                for (n, labels), v in m.items()
                if n == "gitmoor_kube_requests_total" and dict(labels).get("verb") != "WATCH"
            )
            now = time.monotonic()
            if depth or last != (reconciles, reqs):
                last, still_since = (reconciles, reqs), now
            elif now - still_since >= quiet:
                return now - t0 - quiet
            if now > deadline:
                raise TimeoutError(f"the controller was not idle within {within:.0f}s")
            await asyncio.sleep(0.25)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


# ---------------------------------------------------------------------- watching apps


@dataclass
class AppWatch:
    """The Applications as a watch sees them, and when each first met ``done``."""

    kube: KubeClient
    done: Callable[[dict[str, Any]], bool]
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    reached: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _see(self, obj: dict[str, Any], deleted: bool = False) -> None:
        name = obj["metadata"]["name"]
        if deleted:
            self.apps.pop(name, None)
            return
        self.apps[name] = obj
        if name not in self.reached and self.done(obj):
            self.reached[name] = time.monotonic()
        self.changed.set()

    async def run(self) -> None:
        while True:
            try:
                await self._list_watch()
            except GitmoorError as e:
                print(f"#   app watch broke ({e}); again in 1 s", flush=True)
                await asyncio.sleep(1)

    async def _list_watch(self) -> None:
        ar = await self.kube.resource(GROUP, VERSION, KIND)
        while True:
            listed = await self.kube.list(ar, APPS_NS)
            for obj in listed.items:
                self._see(obj)
            rv = listed.resource_version
            while True:
                gone = False
                async for ev in self.kube.watch(ar, APPS_NS, resource_version=rv):
                    if ev.type == "ERROR":
                        gone = True
                        break
                    rv = ev.object.get("metadata", {}).get("resourceVersion", rv)
                    if ev.type in ("ADDED", "MODIFIED"):
                        self._see(ev.object)
                    elif ev.type == "DELETED":
                        self._see(ev.object, deleted=True)
                if gone:
                    break

    async def until_all(
        self, names: list[str], within: float, what: str, proc: ControllerProc
    ) -> float:
        """The monotonic time at which the last of ``names`` reached ``done``."""
        deadline = time.monotonic() + within
        last_report = time.monotonic()
        while True:
            proc.check()
            if all(n in self.reached for n in names):
                return max(self.reached[n] for n in names)
            now = time.monotonic()
            if now > deadline:
                missing = [n for n in names if n not in self.reached]
                sample = {n: (self.apps.get(n) or {}).get("status", {}) for n in missing[:2]}
                raise TimeoutError(
                    f"{what}: {len(missing)} of {len(names)} apps not there after {within:.0f}s; "
                    f"e.g. {json.dumps(sample)[:800]}"
                )
            if now - last_report > 30:
                last_report = now
                print(
                    f"#   {what}: {sum(n in self.reached for n in names)}/{len(names)} "
                    f"after {now - (deadline - within):.0f}s",
                    flush=True,
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=1.0)


async def create_apps(kube: KubeClient, names: list[str], repo_url: str) -> None:
    """One automated Application (prune, self-heal) per name, each deploying
    ``apps/<name>`` of the repository into a namespace of its own."""
    sem = asyncio.Semaphore(32)

    async def create(a: str) -> None:
        manifest = application_manifest(
            a,
            APPS_NS,
            AppSource(repo_url, f"apps/{a}", "main"),
            Destination(a),
            automated=Automated(prune=True, self_heal=True),
            sync_options=("CreateNamespace=true",),
        )
        async with sem:
            await kube.apply(manifest, force=True)

    await asyncio.gather(*(create(a) for a in names))


def synced_at(commit: str) -> Callable[[dict[str, Any]], bool]:
    """Synced and Healthy at ``commit``, with a recorded sync of it."""

    def done(obj: dict[str, Any]) -> bool:
        st = obj.get("status") or {}
        history = st.get("history") or []
        return (
            (st.get("sync") or {}).get("status") == "Synced"
            and (st.get("sync") or {}).get("revision") == commit
            and (st.get("health") or {}).get("status") == "Healthy"
            and bool(history)
            and history[-1].get("revision") == commit
        )

    return done


# ---------------------------------------------------------------------- helpers


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def loadavg() -> str:
    return "/".join(Path("/proc/loadavg").read_text().split()[:3])


async def poll(probe: Callable[[], Any], *, within: float, interval: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


def apiserver_metrics(cp: ControlPlane) -> dict[Sample, float]:
    with cp.admin_client(timeout=30) as c:
        r = c.get("/metrics")
        r.raise_for_status()
    return parse_metrics(r.text, ("apiserver_request_total",))


def api_requests(samples: dict[Sample, float]) -> Counts:
    """apiserver_request_total by verb/resource, resource requests only (no /metrics,
    /readyz...), a dry run marked as such."""
    c: Counts = {}
    for (n, labels), v in samples.items():
        d = dict(labels)
        if n != "apiserver_request_total" or not d.get("resource"):
            continue
        res = d["resource"] + (f"/{d['subresource']}" if d.get("subresource") else "")
        verb = d.get("verb", "") + ("(dry-run)" if d.get("dry_run") else "")
        c[f"{verb} {res}"] = c.get(f"{verb} {res}", 0.0) + v
    return c


def push_payload(repo_url: str, before: str, after: str, path: str) -> bytes:
    """A GitHub push event, as much of it as matters (and a little more)."""
    commit = {
        "id": after,
        "message": f"change {path}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "added": [],
        "removed": [],
        "modified": [path],
    }
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": before,
            "after": after,
            "created": False,
            "deleted": False,
            "forced": False,
            "repository": {
                "name": "bench",
                "full_name": "bench/bench",
                "clone_url": repo_url,
                "default_branch": "main",
            },
            "head_commit": commit,
            "commits": [commit],
            "pusher": {"name": "bench"},
        }
    ).encode()


# ---------------------------------------------------------------------- the benchmark


@dataclass
class Figures:
    lines: list[str] = field(default_factory=list)

    def add(self, key: str, value: Any, note: str = "") -> None:
        line = f"{key}={value}" + (f"  ({note})" if note else "")
        self.lines.append(line)
        print(line, flush=True)


async def bare_phase(
    kube: KubeClient, names: list[str], m: int, args: argparse.Namespace, fig: Figures
) -> float:
    """The baseline: the apps' ConfigMaps written by the bare client; then none left.

    The objects are the repository's own (``configmap(app, i, "v0")``, each in the
    namespace of its app), written on the same control plane in the same run as
    the controller's figures, so the ratios hold whatever the machine's load that
    day. The namespaces are applied first, outside the timing: the figure is the
    issue's "the bare client writing the same 10,000 objects".
    """
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": a}} for a in names]
    configmaps: list[dict[str, Any]] = []
    for a in names:
        for i in range(m):
            obj = yaml.safe_load(configmap(a, i, "v0"))
            obj["metadata"]["namespace"] = a
            configmaps.append(obj)
    async with bare_client(kube.config) as http:
        ns_seconds = await apply_all(http, namespaces, in_flight=args.in_flight)
        write = await apply_all(http, configmaps, in_flight=args.in_flight)
    fig.add(
        "bare_write_seconds",
        f"{write:.1f}",
        f"{len(configmaps)} ConfigMaps by server-side apply, httpx http2, 1 connection, "
        f"{args.in_flight} in flight, {len(configmaps) / write:.0f} objects/s; the "
        f"{len(names)} namespaces before them took {ns_seconds:.1f}s, not counted; "
        f"loadavg {loadavg()}",
    )

    # Deleted and awaited, namespaces included: the controller's convergence starts
    # from an empty cluster, with no namespace controller still busy beside it.
    t0 = time.monotonic()
    sem = asyncio.Semaphore(args.in_flight)

    async def drop(a: str) -> None:
        async with sem:
            await kube.delete(ObjectRef("", "v1", "Namespace", "", a))

    await asyncio.gather(*(drop(a) for a in names))
    ns_resource = await kube.resource("", "v1", "Namespace")
    wanted = set(names)

    async def all_gone() -> bool:
        listed = await kube.list(ns_resource)
        return not any(o["metadata"]["name"] in wanted for o in listed.items)

    await poll(all_gone, within=900, interval=1.0, what="the baseline's namespaces to go")
    fig.add(
        "bare_cleanup_seconds",
        f"{time.monotonic() - t0:.1f}",
        "the baseline's namespaces deleted and gone before the controller starts",
    )
    return write


async def bench(cp: ControlPlane, work: Path, args: argparse.Namespace, fig: Figures) -> None:
    n, m = args.apps, args.objects
    names = [f"app-{i:03d}" for i in range(n)]
    rng = random.Random(args.seed)

    # -- repository
    t0 = time.monotonic()
    repo = Repo(work / "srv" / "bench.git" if args.git_http else work / "repo")
    files: dict[str, str] = {}
    for a in names:
        files |= app_files(a, m, "v0")
    commit = repo.commit(files, "apps")
    sizes = [len(t) for p, t in files.items() if "/cm-" in p]
    httpd = None
    if args.git_http:
        httpd = serve_git(repo.path.parent)
        repo_url = f"http://127.0.0.1:{httpd.server_address[1]}/bench.git"
    else:
        repo_url = repo.path.as_uri()
    fig.add(
        "setup",
        f"apps={n} objects_per_app={m + 1} total_objects={n * (m + 1)} "
        f"configmap_bytes_mean={round(statistics.mean(sizes))} repo={repo_url.split(':')[0]} "
        f"workers={args.workers} interval={args.interval:.0f} commit_seconds="
        f"{time.monotonic() - t0:.1f} loadavg_start={args.load_start}",
    )
    ctrl_kubeconfig = cp.mint_kubeconfig("gitmoor-controller", ["system:masters"])
    ctrl = ControllerProc(
        kubeconfig=ctrl_kubeconfig,
        port=free_port(),
        workers=args.workers,
        interval=args.interval,
        log_dir=work,
        env={
            **os.environ,
            "GITMOOR_CACHE_DIR": str(work / "cache"),
            "GITMOOR_ALLOW_FILE_REPOS": str(work),
            "PYTHONUNBUFFERED": "1",
        },
    )
    args.ctrl = ctrl  # for the log tail on failure
    try:
        async with (
            KubeClient(load_kubeconfig(cp.kubeconfig), user_agent="kubectl/bench") as kube,
            httpx.AsyncClient() as http,
        ):
            await run_phases(cp, kube, http, ctrl, repo, repo_url, commit, names, rng, args, fig)
    finally:
        ctrl.stop()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()


async def run_phases(
    cp: ControlPlane,
    kube: KubeClient,
    http: httpx.AsyncClient,
    ctrl: ControllerProc,
    repo: Repo,
    repo_url: str,
    commit: str,
    names: list[str],
    rng: random.Random,
    args: argparse.Namespace,
    fig: Figures,
) -> None:
    n, m = args.apps, args.objects
    await store.install(kube, APPS_NS)
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gitmoor-secret", "namespace": APPS_NS},
            "stringData": {"webhook.github.secret": WEBHOOK_SECRET},
        }
    )
    # ------------------------------------------------------------ 0. the baseline
    bare = await bare_phase(kube, names, m, args, fig)

    await create_apps(kube, names, repo_url)

    # ------------------------------------------------------------ 1. converge
    watch = AppWatch(kube, synced_at(commit))
    watch_task = asyncio.create_task(watch.run(), name="watch apps")
    try:
        ctrl.start()
        started = ctrl.started_at
        ready = await ctrl.wait_http(http)
        done_at = await watch.until_all(names, args.converge_within, "initial convergence", ctrl)
        converge = done_at - started
        first = min(watch.reached.values()) - started
        cpu, children = ctrl.cpu()
        rss, hwm = ctrl.memory_mb()
        met = await ctrl.metrics(http)
    finally:
        watch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watch_task
    reqs = by(met, "gitmoor_kube_requests_total", "verb")
    syncs = by(met, "gitmoor_app_sync_total", "phase")
    fig.add("controller_http_ready_seconds", f"{ready:.2f}", "process start to /healthz")
    fig.add(
        "initial_convergence_seconds",
        f"{converge:.1f}",
        f"process start to all {n} apps Synced+Healthy with the sync recorded; "
        f"first app at {first:.1f}s; {n * (m + 1) / converge:.0f} objects/s; includes "
        f"{n} namespaces and {n} Deployments beyond the baseline's {n * m} ConfigMaps; "
        f"loadavg {loadavg()}",
    )
    fig.add(
        "initial_convergence_controller_cpu_seconds",
        f"{cpu:.1f}",
        f"+{children:.1f} in git/render children; {cpu / converge:.2f} cores on average",
    )
    fig.add(
        "initial_convergence_requests",
        f"{sum(reqs.values()):.0f}",
        f"by verb {fmt(reqs)}; {sum(reqs.values()) / n:.0f} per app; syncs {fmt(syncs)}",
    )
    fig.add("initial_convergence_rss_mb", f"{rss:.0f}", f"peak {hwm:.0f}")

    # ------------------------------------------------------------ 2. steady state
    idle_after = await ctrl.wait_idle(http, quiet=5, within=args.idle_within)
    # Nothing of ours talks to the API server from here to the end of the window.
    c0, a0, cpu0, wall0 = (
        await ctrl.metrics(http),
        apiserver_metrics(cp),
        ctrl.cpu(),
        time.monotonic(),
    )
    await asyncio.sleep(args.steady)
    c1, a1, cpu1, wall1 = (
        await ctrl.metrics(http),
        apiserver_metrics(cp),
        ctrl.cpu(),
        time.monotonic(),
    )
    rss, hwm = ctrl.memory_mb()
    steady_rss = rss
    minutes = (wall1 - wall0) / 60
    cache_objects = sum(v for (k, _), v in c1.items() if k == "gitmoor_cluster_cache_objects")
    own = by(delta(c1, c0), "gitmoor_kube_requests_total", "verb")
    own_watch = own.pop("WATCH", 0)
    recon = by(delta(c1, c0), "gitmoor_app_reconcile_total", "outcome")
    steady_api = api_requests(delta(a1, a0))
    fig.add(
        "steady_idle_after_convergence_seconds", f"{idle_after:.1f}", "until queue empty, 5 s quiet"
    )
    fig.add(
        "steady_window_seconds",
        f"{wall1 - wall0:.0f}",
        f"reconciles in the window {fmt(recon)} (periodic refresh every "
        f"{args.interval:.0f}s +-10% jitter)",
    )
    fig.add(
        "steady_controller_requests_per_minute",
        f"{sum(own.values()) / minutes:.1f}",
        f"aim 0 beyond watches; by verb {fmt(own, 1 / minutes)}; watches ended and "
        f"restarted in the window {own_watch:.0f} (gitmoor_kube_requests_total)",
    )
    fig.add(
        "steady_controller_cpu_seconds_per_minute",
        f"{(cpu1[0] - cpu0[0]) / minutes:.2f}",
        f"+{(cpu1[1] - cpu0[1]) / minutes:.2f} in children",
    )
    fig.add(
        "steady_controller_rss_mb",
        f"{rss:.0f}",
        f"aim < 300; peak {hwm:.0f}; cache objects {cache_objects:.0f}",
    )

    # ------------------------------------------------------------ 3. drift -> self-heal
    sample = rng.sample(names, min(args.drifts, n))
    heal: list[float] = []
    m0, busy0 = await ctrl.metrics(http), ctrl.cpu()[0]
    for a in sample:
        ref = ObjectRef("apps", "v1", "Deployment", a, "web")
        t0 = time.monotonic()
        scaled = await kube.merge_patch(ref, {"spec": {"replicas": 3}}, subresource="scale")
        if scaled["spec"]["replicas"] != 3:
            raise RuntimeError(f"scale of {a} did not take: {scaled['spec']}")

        async def back(ref: ObjectRef = ref) -> bool:
            obj = await kube.get(ref)
            return bool(obj and obj["spec"]["replicas"] == 1)

        await poll(back, within=60, interval=0.05, what=f"self-heal of {a}")
        heal.append(time.monotonic() - t0)
        if args.verbose:
            print(f"#   drift {a}: {heal[-1]:.2f}s", flush=True)
        await ctrl.wait_idle(http, quiet=2, within=120)
    m1, busy1 = await ctrl.metrics(http), ctrl.cpu()[0]
    per_heal = by(delta(m1, m0), "gitmoor_kube_requests_total", "verb")
    per_heal.pop("WATCH", None)
    heal_reconciles = sum(by(delta(m1, m0), "gitmoor_app_reconcile_total", "name").values())
    fig.add(
        "drift_to_corrected_seconds",
        f"p50={pct(heal, 50):.2f} p95={pct(heal, 95):.2f} max={max(heal):.2f}",
        f"aim p50 < 2; {len(heal)} apps, scale subresource 1->3, polled every 50 ms",
    )
    fig.add(
        "drift_requests_per_heal",
        f"{sum(per_heal.values()) / len(heal):.0f}",
        f"by verb {fmt(per_heal, 1 / len(heal))}; controller CPU "
        f"{(busy1 - busy0) / len(heal):.2f} s per heal; both until idle again (2 s "
        f"quiet), with {heal_reconciles / len(heal):.1f} reconciles per heal, periodic "
        f"refreshes that fell in the window included",
    )

    # ------------------------------------------------------------ 4. push -> applied
    sample = rng.sample(names, min(args.pushes, n))
    pushed: list[float] = []
    all_done: list[float] = []
    push_cpu: list[float] = []
    push_reqs: list[float] = []
    head = commit
    refreshed = 0
    for k, a in enumerate(sample):
        value = f"push-{k}"
        path = f"apps/{a}/{PROBE}.yaml"
        new = await asyncio.to_thread(repo.commit, {path: configmap(a, 0, value)}, f"push {k}")
        body = push_payload(repo_url, head, new, path)
        head = new
        sig = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        ref = ObjectRef("", "v1", "ConfigMap", a, PROBE)
        m0, busy0 = await ctrl.metrics(http), ctrl.cpu()[0]
        before = by(m0, "gitmoor_app_reconcile_total", "name")
        t0 = time.monotonic()
        r = await http.post(
            f"{ctrl.url}/api/webhook",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": f"bench-{k}",
                "X-Hub-Signature-256": sig,
            },
            timeout=15,
        )
        if r.status_code != 200 or "refreshed" not in r.json():
            raise RuntimeError(f"webhook answered {r.status_code}: {r.text[:300]}")
        refreshed = r.json()["refreshed"]

        async def applied(ref: ObjectRef = ref, value: str = value) -> bool:
            obj = await kube.get(ref)
            return bool(obj and (obj.get("data") or {}).get("value") == value)

        await poll(applied, within=120, interval=0.05, what=f"push to {a} applied")
        pushed.append(time.monotonic() - t0)

        async def every_app_reconciled(before: Counts = before) -> dict[Sample, float] | None:
            m = await ctrl.metrics(http)
            now = by(m, "gitmoor_app_reconcile_total", "name")
            return m if all(now.get(x, 0) > before.get(x, 0) for x in names) else None

        m1 = await poll(every_app_reconciled, within=600, interval=0.25, what="every app refreshed")
        all_done.append(time.monotonic() - t0)
        push_cpu.append(ctrl.cpu()[0] - busy0)
        reqs = by(delta(m1, m0), "gitmoor_kube_requests_total", "verb")
        reqs.pop("WATCH", None)
        push_reqs.append(sum(reqs.values()))
        if args.verbose:
            print(
                f"#   push {a}: applied {pushed[-1]:.2f}s, refreshed={refreshed}, every app "
                f"reconciled {all_done[-1]:.1f}s, cpu {push_cpu[-1]:.1f}s, requests "
                f"{fmt(reqs)}",
                flush=True,
            )
        await ctrl.wait_idle(http, quiet=2, within=300)
    fig.add(
        "push_to_applied_seconds",
        f"p50={pct(pushed, 50):.2f} p95={pct(pushed, 95):.2f} max={max(pushed):.2f}",
        f"aim p50 < 2; {len(pushed)} pushes, each one ConfigMap of one app; the webhook "
        f"refreshes every app on the branch ({refreshed} apps)",
    )
    fig.add(
        "push_to_every_app_reconciled_seconds",
        f"p50={pct(all_done, 50):.1f} max={max(all_done):.1f}",
        f"the refresh of all {refreshed} apps one push causes; controller CPU p50 "
        f"{pct(push_cpu, 50):.1f} s, requests p50 {pct(push_reqs, 50):.0f} per push",
    )

    # ------------------------------------------------------------ 5. restart
    down, code = ctrl.stop()
    fig.add(
        "controller_sigterm_exit_seconds",
        f"{down:.2f}",
        f"exit code {code} (-15: killed by the signal, no graceful shutdown)",
    )
    # The background: what the control plane's own components ask in the same time.
    b0 = apiserver_metrics(cp)
    await asyncio.sleep(args.steady)
    b1 = apiserver_metrics(cp)
    background = api_requests(delta(b1, b0))
    excess = {
        k: v - background.get(k, 0) for k, v in steady_api.items() if v - background.get(k, 0) > 0
    }
    fig.add(
        "steady_apiserver_requests_per_minute_excess",
        f"{sum(excess.values()) / minutes:.1f}",
        f"apiserver_request_total in the steady window minus a background window of the "
        f"same length with the controller down; {fmt(excess, 1 / minutes)}",
    )
    fig.add(
        "steady_apiserver_requests_per_minute_raw",
        f"{sum(steady_api.values()) / minutes:.1f}",
        f"background {sum(background.values()) / minutes:.1f}; "
        f"window {fmt(steady_api, 1 / minutes)}",
    )

    files: dict[str, str] = {}
    for a in names:
        files[f"apps/{a}/{PROBE}.yaml"] = configmap(a, 0, "restart")
    restart_commit = await asyncio.to_thread(repo.commit, files, "restart: every app")
    watch = AppWatch(kube, synced_at(restart_commit))
    watch_task = asyncio.create_task(watch.run(), name="watch apps")
    try:
        ctrl.start()
        started = ctrl.started_at
        await ctrl.wait_http(http)
        done_at = await watch.until_all(names, args.converge_within, "after restart", ctrl)
        cpu, children = ctrl.cpu()
        rss, hwm = ctrl.memory_mb()
        met = await ctrl.metrics(http)
    finally:
        watch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watch_task
    reqs = by(met, "gitmoor_kube_requests_total", "verb")
    restart = done_at - started
    fig.add(
        "restart_to_all_applied_seconds",
        f"{restart:.1f}",
        f"a commit changing one ConfigMap of each of {n} apps made while the controller was "
        f"down; process start to every app Synced+Healthy with that sync recorded; "
        f"loadavg {loadavg()}",
    )
    fig.add(
        "restart_controller_cpu_seconds",
        f"{cpu:.1f}",
        f"+{children:.1f} children; requests {sum(reqs.values()):.0f} by verb {fmt(reqs)}; "
        f"rss {rss:.0f} MB peak {hwm:.0f}",
    )

    # ------------------------------------------------------------ summary: issue 11's aims
    print("# summary against issue 11's aims", flush=True)
    fig.add(
        "bare_write_seconds",
        f"{bare:.1f}",
        f"the baseline: {n * m} ConfigMaps, bare HTTP/2 client, {args.in_flight} in flight",
    )
    fig.add(
        "converge_ratio",
        f"{converge / bare:.2f}",
        f"first convergence {converge:.1f}s / bare; aim <= 1.5 (and below Flux's 72-76 s); "
        f"convergence includes the {n} namespaces, {n} Deployments and process start",
    )
    fig.add(
        "restart_ratio",
        f"{restart / bare:.2f}",
        f"restart convergence {restart:.1f}s / bare; aim <= 1.5 (and below Flux's 72-76 s)",
    )
    fig.add(
        "idle_requests_per_minute",
        f"{sum(own.values()) / minutes:.1f}",
        "aim 0 (the controller's own, watches aside)",
    )
    fig.add("idle_cpu_seconds_per_minute", f"{(cpu1[0] - cpu0[0]) / minutes:.2f}", "aim <= 1")
    fig.add("idle_rss_mb", f"{steady_rss:.0f}", "aim <= 300")
    fig.add("loadavg_end", loadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument(
        "--objects", type=int, default=50, help="ConfigMaps per app (plus a Deployment)"
    )
    ap.add_argument("--drifts", type=int, default=20)
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--steady", type=float, default=60, help="seconds of the steady-state window")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument(
        "--in-flight",
        type=int,
        default=64,
        help="requests in flight of the bare client (the baseline); 32-64 is its best",
    )
    ap.add_argument("--interval", type=float, default=180)
    ap.add_argument("--converge-within", type=float, default=1200, help="deadline, seconds")
    ap.add_argument("--idle-within", type=float, default=300, help="deadline, seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--git-http", action="store_true", help="serve the repo over HTTP")
    ap.add_argument("--quick", action="store_true", help="20 apps x 10, 5 drifts and pushes, 20 s")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--verbose", action="store_true")
    # bench/run.py passes its own arguments (--cold) to every benchmark.
    args, _unknown = ap.parse_known_args()
    if args.quick:
        args.apps, args.objects, args.drifts, args.pushes, args.steady = 20, 10, 5, 5, 20
    args.load_start = loadavg()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="gitmoor-bench-controller-"))
    cp = ControlPlane(home=work / "cp", name="bench-controller")
    fig = Figures()
    ok = False
    try:
        cp.start(find_binaries())
        asyncio.run(bench(cp, work, args, fig))
        ok = True
    finally:
        ctrl: ControllerProc | None = getattr(args, "ctrl", None)
        if ctrl is not None:
            ctrl.stop()
            if not ok:
                print(f"# controller log tail ({ctrl.log_path}):\n{ctrl.tail()}", file=sys.stderr)
        cp.stop()
        if args.keep:
            print(f"# work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
