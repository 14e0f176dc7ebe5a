"""Prometheus metrics of the controller, named after Argo CD's so dashboards port.

=========================================  ==========================================
gitmoor                                    Argo CD (controller/metrics/metrics.go,
                                           reposerver/metrics)
=========================================  ==========================================
gitmoor_app_info                           argocd_app_info
gitmoor_app_reconcile_duration_seconds     argocd_app_reconcile (same buckets)
gitmoor_app_reconcile_total                (none: Argo CD counts via the histogram)
gitmoor_app_sync_total                     argocd_app_sync_total
gitmoor_git_request_duration_seconds       argocd_git_request_duration_seconds
gitmoor_git_request_total                  argocd_git_request_total
gitmoor_kube_requests_total                argocd_app_k8s_request_total /
                                           argocd_kubectl_exec_total
gitmoor_workqueue_depth                    workqueue_depth (controller-runtime)
gitmoor_cluster_cache_objects              argocd_cluster_api_resource_objects
=========================================  ==========================================

Every :class:`Metrics` has its own ``CollectorRegistry``: the global one would
make a second controller in the same process (tests, several shards) fail with
"Duplicated timeseries", and would mix their numbers.

What can be read at scrape time is read at scrape time, by a collector (as Argo
CD's ``appCollector`` lists Applications from its informer on every scrape):
the KubeClient's request counter, the queue depth, the cache sizes and the app
snapshot. Nothing has to remember to keep a gauge up to date, and a value is
never older than the scrape.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Protocol

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gitmoor.model import GitmoorError
from gitmoor.source.urls import normalize_repo_url, redact_url

if TYPE_CHECKING:
    from collections import Counter as RequestCounter
    from collections.abc import Callable, Iterable

    from prometheus_client.metrics_core import Metric

    from gitmoor.model.application import Application

log = logging.getLogger("gitmoor.controller.metrics")

#: Argo CD's argocd_app_reconcile buckets, "chosen after observing a ~2100ms mean
#: reconcile time"; the same buckets keep its dashboards' quantiles meaningful.
RECONCILE_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: Argo CD's repo-server buckets for argocd_git_request_duration_seconds.
GIT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0, 20.0)

APP_INFO_LABELS = (
    "namespace",
    "name",
    "project",
    "repo",
    "dest_namespace",
    "dest_server",
    "sync_status",
    "health_status",
    "operation",
)
#: What ``dest_server`` says for an app whose destination is the cluster gitmoor
#: runs against (Argo CD's name for ``https://kubernetes.default.svc``).
IN_CLUSTER = "in-cluster"


class _CountsRequests(Protocol):
    """What :meth:`Metrics.track_kube_client` needs of a KubeClient."""

    @property
    def requests(self) -> RequestCounter[tuple[str, int]]: ...


@functools.lru_cache(maxsize=1024)
def repo_label(url: str) -> str:
    """A repository URL as a label value: its identity, never its credentials.

    ``normalize_repo_url`` drops the user and spelling differences (so
    ``git@host:org/r.git`` and ``ssh://host/org/r`` are one series, as Argo CD's
    ``git.NormalizeGitURL`` makes them). The userinfo is removed first, since
    normalisation refuses a URL with a password, and a URL it refuses still
    gets a label. The query string goes too: some servers take a token there,
    and it is never part of a repository's identity.
    """
    redacted = redact_url(url)
    try:
        label = normalize_repo_url(redacted)
    except GitmoorError:
        label = redacted
    return label.split("?", 1)[0].split("#", 1)[0]


def app_info_labels(app: Application) -> tuple[str, ...]:
    """The ``gitmoor_app_info`` label values of one app, in APP_INFO_LABELS order.

    Missing statuses read ``Unknown`` and ``operation`` is ``delete`` while the
    app is being deleted, else the kind of the requested operation, as in Argo
    CD's ``collectApps``.
    """
    status = app.status
    sync = (status.get("sync") or {}).get("status") or "Unknown"
    health = (status.get("health") or {}).get("status") or "Unknown"
    op = app.operation or {}
    if (app.raw.get("metadata") or {}).get("deletionTimestamp"):
        operation = "delete"
    elif "sync" in op:
        operation = "sync"
    elif "rollback" in op:
        operation = "rollback"
    else:
        operation = ""
    return (
        app.namespace,
        app.name,
        app.spec.project,
        repo_label(app.spec.source.repo_url),
        app.spec.destination.namespace,
        app.spec.destination.name or IN_CLUSTER,
        str(sync),
        str(health),
        operation,
    )


class _LiveCollector(Collector):
    """Series computed at scrape time from state that lives elsewhere.

    A failing source costs its own family, never the whole scrape: a scrape
    that answers 500 hides every other metric exactly when they are needed.
    """

    def __init__(self) -> None:
        # Replaced whole (one assignment) so a scrape from another thread sees
        # either the old snapshot or the new one, never a half-cleared gauge.
        self.app_info: tuple[tuple[str, ...], ...] = ()
        self.kube_clients: dict[str, _CountsRequests] = {}
        self.queue_depth: Callable[[], int] | None = None
        self.cache_size: Callable[[], dict[str, int]] | None = None

    def describe(self) -> Iterable[Metric]:
        # Declared so that the registry refuses a clash with another collector.
        yield GaugeMetricFamily("gitmoor_app_info", "", labels=APP_INFO_LABELS)
        yield CounterMetricFamily("gitmoor_kube_requests", "", labels=("cluster", "verb", "code"))
        yield GaugeMetricFamily("gitmoor_workqueue_depth", "")
        yield GaugeMetricFamily("gitmoor_cluster_cache_objects", "", labels=("cluster",))

    def collect(self) -> Iterable[Metric]:
        for build in (self._app_info, self._kube, self._queue, self._cache):
            try:
                family = build()
            except Exception as e:
                log.warning(
                    "event=metrics_source_failed source=%s error=%s",
                    build.__name__.lstrip("_"),
                    type(e).__name__,
                )
                continue
            if family is not None:
                yield family

    def _app_info(self) -> Metric:
        g = GaugeMetricFamily(
            "gitmoor_app_info",
            "Information about an Application: 1 per app, its state in the labels.",
            labels=APP_INFO_LABELS,
        )
        for labels in self.app_info:
            g.add_metric(labels, 1.0)
        return g

    def _kube(self) -> Metric:
        c = CounterMetricFamily(
            "gitmoor_kube_requests",
            "Requests to a Kubernetes API server, by HTTP verb and status code.",
            labels=("cluster", "verb", "code"),
        )
        for cluster, client in list(self.kube_clients.items()):
            # dict.copy is one C call, so it cannot see the Counter change size
            # under it when the event loop updates it during a threaded scrape.
            counts = dict.copy(client.requests)
            for (verb, code), n in sorted(counts.items()):
                # 0 is the client's mark for "no response"; client-go's request
                # metrics call that code "<error>".
                c.add_metric((cluster, verb, str(code) if code else "<error>"), float(n))
        return c

    def _queue(self) -> Metric | None:
        if self.queue_depth is None:
            return None
        return GaugeMetricFamily(
            "gitmoor_workqueue_depth",
            "Applications waiting in the controller's work queue.",
            value=float(self.queue_depth()),
        )

    def _cache(self) -> Metric | None:
        if self.cache_size is None:
            return None
        g = GaugeMetricFamily(
            "gitmoor_cluster_cache_objects",
            "Objects held in the cluster cache, per cluster.",
            labels=("cluster",),
        )
        for cluster, n in sorted(self.cache_size().items()):
            g.add_metric((cluster,), float(n))
        return g


class Metrics:
    """The controller's metrics; one instance per controller, served by :meth:`router`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Argo CD keeps the app name off its reconcile histogram: buckets x apps
        # is the cardinality that hurts. The per-app view is the counter below.
        self._reconcile_seconds = Histogram(
            "gitmoor_app_reconcile_duration_seconds",
            "Time to reconcile one Application (refresh, and the operation if one ran).",
            ("namespace",),
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self._reconcile_total = Counter(
            "gitmoor_app_reconcile_total",
            "Reconciliations of an Application, by outcome.",
            ("namespace", "name", "outcome"),
            registry=r,
        )
        self._sync_total = Counter(
            "gitmoor_app_sync_total",
            "Sync operations of an Application, by final phase.",
            ("namespace", "name", "phase"),
            registry=r,
        )
        self._git_seconds = Histogram(
            "gitmoor_git_request_duration_seconds",
            "Duration of git requests (ls-remote, fetch) per repository.",
            ("repo", "request"),
            buckets=GIT_BUCKETS,
            registry=r,
        )
        self._git_total = Counter(
            "gitmoor_git_request_total",
            "Git requests per repository, by kind and whether they failed.",
            ("repo", "request", "error"),
            registry=r,
        )
        self._live = _LiveCollector()
        r.register(self._live)

    def observe_reconcile(self, app: str, namespace: str, seconds: float, outcome: str) -> None:
        self._reconcile_seconds.labels(namespace).observe(seconds)
        self._reconcile_total.labels(namespace, app, outcome).inc()

    def observe_sync(self, app: str, namespace: str, phase: str) -> None:
        """Count a finished sync; ``phase`` in Argo CD's vocabulary (Succeeded, Failed, Error)."""
        self._sync_total.labels(namespace, app, phase).inc()

    def forget_app(self, app: str, namespace: str) -> None:
        """Drop a deleted app's counter series, which would otherwise be exported forever."""
        for counter in (self._reconcile_total, self._sync_total):
            counter.remove_by_labels({"namespace": namespace, "name": app})

    def set_app_info(self, apps: Iterable[Application]) -> None:
        """Replace every ``gitmoor_app_info`` series: an app not given is gone from the output."""
        self._live.app_info = tuple(app_info_labels(a) for a in apps)

    def observe_git(
        self, repo: str, seconds: float, error: bool, *, request: str = "fetch"
    ) -> None:
        """``request`` is ``ls-remote`` (resolving a revision) or ``fetch``, as in Argo CD."""
        label = repo_label(repo)
        self._git_seconds.labels(label, request).observe(seconds)
        self._git_total.labels(label, request, "true" if error else "false").inc()

    def track_kube_client(self, cluster: str, client: _CountsRequests) -> None:
        """Export ``client.requests`` as ``gitmoor_kube_requests_total{cluster=...}``.

        The client counts every request already (benchmarks read the same
        Counter); reading it at scrape time keeps kube/ free of Prometheus.
        Tracking a cluster again replaces its client (a reconnect).
        """
        self._live.kube_clients[cluster] = client

    def untrack_kube_client(self, cluster: str) -> None:
        self._live.kube_clients.pop(cluster, None)

    def set_queue_depth_source(self, fn: Callable[[], int]) -> None:
        self._live.queue_depth = fn

    def set_cache_size_source(self, fn: Callable[[], dict[str, int]]) -> None:
        self._live.cache_size = fn

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def router(self) -> APIRouter:
        """``GET /metrics`` for a FastAPI app (the controller's or the API server's)."""
        router = APIRouter(tags=["observability"])

        # ``async def`` on purpose: the scrape-time sources read state owned by
        # the event loop (the work queue, the cluster cache), so the scrape runs
        # on the loop rather than in Starlette's thread pool.
        @router.get(
            "/metrics",
            summary="Prometheus metrics",
            description=(
                "The controller's metrics in the Prometheus text exposition format: "
                "gitmoor_app_info, gitmoor_app_reconcile_*, gitmoor_app_sync_total, "
                "gitmoor_git_request_*, gitmoor_kube_requests_total, gitmoor_workqueue_depth "
                "and gitmoor_cluster_cache_objects (named after Argo CD's argocd_* metrics)."
            ),
            response_class=Response,
            responses={
                200: {
                    "description": "Metrics in the Prometheus text format.",
                    "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                }
            },
        )
        async def metrics() -> Response:
            return Response(content=self.exposition(), media_type=CONTENT_TYPE_LATEST)

        return router


__all__ = ["APP_INFO_LABELS", "IN_CLUSTER", "Metrics", "app_info_labels", "repo_label"]
