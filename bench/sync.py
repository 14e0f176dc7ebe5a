"""Figures for a sync of 1,000 ConfigMaps: gitmoor against a bare HTTP/2 client.

    uv run python bench/sync.py                # 3 runs, medians and every value
    uv run python bench/sync.py --runs 5 --kubectl

Starts a control plane of its own (in a temporary directory, stopped at the end),
makes a git repository of 1,000 ConfigMaps of about 0.6 KB (plain YAML, one file
each, committed, a file:// URL) and measures, in the same run, each in a fresh
empty namespace:

  bare        server-side apply of the 1,000 objects by a minimal client: httpx
              AsyncClient(http2=True), one connection, --in-flight requests at a
              time. The reference (shared/ARCHITECTURE.md, "Talking to the API
              server fast").
  first_sync  ``Engine.sync`` of an Application pointing at the repository, with a
              cold git and render cache, by an Engine set up as the controller
              sets it up (with its DryRunCache); split into the engine's steps as
              its ``on_step`` observer reports them (an engine without one is
              timed around desired, run_sync and refresh instead).
              ``first_sync_warm_git``: a second app of the same commit.
  resync      ``Engine.sync`` again with nothing changed: seconds, requests by
              kind, and writes to the synced objects (non-dry-run applies, and
              resourceVersions that moved). The aim is zero object writes.
  refresh     ``Engine.refresh`` (compare) of the synced app: seconds, requests.
  cli_*       the same three with a new Engine (and an empty DryRunCache) per
              command, as ``gitmoor app sync`` makes one, in this process: the
              engine's part of the process_* figures (--no-cli skips them).
  process_*   the CLI as a user runs it, each a new ``gitmoor`` process (Python
              start-up and imports included; --no-process skips them):
              ``gitmoor app sync`` of a new app (cold git cache), the same
              command again with nothing changed, and ``gitmoor app diff`` of the
              synced app against ``kubectl diff --server-side`` of the same files
              in the same namespace. ``process_startup``: ``gitmoor version``.
              Bytecode is cached (PYTHONPYCACHEPREFIX, warmed by a throwaway
              app first), as an installed gitmoor has it.
  kubectl     ``kubectl apply --server-side`` of the same files (--kubectl; slow).

Prints one line per figure (key=value) so runs can be compared, then a summary
of medians with each figure's ratio to its baseline. The aims are those of
issue 11 and shared/ARCHITECTURE.md: a first sync within 1.25x the bare client,
``gitmoor app sync`` as a process within 1.35x, a re-sync with nothing changed
by a fresh process within 0.3x that process's first sync, ``gitmoor app diff``
within 0.5x ``kubectl diff --server-side``, and a re-sync that writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from bare import apply_all, bare_client  # noqa: E402

from gitmoor.engine import app as engine_app  # noqa: E402
from gitmoor.engine import store  # noqa: E402
from gitmoor.engine.app import Engine  # noqa: E402
from gitmoor.engine.compare import DryRunCache  # noqa: E402
from gitmoor.kube import KubeClient, load_kubeconfig  # noqa: E402
from gitmoor.model import ObjectRef  # noqa: E402
from gitmoor.model.application import AppSource, Destination, application_manifest  # noqa: E402
from gitmoor.testenv import ControlPlane, find_binaries  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gitmoor.engine.sync import SyncResult
    from gitmoor.kube import ClusterConfig
    from gitmoor.model.application import Application

APP_NAMESPACE = "gitmoor"
_CONFIG_LINE = "value-{i:04d}-" + "x" * 40


def configmap(i: int) -> dict[str, Any]:
    """ConfigMap number ``i``: about 0.6 KB of YAML, no namespace (the app's destination)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"cm-{i:04d}",
            "labels": {"bench.gitmoor.io/set": "sync", "bench.gitmoor.io/index": str(i)},
        },
        "data": {f"key{k}": _CONFIG_LINE.format(i=i) for k in range(8)},
    }


def to_yaml(obj: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False)


def make_repo(root: Path, n: int) -> tuple[str, int]:
    """A committed repository of ``n`` ConfigMap files; its file:// URL and mean file size."""
    root.mkdir(parents=True)
    sizes = []
    for i in range(n):
        text = to_yaml(configmap(i))
        (root / f"cm-{i:04d}.yaml").write_text(text)
        sizes.append(len(text))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "configmaps"]):
        subprocess.run(["git", "-C", str(root), *args], env=env, check=True)
    return f"file://{root}", round(statistics.mean(sizes))


def warm_up_repo(work: Path) -> str:
    """A repository of three ConfigMaps, for the processes' warm-up app."""
    url, _ = make_repo(work / "warm-up-repo", 3)
    return url


# ---------------------------------------------------------------------- requests


def classify(method: str, path: str, params: Any) -> str:
    params = dict(params or {})
    if method == "GET":
        return "list" if "limit" in params else "get"
    if method == "PATCH":
        if path.endswith("/status"):
            return "status_patch"
        if params.get("dryRun"):
            return "dry_run_apply"
        if f"/namespaces/{APP_NAMESPACE}/" in path:
            # The app's own records (inventory ConfigMaps), not the synced objects.
            return "app_record_apply"
        if "fieldManager" in params:
            return "apply"
        return "patch"
    return method.lower()


@dataclass
class RequestLog:
    """Every request the engine's client makes, by kind (wraps ``KubeClient._request``)."""

    counts: Counter[str] = field(default_factory=Counter)

    def install(self, kube: KubeClient) -> None:
        orig = kube._request

        async def recorded(method: str, path: str, *, params: Any = None, **kw: Any) -> Any:
            self.counts[classify(method, path, params)] += 1
            return await orig(method, path, params=params, **kw)

        kube._request = recorded  # type: ignore[method-assign]

    @contextmanager
    def window(self) -> Iterator[Counter[str]]:
        """The requests made inside the ``with`` block."""
        before = Counter(self.counts)
        got: Counter[str] = Counter()
        try:
            yield got
        finally:
            got.update(self.counts - before)


def fmt_counts(c: Counter[str]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(c.items())) or "none"


# ---------------------------------------------------------------------- bare


async def bare_apply(cfg: ClusterConfig, namespace: str, n: int, in_flight: int) -> float:
    """Server-side apply of ``n`` ConfigMaps with nothing but httpx over one HTTP/2
    connection (``bare.py``, the same client ``bench/controller.py`` measures with);
    the connection is warm, as the engine's client has one from earlier requests."""
    objects = []
    for i in range(n):
        obj = configmap(i)
        obj["metadata"]["namespace"] = namespace
        objects.append(obj)
    async with bare_client(cfg) as http:
        return await apply_all(http, objects, in_flight=in_flight)


# ---------------------------------------------------------------------- gitmoor


@dataclass
class Split:
    """Seconds spent in each step of the engine, summed over the calls inside a window."""

    seconds: Counter[str] = field(default_factory=Counter)


def timed_engine(
    kube: KubeClient,
    split_of: dict[str, Split],
    *,
    git_cache_dir: Path,
    dry_runs: DryRunCache | None,
) -> Engine:
    """An engine whose steps add up into ``split_of["current"]``.

    An engine with an ``on_step`` observer (issue 11) reports its own steps, so
    nothing of it is patched. An older one is timed from outside, around
    ``desired``, ``run_sync`` and ``refresh``.
    """
    engine = Engine(kube, git_cache_dir=git_cache_dir, dry_runs=dry_runs)
    if hasattr(engine, "on_step"):

        def observe(step: str, seconds: float) -> None:
            split_of["current"].seconds[step] += seconds

        engine.on_step = observe
        return engine
    legacy = _LegacyTimedEngine(kube, git_cache_dir=git_cache_dir, dry_runs=dry_runs)
    legacy.split_of = split_of
    _time_run_sync(split_of)
    return legacy


class _LegacyTimedEngine(Engine):
    """An engine without ``on_step``, timed around its calls; behaviour unchanged."""

    split_of: dict[str, Split]

    async def desired(self, app: Application, revision: str | None = None) -> engine_app.Desired:
        t0 = time.monotonic()
        try:
            return await super().desired(app, revision)
        finally:
            self.split_of["current"].seconds["desired"] += time.monotonic() - t0

    async def refresh(self, app: Application, **kw: Any) -> Any:
        seconds = self.split_of["current"].seconds
        t0 = time.monotonic()
        d0 = seconds["desired"]
        try:
            return await super().refresh(app, **kw)
        finally:
            # refresh calls desired again; count that once, under desired.
            seconds["refresh"] += time.monotonic() - t0 - (seconds["desired"] - d0)


_patched: list[bool] = []


def _time_run_sync(split_of: dict[str, Split]) -> None:
    """Time ``run_sync`` (apply, health, prune) as an engine without ``on_step`` calls it."""
    orig = getattr(engine_app, "run_sync", None)
    if orig is None or _patched:
        return
    _patched.append(True)

    async def timed(app: Application, *args: Any, **kw: Any) -> SyncResult:
        t0 = time.monotonic()
        try:
            return await orig(app, *args, **kw)
        finally:
            split_of["current"].seconds["run_sync"] += time.monotonic() - t0

    engine_app.run_sync = timed


async def new_namespace(kube: KubeClient, name: str) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def resource_versions(kube: KubeClient, namespace: str) -> dict[str, str]:
    ar = await kube.resource("", "v1", "ConfigMap")
    listed = await kube.list(ar, namespace, label_selector="bench.gitmoor.io/set=sync")
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed.items}


@dataclass
class RunFigures:
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def steps(self, prefix: str, split: Split, took: float) -> None:
        """``{prefix}_step_{name}_seconds`` for each step, and what no step accounts for."""
        for name, seconds in split.seconds.items():
            self.values[f"{prefix}_step_{name}_seconds"] = seconds
        self.values[f"{prefix}_step_other_seconds"] = took - sum(split.seconds.values())


async def save_app(kube: KubeClient, repo_url: str, name: str) -> Application:
    """A new Application of the repository, deploying into the namespace of its name."""
    manifest = application_manifest(
        name, APP_NAMESPACE, AppSource(repo_url, "."), Destination(name)
    )
    return await store.save_app(kube, manifest)


async def first_sync(
    engine: Engine,
    kube: KubeClient,
    rlog: RequestLog,
    split_of: dict[str, Split],
    repo_url: str,
    name: str,
    n: int,
) -> tuple[float, Split, Counter[str]]:
    """Sync a new Application of the repository into a new namespace of the same name."""
    await new_namespace(kube, name)
    app = await save_app(kube, repo_url, name)
    split = split_of["current"] = Split()
    with rlog.window() as reqs:
        t0 = time.monotonic()
        result = await engine.sync(app, initiated_by="bench")
        took = time.monotonic() - t0
    if not result.ok:
        raise RuntimeError(f"first sync of {name} failed: {result.message}")
    if len(await resource_versions(kube, name)) != n:
        raise RuntimeError(f"first sync of {name} did not leave {n} ConfigMaps")
    return took, split, reqs


async def resync_and_refresh(
    prefix: str,
    fig: RunFigures,
    engine: Engine,
    kube: KubeClient,
    rlog: RequestLog,
    split_of: dict[str, Split],
    ns: str,
) -> None:
    """c) sync again with nothing changed, then d) refresh; ``prefix`` names the figures."""
    before = await resource_versions(kube, ns)
    app = await store.get_app(kube, ns, APP_NAMESPACE)
    split = split_of["current"] = Split()
    with rlog.window() as reqs:
        t0 = time.monotonic()
        result = await engine.sync(app, initiated_by="bench")
        took = fig.values[f"{prefix}resync_seconds"] = time.monotonic() - t0
    if not result.ok:
        raise RuntimeError(f"re-sync of {ns} failed: {result.message}")
    after = await resource_versions(kube, ns)
    fig.steps(f"{prefix}resync", split, took)
    fig.values[f"{prefix}resync_object_writes"] = reqs["apply"]
    fig.values[f"{prefix}resync_changed_resource_versions"] = sum(
        1 for k, v in after.items() if before.get(k) != v
    )
    fig.values[f"{prefix}resync_status_writes"] = reqs["status_patch"]
    fig.values[f"{prefix}resync_dry_runs"] = reqs["dry_run_apply"]
    fig.values[f"{prefix}resync_requests"] = sum(reqs.values())
    fig.notes[f"{prefix}resync_requests"] = fmt_counts(reqs)

    app = await store.get_app(kube, ns, APP_NAMESPACE)
    split_of["current"] = Split()
    with rlog.window() as reqs:
        t0 = time.monotonic()
        _, comparison = await engine.refresh(app)
        fig.values[f"{prefix}refresh_seconds"] = time.monotonic() - t0
    if comparison is None or comparison.sync.value != "Synced":
        raise RuntimeError(f"refresh of {ns} after its sync is not Synced")
    fig.values[f"{prefix}refresh_requests"] = sum(reqs.values())
    fig.notes[f"{prefix}refresh_requests"] = fmt_counts(reqs)


# ---------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Processes:
    """How to start ``gitmoor`` and ``kubectl`` as a user would, on this control plane."""

    kubeconfig: Path
    work: Path

    def env(self, cache: Path) -> dict[str, str]:
        # PYTHONPATH: the gitmoor of this checkout, whichever one the venv installed.
        path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "GITMOOR_ALLOW_FILE_REPOS": str(self.work),
            "GITMOOR_CACHE_DIR": str(cache),
            "PYTHONPATH": path,
            # Bytecode cached, as an installed gitmoor has it (pip compiles at
            # install, Python caches at first import): without it every process
            # compiled each module it imports, 0.7 s of a re-sync's 1.6 s here.
            "PYTHONPYCACHEPREFIX": str(self.work / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    async def warm_up(self, kube: KubeClient, repo_url: str) -> None:
        """One sync and diff of a throwaway app, so the bytecode cache holds what
        the measured commands import."""
        ns = "bench-proc-warm-up"
        cache = self.work / "process-cache-warm-up"
        gitmoor = [*self.gitmoor(), "--apps-namespace", APP_NAMESPACE]
        await new_namespace(kube, ns)
        await save_app(kube, repo_url, ns)
        await self.run([*gitmoor, "version"], cache)
        await self.run([*gitmoor, "app", "sync", ns, "--quiet"], cache)
        await self.run([*gitmoor, "app", "diff", ns], cache, ok=(0, 1))

    @staticmethod
    def gitmoor() -> list[str]:
        script = Path(sys.executable).with_name("gitmoor")
        if script.exists():
            return [str(script)]
        return [
            sys.executable,
            "-c",
            "import sys; from gitmoor.cli.main import app; sys.exit(app())",
        ]

    async def run(
        self, argv: list[str], cache: Path, ok: tuple[int, ...] = (0,)
    ) -> tuple[float, int]:
        """Seconds from start to exit, and the exit code (one of ``ok``, else an error)."""
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=self.env(cache),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = await proc.communicate()
        took = time.monotonic() - t0
        if proc.returncode not in ok:
            raise RuntimeError(
                f"{' '.join(argv[-4:])} exited {proc.returncode}: {err.decode()[-800:]}"
            )
        return took, proc.returncode or 0


async def process_figures(
    i: int,
    fig: RunFigures,
    kube: KubeClient,
    procs: Processes,
    repo_url: str,
    repo_dir: Path,
    n: int,
) -> None:
    """``gitmoor app sync`` of a new app (cold git cache), again with nothing
    changed, ``gitmoor app diff`` of it, and ``kubectl diff --server-side``."""
    ns = f"bench-proc-{i}"
    cache = procs.work / f"process-cache-{i}"
    gitmoor = [*procs.gitmoor(), "--apps-namespace", APP_NAMESPACE]
    fig.values["process_startup_seconds"], _ = await procs.run([*gitmoor, "version"], cache)
    await new_namespace(kube, ns)
    await save_app(kube, repo_url, ns)
    fig.values["process_first_sync_seconds"], _ = await procs.run(
        [*gitmoor, "app", "sync", ns, "--quiet"], cache
    )
    if len(await resource_versions(kube, ns)) != n:
        raise RuntimeError(f"gitmoor app sync {ns} did not leave {n} ConfigMaps")
    before = await resource_versions(kube, ns)
    fig.values["process_resync_seconds"], _ = await procs.run(
        [*gitmoor, "app", "sync", ns, "--quiet"], cache
    )
    after = await resource_versions(kube, ns)
    fig.values["process_resync_changed_resource_versions"] = sum(
        1 for k, v in after.items() if before.get(k) != v
    )
    # Exit 1 would mean differences right after a sync: the figure is kept, and said.
    fig.values["process_diff_seconds"], code = await procs.run(
        [*gitmoor, "app", "diff", ns], cache, ok=(0, 1)
    )
    fig.notes["process_diff_exit"] = str(code)
    # kubectl diff dry-runs every file as the same server-side apply would; it
    # exits 1 because the live objects carry gitmoor's tracking annotations.
    fig.values["kubectl_diff_seconds"], _ = await procs.run(
        [
            "kubectl",
            "diff",
            "--server-side",
            "--field-manager=gitmoor",
            "--force-conflicts",
            "-n",
            ns,
            "-f",
            str(repo_dir),
        ],
        cache,
        ok=(0, 1),
    )


async def one_run(
    i: int,
    kube: KubeClient,
    rlog: RequestLog,
    split_of: dict[str, Split],
    repo_url: str,
    work: Path,
    args: argparse.Namespace,
    procs: Processes,
    repo_dir: Path,
) -> RunFigures:
    fig = RunFigures()
    n = args.objects
    git_cache = work / f"git-cache-{i}"
    # The engine as the controller runs it: one for the process, with the dry-run
    # verdict cache. A new one per run: cold git cache and render cache.
    engine = timed_engine(kube, split_of, git_cache_dir=git_cache, dry_runs=DryRunCache())
    ns = f"bench-gitmoor-{i}"

    async def bare() -> None:
        ns_bare = f"bench-bare-{i}"
        await new_namespace(kube, ns_bare)
        fig.values["bare_seconds"] = await bare_apply(kube.config, ns_bare, n, args.in_flight)

    async def gitmoor() -> None:
        took, split, reqs = await first_sync(engine, kube, rlog, split_of, repo_url, ns, n)
        fig.values["first_sync_seconds"] = took
        fig.steps("first_sync", split, took)
        fig.notes["first_sync_requests"] = fmt_counts(reqs)

    # Every object of a run goes into namespaces of its own; bare and gitmoor take
    # turns going first, so that a drift of the machine's load favours neither.
    for step in (bare, gitmoor) if i % 2 == 0 else (gitmoor, bare):
        await step()
    app = await store.get_app(kube, ns, APP_NAMESPACE)
    fig.values["app_object_kib"] = len(json.dumps(app.raw)) / 1024

    # b') a second app of the same commit: the git checkout is cached, and the
    # render too where the render cache shares a commit's render between apps
    took, _, _ = await first_sync(engine, kube, rlog, split_of, repo_url, f"{ns}-warm", n)
    fig.values["first_sync_warm_git_seconds"] = took

    # c), d) on the first app, with the same engine
    await resync_and_refresh("", fig, engine, kube, rlog, split_of, ns)

    # b"), c"), d") as the CLI does it: a new Engine per command, with a new
    # (empty) dry-run cache (git cache warm, as ~/.cache/gitmoor/git is between
    # commands)
    if not args.no_cli:
        ns_cli = f"bench-cli-{i}"
        cli = timed_engine(kube, split_of, git_cache_dir=git_cache, dry_runs=DryRunCache())
        took, _, reqs = await first_sync(cli, kube, rlog, split_of, repo_url, ns_cli, n)
        fig.values["cli_first_sync_seconds"] = took
        fig.notes["cli_first_sync_requests"] = fmt_counts(reqs)
        cli = timed_engine(kube, split_of, git_cache_dir=git_cache, dry_runs=DryRunCache())
        await resync_and_refresh("cli_", fig, cli, kube, rlog, split_of, ns_cli)

    # e) gitmoor and kubectl as processes
    if not args.no_process:
        await process_figures(i, fig, kube, procs, repo_url, repo_dir, n)

    # f) kubectl apply
    if args.kubectl:
        ns_k = f"bench-kubectl-{i}"
        await new_namespace(kube, ns_k)
        cmd = ["kubectl", "apply", "--server-side", "--field-manager=bench", "-n", ns_k]
        fig.values["kubectl_seconds"], _ = await procs.run(
            [*cmd, "-f", str(repo_dir)], work / "kubectl-cache"
        )

    # The namespaces are left to the control plane's stop: deleting thousands of
    # objects while the next run measures would only add noise.
    return fig


#: (figure, its baseline, the aim) for the summary: ratio = figure / baseline
SUMMARY = (
    ("bare_seconds", "", "the reference"),
    ("first_sync_seconds", "bare_seconds", "aim <= 1.25"),
    ("process_first_sync_seconds", "bare_seconds", "aim <= 1.35"),
    ("process_resync_seconds", "process_first_sync_seconds", "aim <= 0.3"),
    ("process_diff_seconds", "kubectl_diff_seconds", "aim <= 0.5"),
    ("kubectl_diff_seconds", "", "the reference of app diff"),
)


def report(runs: list[RunFigures], args: argparse.Namespace, mean_size: int) -> None:
    def vals(key: str) -> list[float]:
        return [r.values[key] for r in runs if key in r.values]

    def line(key: str, unit_fmt: str = ".2f", note: str = "") -> None:
        v = vals(key)
        if not v:
            return
        med = statistics.median(v)
        print(
            f"{key} median={med:{unit_fmt}} all={[float(f'{x:{unit_fmt}}') for x in v]}"
            + (f"  ({note})" if note else "")
        )

    def ratios(key: str, ref: str) -> list[float]:
        return [
            run.values[key] / run.values[ref]
            for run in runs
            if key in run.values and run.values.get(ref)
        ]

    def ratio(key: str, ref: str, aim: str) -> None:
        r = ratios(key, ref)
        if r:
            print(
                f"{key.removesuffix('_seconds')}_ratio_to_{ref.removesuffix('_seconds')}="
                f"{statistics.median(r):.2f} all={[round(x, 2) for x in r]}  ({aim})"
            )

    def requests(key: str) -> None:
        if key in runs[-1].notes:
            print(f"{key}_by_kind last_run={runs[-1].notes[key]}")

    def steps(prefix: str) -> None:
        keys = sorted({k for r in runs for k in r.values if k.startswith(f"{prefix}_step_")})
        for key in keys:
            line(key)

    def resync_lines(prefix: str) -> None:
        line(f"{prefix}resync_seconds", note="Engine.sync again, nothing changed")
        steps(f"{prefix}resync")
        line(f"{prefix}resync_object_writes", ".0f", "non-dry-run applies; aim 0")
        line(
            f"{prefix}resync_changed_resource_versions",
            ".0f",
            "ConfigMaps whose resourceVersion moved; aim 0",
        )
        line(
            f"{prefix}resync_status_writes",
            ".0f",
            "Application status patches: the operation's record",
        )
        line(f"{prefix}resync_dry_runs", ".0f")
        line(f"{prefix}resync_requests", ".0f")
        requests(f"{prefix}resync_requests")
        line(f"{prefix}refresh_seconds", note="Engine.refresh of the synced app")
        line(f"{prefix}refresh_requests", ".0f")
        requests(f"{prefix}refresh_requests")

    print(
        f"setup objects={args.objects} mean_file_bytes={mean_size} in_flight={args.in_flight} "
        f"runs={len(runs)} loadavg_start={args.load_start}"
    )
    line("bare_seconds", note=f"httpx http2, 1 connection, {args.in_flight} in flight")
    print("# gitmoor as the controller runs it: one Engine, with its DryRunCache")
    line("first_sync_seconds", note="Engine.sync, cold git and render cache")
    ratio("first_sync_seconds", "bare_seconds", "aim <= 1.25")
    steps("first_sync")
    requests("first_sync_requests")
    line("first_sync_warm_git_seconds", note="a second app of the same commit, git cached")
    ratio("first_sync_warm_git_seconds", "bare_seconds", "aim <= 1.25")
    line("app_object_kib", ".0f", "the Application after its sync; etcd refuses over 1536")
    resync_lines("")
    print("# gitmoor as the CLI runs it, in this process: a new Engine and DryRunCache per command")
    line("cli_first_sync_seconds", note="git cache warm")
    ratio("cli_first_sync_seconds", "bare_seconds", "aim <= 1.25")
    requests("cli_first_sync_requests")
    resync_lines("cli_")
    print("# gitmoor as a user runs it: a new process per command")
    line("process_startup_seconds", note="gitmoor version: start-up and imports")
    line("process_first_sync_seconds", note="gitmoor app sync of a new app, cold git cache")
    ratio("process_first_sync_seconds", "bare_seconds", "aim <= 1.35")
    line("process_resync_seconds", note="gitmoor app sync again, nothing changed")
    ratio("process_resync_seconds", "process_first_sync_seconds", "aim <= 0.3")
    ratio("process_resync_seconds", "bare_seconds", "for scale")
    line("process_resync_changed_resource_versions", ".0f", "aim 0")
    line("process_diff_seconds", note="gitmoor app diff of the synced app")
    line("kubectl_diff_seconds", note="kubectl diff --server-side of the same files")
    ratio("process_diff_seconds", "kubectl_diff_seconds", "aim <= 0.5")
    if "process_diff_exit" in runs[-1].notes:
        print(f"process_diff_exit last_run={runs[-1].notes['process_diff_exit']}  (aim 0)")
    line("kubectl_seconds", note="kubectl apply --server-side, create")
    ratio("kubectl_seconds", "bare_seconds", "for scale")
    print(f"# summary: medians of {len(runs)} run(s), seconds and ratio to the baseline")
    for key, ref, aim in SUMMARY:
        v = vals(key)
        if not v:
            continue
        r = ratios(key, ref) if ref else []
        shown = f" {statistics.median(r):.2f}x {ref.removesuffix('_seconds')}" if r else ""
        print(f"  {key.removesuffix('_seconds'):<22} {statistics.median(v):6.2f} s{shown}  ({aim})")
    print(f"loadavg_end={_loadavg()}")


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def bench(cp: ControlPlane, work: Path, args: argparse.Namespace) -> None:
    repo_dir = work / "repo"
    repo_url, mean_size = make_repo(repo_dir, args.objects)
    split_of: dict[str, Split] = {"current": Split()}
    rlog = RequestLog()
    procs = Processes(cp.kubeconfig, work)
    async with KubeClient(load_kubeconfig(cp.kubeconfig), max_in_flight=args.in_flight) as kube:
        rlog.install(kube)
        await store.install(kube, APP_NAMESPACE)
        # Warm: the first request pays the TLS handshake and discovery, not a figure.
        await kube.get(ObjectRef("", "v1", "Namespace", "", "default"))
        if not args.no_process:
            await procs.warm_up(kube, warm_up_repo(work))
        runs = []
        for i in range(args.runs):
            runs.append(
                await one_run(i, kube, rlog, split_of, repo_url, work, args, procs, repo_dir)
            )
            if args.verbose:
                print(f"# run {i}: {runs[-1].values}", flush=True)
    report(runs, args, mean_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs; figures are their medians")
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--in-flight", type=int, default=64, help="requests in flight (32-64)")
    ap.add_argument("--kubectl", action="store_true", help="also time kubectl (~30 s per run)")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI-style engine figures")
    ap.add_argument(
        "--no-process", action="store_true", help="skip the gitmoor and kubectl process figures"
    )
    ap.add_argument("--verbose", action="store_true", help="print each run's figures as it ends")
    # bench/run.py passes its own arguments (--cold) to every benchmark.
    args, _unknown = ap.parse_known_args()
    args.load_start = _loadavg().replace(" ", "/")
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="gitmoor-bench-sync-"))
    # The repository is a file:// URL under work/: gitmoor refuses file:// elsewhere.
    os.environ["GITMOOR_ALLOW_FILE_REPOS"] = str(work)
    cp = ControlPlane(home=work / "cp", name="bench-sync")
    try:
        cp.start(find_binaries())
        asyncio.run(bench(cp, work, args))
    finally:
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
