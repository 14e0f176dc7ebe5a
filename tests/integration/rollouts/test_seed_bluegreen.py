"""The issue's Must show, end to end: the seed's 7.4 blue-green manifests
(Argo Rollouts' canonical ``Rollout`` with ``strategy.blueGreen`` and the
``success-rate`` ``AnalysisTemplate`` with a ``prometheus`` provider), unchanged
but for names, addresses and timings, in a Git repository, synced by a gitmoor
Application with automated sync, run by gitmoor's Rollout and AnalysisRun
controllers, analysed against a real Prometheus (built from its Go module by
``testenv/build.sh prometheus``) that scrapes an endpoint whose success ratio the
test sets, and driven through the CLI as a user would (``gitmoor rollout
promote``, ``gitmoor app get``).

1. The first version goes active.
2. A commit with a new image: the preview ReplicaSet, the preview Service on
   it, the analysis measured by Prometheus.
3. With a passing ratio, ``gitmoor rollout promote`` switches the active Service.
4. The old ReplicaSet is scaled down after ``scaleDownDelaySeconds``.
5. A commit with a failing ratio: the Rollout aborts, the active Service never
   moves, and the app reports Degraded with the analysis message.

The app declares no ignoreDifferences: the Rollout controller's selector writes
are no drift (``gitmoor.engine.normalize.BUILTIN_RULES``)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import Automated
from support.controller import running_controller
from support.prometheus import LivePrometheus, MetricsEndpoint, running_prometheus
from support.rollouts import (
    rs_by_hash,
    running_rollouts,
    selector_hash,
    status,
    wait_status,
)
from support.toolcache import prometheus_binary

if TYPE_CHECKING:
    from collections.abc import Iterator

    from support.apps import AppEnv
    from support.cli import Gitmoor

JSON = dict[str, Any]
RO = "checkout"
ACTIVE, PREVIEW = "checkout-active", "checkout-preview"
SCALE_DOWN_DELAY = 5

#: The seed's query, as Argo Rollouts' docs write it (irate over a window,
#: non-5xx over all, for the Service named by the arg); the scraped series carry
#: a ``service`` label, as an ingress or mesh exporter's do.
QUERY = (
    'sum(irate(http_requests_total{service="{{args.service-name}}",status!~"5.."}[30s])) / '
    'sum(irate(http_requests_total{service="{{args.service-name}}"}[30s]))'
)


@pytest.fixture(scope="module")
def service_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePrometheus]:
    """R5's real Prometheus (tests/support/prometheus.py), scraping counters
    labelled ``service="checkout-preview"``, so the template's query selects
    them by its arg. Absent binary: a failure on CI, a skip locally (as the
    ``prometheus`` fixture)."""
    binary = prometheus_binary()
    if binary is None or not binary.is_file():
        message = "prometheus not found (set GITMOOR_PROMETHEUS or run testenv/build.sh prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    endpoint = MetricsEndpoint(labels={"service": PREVIEW})
    with running_prometheus(binary, tmp_path_factory.mktemp("prometheus"), endpoint) as live:
        yield live


def services() -> str:
    return "".join(
        f"""---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {RO}
  ports:
  - port: 80
    targetPort: 8080
"""
        for name in (ACTIVE, PREVIEW)
    )


def analysis_template(address: str) -> str:
    return f"""apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 2s
    count: 2
    successCondition: result[0] >= 0.95
    failureLimit: 0
    provider:
      prometheus:
        address: {address}
        query: {json.dumps(QUERY)}
"""


def rollout(image: str) -> str:
    return f"""apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {RO}
spec:
  replicas: 2
  revisionHistoryLimit: 2
  selector:
    matchLabels:
      app: {RO}
  template:
    metadata:
      labels:
        app: {RO}
    spec:
      containers:
      - name: {RO}
        image: {image}
        ports:
        - containerPort: 8080
  strategy:
    blueGreen:
      activeService: {ACTIVE}
      previewService: {PREVIEW}
      autoPromotionEnabled: false
      scaleDownDelaySeconds: {SCALE_DOWN_DELAY}
      prePromotionAnalysis:
        templates:
        - templateName: success-rate
        args:
        - name: service-name
          value: {PREVIEW}
"""


def files(image: str, address: str) -> dict[str, str]:
    return {
        "services.yaml": services(),
        "analysis.yaml": analysis_template(address),
        "rollout.yaml": rollout(image),
    }


async def cli(gitmoor: Gitmoor, *args: str) -> str:
    """``gitmoor ARGS`` in a thread, so the controllers in this event loop run on."""
    done = await asyncio.to_thread(gitmoor, *args)
    assert done.returncode == 0, f"gitmoor {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


async def app_json(gitmoor: Gitmoor, name: str) -> JSON:
    doc: JSON = json.loads(await cli(gitmoor, "app", "get", name, "-o", "json"))
    return doc


async def test_the_seeds_blue_green_with_prometheus_analysis(
    env: AppEnv, gitmoor: Gitmoor, service_prometheus: LivePrometheus, rollout_crds: None
) -> None:
    kube, ns, prom = env.kube, env.namespace, service_prometheus
    query = QUERY.replace("{{args.service-name}}", PREVIEW)
    prom.set_success_ratio(1.0)
    await prom.wait_for_ratio(1.0, query=query)
    first = env.repo.commit(files("registry.local/checkout:1.0", prom.address))
    await env.create("shop", automated=Automated(prune=True, self_heal=True))

    async def app_is(sync: str, health: str, revision: str) -> JSON | None:
        doc = await app_json(gitmoor, "shop")
        st = doc.get("status") or {}
        ok = (
            (st.get("sync") or {}).get("status") == sync
            and (st.get("sync") or {}).get("revision") == revision
            and (st.get("health") or {}).get("status") == health
        )
        return st if ok else None

    async with running_rollouts(kube, ns), running_controller(kube, env.apps_namespace, interval=1):
        # 1. The first version goes active (no analysis, no pause for a first deploy).
        await wait_for(
            lambda: app_is("Synced", "Healthy", first),
            within=90,
            interval=0.5,
            what="the app Synced and Healthy at the first commit",
        )
        st = await status(kube, ns, RO)
        v1 = st["stableRS"]
        assert st["phase"] == "Healthy" and st["blueGreen"]["activeSelector"] == v1
        assert await selector_hash(kube, ns, ACTIVE) == v1

        # 2. A new image: preview ReplicaSet, preview Service, analysis by Prometheus.
        second = env.repo.commit(files("registry.local/checkout:2.0", prom.address))
        st = await wait_status(
            kube,
            ns,
            RO,
            lambda s: (
                s.get("phase") == "Paused"
                and (s.get("blueGreen", {}).get("prePromotionAnalysisRunStatus") or {}).get(
                    "status"
                )
                == "Successful"
            ),
            within=90,
            what="the preview analysed (passing) and paused for a promote",
        )
        v2 = st["currentPodHash"]
        assert v2 != v1
        assert await selector_hash(kube, ns, PREVIEW) == v2
        assert await selector_hash(kube, ns, ACTIVE) == v1
        preview = await rs_by_hash(kube, ns, v2)
        assert preview is not None and preview["spec"]["replicas"] == 2
        run_name = st["blueGreen"]["prePromotionAnalysisRunStatus"]["name"]
        run = await kube.get(ObjectRef("argoproj.io", "v1alpha1", "AnalysisRun", ns, run_name))
        assert run is not None
        # The run keeps the template's query and the args (as upstream: resolved at
        # each measurement); a passing measurement is Prometheus' answer for the
        # preview's series, which only the resolved arg selects.
        assert run["spec"]["metrics"][0]["provider"]["prometheus"]["query"] == QUERY
        assert {"name": "service-name", "value": PREVIEW} in run["spec"]["args"]
        (result,) = run["status"]["metricResults"]
        assert (result["phase"], result["successful"]) == ("Successful", 2)
        for m in result["measurements"]:
            # Prometheus' vector, as the provider records it: "[1]".
            assert m["phase"] == "Successful"
            assert float(m["value"].strip("[]")) >= 0.95, m
        await wait_for(
            lambda: app_is("Synced", "Suspended", second),
            within=60,
            interval=0.5,
            what="the app Synced (no ignoreDifferences) and Suspended, waiting for a promote",
        )

        # 3. `gitmoor rollout promote` switches the active Service.
        await cli(gitmoor, "rollout", "promote", RO, "-n", ns)
        switched: list[bool] = []

        async def promoted() -> JSON | None:
            s = await status(kube, ns, RO)
            if s.get("stableRS") != v2 or await selector_hash(kube, ns, ACTIVE) != v2:
                return None
            # Seen within a poll of the switch, seconds before the deadline.
            old = await rs_by_hash(kube, ns, v1)
            switched.append(old is not None and old["spec"]["replicas"] == 2)
            return s

        st = await wait_for(promoted, within=60, interval=0.25, what="the promotion")
        assert st["blueGreen"]["activeSelector"] == v2

        # 4. The old ReplicaSet: still serving at the switch, scaled down by the
        #    deadline written on it (scaleDownDelaySeconds after the switch).
        assert switched == [True], "the old ReplicaSet was scaled down at the switch"
        old = await rs_by_hash(kube, ns, v1)
        assert old is not None
        assert "scale-down-deadline" in old["metadata"].get("annotations", {})

        async def old_down() -> bool:
            rs = await rs_by_hash(kube, ns, v1)
            return rs is not None and rs["spec"]["replicas"] == 0

        await wait_for(
            old_down, within=SCALE_DOWN_DELAY + 30, interval=0.25, what="old RS scaled down"
        )
        await wait_for(
            lambda: app_is("Synced", "Healthy", second),
            within=60,
            interval=0.5,
            what="the app Synced and Healthy once promoted",
        )

        # 5. A failing ratio, then a commit: the analysis fails, the Rollout aborts,
        #    the active Service never leaves v2, and the app reports Degraded with
        #    the analysis message.
        prom.set_success_ratio(0.5)
        await prom.wait_for_ratio(0.5, query=query)
        third = env.repo.commit(files("registry.local/checkout:3.0", prom.address))
        seen_active: set[str] = set()

        async def aborted() -> JSON | None:
            seen_active.add(await selector_hash(kube, ns, ACTIVE))
            s = await status(kube, ns, RO)
            return s if s.get("phase") == "Degraded" else None

        st = await wait_for(aborted, within=90, interval=0.25, what="the abort")
        assert seen_active == {v2}
        assert st["abort"] is True
        assert st["blueGreen"]["prePromotionAnalysisRunStatus"]["status"] == "Failed"
        assert st["message"].startswith("RolloutAborted: Rollout aborted update to revision 3: ")
        assert 'Metric "success-rate" assessed Failed' in st["message"]

        app_status = await wait_for(
            lambda: app_is("Synced", "Degraded", third),
            within=60,
            interval=0.5,
            what="the app Degraded with the analysis message",
        )
        # The app's health is its worst object's, named: the Rollout's message.
        assert app_status["health"]["message"] == f"Rollout {RO}: {st['message']}"
        assert await selector_hash(kube, ns, ACTIVE) == v2
        table = await cli(gitmoor, "app", "get", "shop")
        assert "Degraded" in table
