"""Figures for `gitmoor server`: N apps x M objects, C concurrent API clients, one server.

    uv run python bench/server.py                  # 200 apps x 50 objects, 20 clients (~5 min)
    uv run python bench/server.py --quick          # 20 apps x 10 objects, a smoke run

Starts a control plane of its own (in a temporary directory, stopped at the end)
and the same repository as bench/controller.py (N apps under ``apps/<app>/``: M
ConfigMaps and one Deployment each). The controller (a process of its own) syncs
every app, then stops, so that it takes no CPU from what is measured. Then
`gitmoor server` runs as a process of its own, with a kubeconfig of its own, and:

  api       --clients concurrent HTTP clients (httpx, one connection each, Bearer
            session token) for --seconds per route, each request to a random app:
            ``GET /api/v1/applications`` (the list, all N apps), ``GET
            /applications/{name}`` (the app page: server-rendered HTML),
            ``GET /api/v1/applications/{name}/tree`` (objects and live children);
            p50/p95/max and requests/s per route.
  sse       --tabs SSE streams open (``/api/v1/stream/applications``, each gets the
            N-app snapshot), then one app's label changed through the API server:
            the time until every stream has its message (p50/max), and the
            server's watches (one per kind, whatever the tabs).
  browser   Debian's Chromium (Playwright, executable_path=/usr/bin/chromium): sign
            in, then the time from navigation to the list page with all N apps
            rendered (median of --renders page loads).
  memory    the server's RSS after each phase, and its peak (VmHWM).

Prints one line per figure (key=value, the aim next to it): list first render in
the browser < 1 s (issue 12).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # the browser tests' Chromium and its flags

from controller import (  # noqa: E402
    APPS_NS,
    AppWatch,
    ControllerProc,
    Figures,
    Repo,
    app_files,
    create_apps,
    loadavg,
    pct,
    synced_at,
)

from gitmoor.engine import store  # noqa: E402
from gitmoor.kube import KubeClient, load_kubeconfig  # noqa: E402
from gitmoor.server.auth.sessions import SESSION_COOKIE  # noqa: E402
from gitmoor.settings import accounts  # noqa: E402
from gitmoor.testenv import ControlPlane, find_binaries  # noqa: E402
from gitmoor.testenv.controlplane import free_port  # noqa: E402
from support.browser import ARGS as CHROMIUM_ARGS  # noqa: E402
from support.browser import CHROMIUM, MISSING  # noqa: E402

PASSWORD = "bench-admin-password"


@dataclass
class ServerProc:
    """`gitmoor server` as a process of its own; /proc for its memory."""

    kubeconfig: Path
    port: int
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "gitmoor.cli.main",
            "--kubeconfig",
            str(self.kubeconfig),
            "--apps-namespace",
            APPS_NS,
            "server",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--allow-file-repos",
            str(self.log_path.parent),
        ]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def memory_mb(self) -> tuple[float, float]:
        assert self.proc is not None
        vals: dict[str, float] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                vals[line.split(":")[0]] = int(line.split()[1]) / 1024
        return vals["VmRSS"], vals["VmHWM"]

    async def wait_ready(self, http: httpx.AsyncClient, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; log: {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{self.url}/readyz", timeout=2)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server was not ready within {within:.0f}s")
            await asyncio.sleep(0.2)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


async def load(
    url: str, headers: dict[str, str], paths: list[str], clients: int, seconds: float
) -> tuple[list[float], int, float]:
    """``clients`` loops, each on one connection, requesting random ``paths`` for
    ``seconds``; the latencies (s) of the 2xx answers, the count of others, and the
    mean size of an answer (KiB)."""
    latencies: list[float] = []
    sizes: list[int] = []
    failures = 0
    rng = random.Random(7)
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal failures
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
            while time.monotonic() < deadline:
                path = rng.choice(paths)
                t0 = time.perf_counter()
                r = await c.get(path)
                body = await r.aread()
                if r.is_success:
                    latencies.append(time.perf_counter() - t0)
                    sizes.append(len(body))
                else:
                    failures += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, failures, statistics.mean(sizes) / 1024 if sizes else 0.0


def stats(latencies: list[float], seconds: float, failures: int) -> str:
    ms = [x * 1000 for x in latencies]
    return (
        f"p50_ms={pct(ms, 50):.1f} p95_ms={pct(ms, 95):.1f} max_ms={max(ms, default=0):.1f} "
        f"rps={len(ms) / seconds:.0f} requests={len(ms)} failures={failures}"
    )


async def sse_fanout(
    url: str, token: str, tabs: int, kube: KubeClient, app: str, n: int
) -> tuple[list[float], float]:
    """Open ``tabs`` streams, wait for each snapshot, change ``app``; the delay until
    each stream saw it, and the time the snapshots took."""
    got: list[float] = []
    snapshot_done = [asyncio.Event() for _ in range(tabs)]
    changed_at: list[float] = []
    marker = f"bench-{time.time_ns()}"

    async def tab(i: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, timeout=None) as c,
            c.stream("GET", "/api/v1/stream/applications") as r,
        ):
            seen = 0
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    seen += 1
                    if seen == n:
                        snapshot_done[i].set()
                    elif seen > n and changed_at and app in line:
                        got.append(time.monotonic() - changed_at[0])
                        return

    t0 = time.monotonic()
    tasks = [asyncio.create_task(tab(i)) for i in range(tabs)]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in snapshot_done)), 120)
        snapshots = time.monotonic() - t0
        changed_at.append(time.monotonic())
        # A change the stream reports: the app's health message through its status
        # would race the controller; a label on the Application is a plain change.
        await kube.merge_patch(
            store.app_ref(app, APPS_NS), {"metadata": {"labels": {"bench": marker}}}
        )
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return got, snapshots


async def browser_render(url: str, n: int, renders: int) -> list[float]:
    """Seconds from navigation to the list page with all ``n`` apps in the DOM."""
    from playwright.async_api import async_playwright

    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once, before the browser starts
        raise SystemExit(MISSING)
    times: list[float] = []
    profile = tempfile.mkdtemp(prefix="gitmoor-bench-chromium-")
    try:
        async with async_playwright() as pw:
            ctx = await pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            page = await ctx.new_page()
            await page.goto(f"{url}/login")
            await page.fill("input[name=username]", "admin")
            await page.fill("input[name=password]", PASSWORD)
            await page.press("input[name=password]", "Enter")
            await page.wait_for_url(f"{url}/applications")
            for _ in range(renders):
                t0 = time.perf_counter()
                await page.goto(f"{url}/applications", wait_until="commit")
                # A locator, not wait_for_function: the page's CSP forbids eval.
                await (
                    page.locator("tr[data-app], li[data-app]")
                    .nth(n - 1)
                    .wait_for(state="attached", timeout=30000)
                )
                times.append(time.perf_counter() - t0)
            await ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return times


async def bench(cp: ControlPlane, work: Path, args: argparse.Namespace, fig: Figures) -> None:
    n, m = args.apps, args.objects
    names = [f"app-{i:03d}" for i in range(n)]
    repo = Repo(work / "repo")
    files: dict[str, str] = {}
    for a in names:
        files |= app_files(a, m, "v0")
    commit = repo.commit(files, "apps")
    repo_url = repo.path.as_uri()
    env = {
        **os.environ,
        "GITMOOR_CACHE_DIR": str(work / "cache"),
        "GITMOOR_ALLOW_FILE_REPOS": str(work),
        "PYTHONUNBUFFERED": "1",
    }
    ctrl = ControllerProc(
        kubeconfig=cp.mint_kubeconfig("gitmoor-controller", ["system:masters"]),
        port=free_port(),
        workers=8,
        interval=600,
        log_dir=work,
        env=env,
    )
    server = ServerProc(
        kubeconfig=cp.mint_kubeconfig("gitmoor-server", ["system:masters"]),
        port=free_port(),
        log_path=work / "server.log",
        env=env,
    )
    args.server = server
    async with (
        KubeClient(load_kubeconfig(cp.kubeconfig), user_agent="kubectl/bench") as kube,
        httpx.AsyncClient() as http,
    ):
        await store.install(kube, APPS_NS)
        await accounts.ensure_settings(kube, APPS_NS)
        await accounts.reset_password(kube, APPS_NS, "admin", PASSWORD)
        await create_apps(kube, names, repo_url)
        watch = AppWatch(kube, synced_at(commit))
        watch_task = asyncio.create_task(watch.run())
        t0 = time.monotonic()
        try:
            ctrl.start()
            await watch.until_all(names, 1800, "apps synced by the controller", ctrl)
        finally:
            watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch_task
            ctrl.stop()
        fig.add(
            "setup",
            f"apps={n} objects_per_app={m + 1} synced_seconds={time.monotonic() - t0:.0f} "
            f"clients={args.clients} seconds_per_route={args.seconds:.0f} tabs={args.tabs}",
        )

        t0 = time.monotonic()
        server.start()
        await server.wait_ready(http)
        fig.add("server_ready_seconds", f"{time.monotonic() - t0:.2f}", "process start to /readyz")
        rss, _ = server.memory_mb()
        fig.add("server_rss_idle_mb", f"{rss:.0f}")
        r = await http.post(
            f"{server.url}/api/v1/session", json={"username": "admin", "password": PASSWORD}
        )
        r.raise_for_status()
        token = r.json()["token"]

        routes = {
            "list": ["/api/v1/applications"],
            "app_page": [f"/applications/{a}" for a in names],
            "tree": [f"/api/v1/applications/{a}/tree" for a in names],
            "app_api": [f"/api/v1/applications/{a}" for a in names],
        }
        bearer = {"Authorization": f"Bearer {token}"}
        # A page is what a browser asks for: with the session cookie (the login's
        # token is its value), as a signed-in tab sends it.
        cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
        for route, paths in routes.items():
            headers = cookie if route == "app_page" else bearer
            await load(server.url, headers, paths[:1], 1, 1.0)  # warm
            latencies, failures, kb = await load(
                server.url, headers, paths, args.clients, args.seconds
            )
            fig.add(f"{route}", f"{stats(latencies, args.seconds, failures)} kb={kb:.0f}")
        rss, hwm = server.memory_mb()
        fig.add("server_rss_after_api_mb", f"{rss:.0f}", f"peak {hwm:.0f}")

        got, snapshots = await sse_fanout(server.url, token, args.tabs, kube, names[0], n)
        ms = sorted(x * 1000 for x in got)
        fig.add(
            "sse_fanout",
            f"tabs={args.tabs} received={len(ms)} p50_ms={pct(ms, 50):.0f} "
            f"max_ms={max(ms, default=0):.0f} snapshots_seconds={snapshots:.2f}",
            "one app changed; the delay until every open stream has it",
        )
        rss, hwm = server.memory_mb()
        fig.add("server_rss_after_sse_mb", f"{rss:.0f}", f"peak {hwm:.0f}")

        if not args.no_browser:
            times = await browser_render(server.url, n, args.renders)
            fig.add(
                "browser_list_render_seconds",
                f"{statistics.median(times):.3f}",
                f"median of {len(times)}, min {min(times):.3f}, max {max(times):.3f}: "
                f"navigation to all {n} apps in the DOM (aim < 1 s); loadavg {loadavg()}",
            )
        rss, hwm = server.memory_mb()
        fig.add("server_rss_final_mb", f"{rss:.0f}", f"peak {hwm:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--objects", type=int, default=50, help="ConfigMaps per app (+ a Deployment)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15, help="per route")
    ap.add_argument("--tabs", type=int, default=50, help="SSE streams open at once")
    ap.add_argument("--renders", type=int, default=5, help="page loads in Chromium")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--quick", action="store_true", help="20 apps x 10, 5 s per route")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args, _unknown = ap.parse_known_args()
    if args.quick:
        args.apps, args.objects, args.seconds, args.tabs, args.renders = 20, 10, 5, 10, 3
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="gitmoor-bench-server-"))
    cp = ControlPlane(home=work / "cp", name="bench-server")
    fig = Figures()
    ok = False
    try:
        cp.start(find_binaries())
        asyncio.run(bench(cp, work, args, fig))
        ok = True
    finally:
        server: ServerProc | None = getattr(args, "server", None)
        if server is not None:
            if not ok:
                print(f"# server log tail:\n{server.tail()}", file=sys.stderr)
            server.stop()
        cp.stop()
        if args.keep:
            print(f"# work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
