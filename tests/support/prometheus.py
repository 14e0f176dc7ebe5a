"""A real Prometheus server on loopback, scraping an endpoint whose success ratio
the test sets.

The rollout analysis tests run Argo Rollouts' ``prometheus`` provider (an
``address`` and a PromQL ``query``) against the real server that
``testenv/build.sh prometheus`` builds from the ``github.com/prometheus/prometheus``
Go module: the issue rules out anything that merely answers PromQL. What the
server scrapes is ours: :class:`MetricsEndpoint` serves request counters in
Prometheus' text exposition format, growing at a fixed total rate, split between
``status="200"`` and ``status="500"`` by the ratio the test sets, so that

    sum(rate(http_requests_total{status!~"5.."}[5s])) / sum(rate(http_requests_total[5s]))

returns that ratio once the window holds only samples taken after the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

JSON = dict[str, Any]

#: The scrape job's name in the generated configuration (the ``job`` label).
JOB = "gitmoor-test"
#: Requests per second the endpoint reports in total, whatever the ratio.
REQUESTS_PER_SECOND = 100.0
#: Where each counter starts: a service that was already running. A counter that
#: starts near zero makes rate() stop its extrapolation at zero for that series
#: only, which skews a ratio of two series during the first seconds.
INITIAL_COUNT = 10_000.0


class PrometheusQueryError(RuntimeError):
    """The server refused a query (``"status": "error"``), with its own message."""


def success_ratio_query(
    window: str = "5s", *, metric: str = "http_requests_total", code_label: str = "status"
) -> str:
    """The share of non-5xx requests over ``window``, as an AnalysisTemplate
    would ask it. A window of several scrape intervals (1s here) always holds the
    two samples rate() needs."""
    return f'sum(rate({metric}{{{code_label}!~"5.."}}[{window}])) / sum(rate({metric}[{window}]))'


def _escape_label_value(value: str) -> str:
    # The text exposition format's escapes inside a quoted label value.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsEndpoint:
    """``GET /metrics`` on loopback: one counter family, a series per status code.

    The counters grow continuously with time (read at scrape time), at
    :data:`REQUESTS_PER_SECOND` in total, ``ratio`` of it as ``200`` and the rest
    as ``500``. A new ratio applies from the moment it is set; what was counted
    before stays counted, as with a real service.
    """

    def __init__(
        self,
        *,
        metric: str = "http_requests_total",
        code_label: str = "status",
        labels: dict[str, str] | None = None,
    ) -> None:
        self.metric = metric
        self.code_label = code_label
        self.labels = dict(labels or {})
        self._lock = threading.Lock()
        self._ratio = 1.0
        self._since = time.monotonic()
        self._base = {"200": INITIAL_COUNT, "500": INITIAL_COUNT}
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = endpoint.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # one line per scrape every second would drown pytest's output

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self._httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    @property
    def success_ratio(self) -> float:
        return self._ratio

    def set_success_ratio(self, ratio: float) -> None:
        """From now on, ``ratio`` of the requests succeed (0 to 1)."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"a success ratio is between 0 and 1, not {ratio}")
        with self._lock:
            now = time.monotonic()
            self._base = self._counts_at(now)
            self._since, self._ratio = now, ratio

    def counts(self) -> dict[str, float]:
        """The counters' values now, by status code."""
        with self._lock:
            return self._counts_at(time.monotonic())

    def _counts_at(self, now: float) -> dict[str, float]:
        served = REQUESTS_PER_SECOND * (now - self._since)
        return {
            "200": self._base["200"] + served * self._ratio,
            "500": self._base["500"] + served * (1.0 - self._ratio),
        }

    def exposition(self) -> str:
        lines = [
            f"# HELP {self.metric} Requests served, by status code (the test sets the ratio).",
            f"# TYPE {self.metric} counter",
        ]
        for code, value in self.counts().items():
            labels = {**self.labels, self.code_label: code}
            rendered = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in labels.items())
            lines.append(f"{self.metric}{{{rendered}}} {value!r}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()


def _free_port() -> int:
    # Prometheus takes no ":0" it would report back, so pick a port the kernel
    # just handed out; the start retries if another process takes it meanwhile.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _value_of(data: JSON, promql: str) -> float | None:
    """One number out of ``/api/v1/query``'s ``data``: a scalar, or a vector of
    at most one sample (None when empty: no data yet, or nothing matched)."""
    kind, result = data.get("resultType"), data.get("result") or []
    if kind == "scalar":
        return float(result[1])
    if kind == "vector":
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusQueryError(f"{promql!r} returned {len(result)} series, not one")
        return float(result[0]["value"][1])
    raise PrometheusQueryError(f"{promql!r} returned a {kind}, not a scalar or vector")


def _data_of(response: httpx.Response, promql: str) -> JSON:
    body: JSON = response.json()
    if body.get("status") != "success":
        raise PrometheusQueryError(
            f"{promql!r}: {body.get('errorType', 'error')}: {body.get('error', response.text)}"
        )
    data: JSON = body["data"]
    return data


class PrometheusServer:
    """The ``prometheus`` binary as a child process: config, TSDB and log in
    ``workdir``, the HTTP API on a loopback port."""

    def __init__(self, binary: Path, workdir: Path, targets: list[str]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.targets = targets
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The base URL, as an AnalysisTemplate's ``provider.prometheus.address``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def _write_config(self) -> Path:
        # A 1s scrape and evaluation interval (the smallest Prometheus's
        # duration syntax makes sense of here), so a new ratio shows within
        # seconds; the timeout may not exceed the interval.
        targets = ", ".join(f'"{t}"' for t in self.targets)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            "    static_configs:\n"
            f"      - targets: [{targets}]\n",
            encoding="utf-8",
        )
        return config

    def start(self, *, within: float = 60.0, attempts: int = 3) -> None:
        """Start the server and wait until ``/-/ready`` answers 200."""
        config = self._write_config()
        for attempt in range(1, attempts + 1):
            self.port = _free_port()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [
                        str(self.binary),
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--storage.tsdb.retention.time=1h",
                    ],
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(within):
                return
            lost_port = "address already in use" in self._log_tail()
            if not lost_port or attempt == attempts:
                self.stop()
                raise RuntimeError(
                    f"prometheus did not become ready on {self.address} within {within:.0f}s; "
                    f"log {self.log_path}:\n{self._log_tail()}"
                )

    def _wait_ready(self, within: float) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + within
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    return False
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.address}/-/ready").status_code == 200:
                        return True
                time.sleep(0.1)
        return False

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: Prometheus closes its TSDB and exits
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def query_data_sync(self, promql: str) -> JSON:
        with httpx.Client(timeout=5.0) as client:
            response = client.get(f"{self.address}/api/v1/query", params={"query": promql})
        return _data_of(response, promql)

    async def query_data(self, promql: str) -> JSON:
        """``/api/v1/query``'s ``data`` (``resultType`` and ``result``), as the
        analysis provider sees it."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.address}/api/v1/query", params={"query": promql})
        return _data_of(response, promql)

    async def query(self, promql: str) -> float | None:
        """The query's one value now (None when it matched nothing)."""
        return _value_of(await self.query_data(promql), promql)


class LivePrometheus:
    """What the ``prometheus`` fixture hands a test: the real server, the
    endpoint it scrapes, and the query that turns one into the other."""

    def __init__(self, server: PrometheusServer, endpoint: MetricsEndpoint) -> None:
        self.server = server
        self.endpoint = endpoint
        self.ratio_query = success_ratio_query(
            metric=endpoint.metric, code_label=endpoint.code_label
        )

    @property
    def address(self) -> str:
        return self.server.address

    def set_success_ratio(self, ratio: float) -> None:
        self.endpoint.set_success_ratio(ratio)

    async def query(self, promql: str) -> float | None:
        return await self.server.query(promql)

    async def wait_for_ratio(
        self,
        expected: float,
        tolerance: float = 0.01,
        timeout: float = 60.0,
        *,
        query: str | None = None,
    ) -> float:
        """Poll the server until ``query`` (the success ratio by default) is
        within ``tolerance`` of ``expected``; return the value seen. Async, so a
        controller running in the test's event loop goes on meanwhile."""
        promql = query or self.ratio_query
        deadline = time.monotonic() + timeout
        last: float | None = None
        while True:
            last = await self.query(promql)
            if last is not None and not math.isnan(last) and abs(last - expected) <= tolerance:
                return last
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{promql!r} was {last} after {timeout:.0f}s, not {expected} within {tolerance}"
                )
            await asyncio.sleep(0.25)


@contextlib.contextmanager
def running_prometheus(
    binary: Path, workdir: Path, endpoint: MetricsEndpoint | None = None, *, within: float = 60.0
) -> Iterator[LivePrometheus]:
    """Serve the endpoint, start Prometheus scraping it, and return once the
    success ratio can be queried (rate() needs two scrapes), so a test's first
    analysis measurement already finds data."""
    endpoint = endpoint or MetricsEndpoint()
    endpoint.start()
    server = PrometheusServer(binary, workdir, [endpoint.target])
    try:
        server.start(within=within)
        live = LivePrometheus(server, endpoint)
        deadline = time.monotonic() + within
        while server.query_data_sync(live.ratio_query).get("result") in (None, []):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"prometheus at {server.address} scraped nothing from {endpoint.target} "
                    f"within {within:.0f}s; log {server.log_path}"
                )
            time.sleep(0.2)
        yield live
    finally:
        server.stop()
        endpoint.stop()
