"""Helpers for the Rollout controller's integration tests: the CRDs, a running
controller pair (Rollouts + AnalysisRuns) in the test's event loop, a local
HTTP endpoint whose success rate a test sets (the web metric's target), and
reads of what users look at (the Rollout's status, Service selectors,
ReplicaSets)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.rollouts.analysis_controller import AnalysisController
from gitmoor.rollouts.analysisrun import create_analysis_run
from gitmoor.rollouts.controller import RolloutController
from gitmoor.rollouts.crds import install_rollout_crds, rollout_crds_state
from support.apps import dump

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from gitmoor.kube import KubeClient

JSON = dict[str, Any]
HASH = "rollouts-pod-template-hash"


async def ensure_rollout_crds(kube: KubeClient) -> None:
    state = await rollout_crds_state(kube)
    if state == "foreign":
        raise RuntimeError("Argo Rollouts' own CRDs are installed in the test cluster")
    if state == "absent":
        await install_rollout_crds(kube)


@contextlib.asynccontextmanager
async def running_rollouts(kube: KubeClient, namespace: str) -> AsyncIterator[RolloutController]:
    """The Rollout and AnalysisRun controllers over ``namespace``, stopped on leaving."""
    stop = asyncio.Event()
    ctrl = RolloutController(kube, namespace, resync=5)
    analysis = AnalysisController(kube, namespace)
    tasks = [asyncio.create_task(ctrl.run(stop)), asyncio.create_task(analysis.run(stop))]
    try:
        yield ctrl
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


class RateServer:
    """``GET /`` answers ``{"rate": R}`` with the rate a test sets: the measured
    success rate of the app under analysis (on loopback, never a pod address)."""

    def __init__(self) -> None:
        self.rate = 1.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"rate": server.rate}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    @contextlib.contextmanager
    def serving(self) -> Iterator[RateServer]:
        t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        t.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def success_rate_template(namespace: str, url: str) -> JSON:
    """The seed's ``success-rate`` AnalysisTemplate, with a web provider instead of
    Prometheus (the Prometheus variant is the end-to-end test's)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "success-rate", "namespace": namespace},
        "spec": {
            "args": [{"name": "service-name"}],
            "metrics": [
                {
                    "name": "success-rate",
                    "count": 1,
                    "successCondition": "result >= 0.95",
                    "failureLimit": 0,
                    "provider": {"web": {"url": url, "jsonPath": "{$.rate}"}},
                }
            ],
        },
    }


async def start_run(
    kube: KubeClient,
    namespace: str,
    owner: JSON,
    name: str,
    *,
    template: str,
    args: list[JSON],
    labels: dict[str, str] | None = None,
    background: bool = False,
) -> JSON:
    """An AnalysisRun of one template owned by ``owner``, created as the Rollout
    controller creates one."""
    return await create_analysis_run(
        kube,
        namespace=namespace,
        name=name,
        templates=[{"templateName": template}],
        args=args,
        owner=owner,
        labels=labels or {},
        background=background,
    )


def service(namespace: str, name: str, app: str = "web") -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def blue_green_app_manifests(image: str) -> str:
    """An app's Git content: a blue-green Rollout ``web`` (promoted by hand) and
    its active and preview Services, without a namespace (the app gives it)."""
    ro = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": pod_template(image),
            "strategy": {
                "blueGreen": {
                    "activeService": "web-active",
                    "previewService": "web-preview",
                    "autoPromotionEnabled": False,
                }
            },
        },
    }
    svcs = []
    for name in ("web-active", "web-preview"):
        svc = service("", name)
        del svc["metadata"]["namespace"]
        svcs.append(svc)
    return dump(*svcs, ro)


def pod_template(image: str, app: str = "web") -> JSON:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


def ro_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("argoproj.io", "v1alpha1", "Rollout", namespace, name)


async def rollout(kube: KubeClient, namespace: str, name: str) -> JSON:
    obj = await kube.get(ro_ref(namespace, name))
    assert obj is not None
    return obj


async def status(kube: KubeClient, namespace: str, name: str) -> JSON:
    return (await rollout(kube, namespace, name)).get("status") or {}


async def selector_hash(kube: KubeClient, namespace: str, svc: str) -> str:
    obj = await kube.get(ObjectRef("", "v1", "Service", namespace, svc))
    assert obj is not None
    return str(((obj.get("spec") or {}).get("selector") or {}).get(HASH, ""))


async def replicasets(kube: KubeClient, namespace: str) -> list[JSON]:
    ar = await kube.resource("apps", "v1", "ReplicaSet")
    return (await kube.list(ar, namespace, label_selector=HASH)).items


async def rs_by_hash(kube: KubeClient, namespace: str, hash_: str) -> JSON | None:
    for rs in await replicasets(kube, namespace):
        if rs["metadata"]["labels"].get(HASH) == hash_:
            return rs
    return None


async def set_image(kube: KubeClient, namespace: str, name: str, image: str) -> None:
    await kube.merge_patch(
        ro_ref(namespace, name),
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}},
    )


async def promote(kube: KubeClient, namespace: str, name: str) -> None:
    """What ``kubectl argo rollouts promote`` sends for a paused rollout."""
    await kube.merge_patch(
        ro_ref(namespace, name), {"status": {"pauseConditions": None}}, subresource="status"
    )


async def abort(kube: KubeClient, namespace: str, name: str) -> None:
    """What ``kubectl argo rollouts abort`` sends."""
    await kube.merge_patch(
        ro_ref(namespace, name), {"status": {"abort": True}}, subresource="status"
    )


async def wait_status(
    kube: KubeClient, namespace: str, name: str, probe: Any, *, within: float, what: str
) -> JSON:
    async def check() -> JSON | None:
        st = await status(kube, namespace, name)
        return st if probe(st) else None

    try:
        result: JSON = await wait_for(check, within=within, interval=0.25, what=what)
    except TimeoutError as e:
        st = await status(kube, namespace, name)
        raise AssertionError(f"{e}; status now: {json.dumps(st, indent=1)}") from e
    return result


async def wait_healthy(
    kube: KubeClient, namespace: str, name: str, *, what: str, within: float = 60
) -> JSON:
    """The Rollout's status once its phase is Healthy."""
    return await wait_status(
        kube, namespace, name, lambda s: s.get("phase") == "Healthy", within=within, what=what
    )


class KillableRollouts:
    """A Rollout + AnalysisRun controller pair that a test can kill outright: its
    tasks are cancelled mid-whatever, nothing is flushed, so all a successor has
    is what is in the cluster (a SIGKILL as far as the API server can tell)."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.tasks: list[asyncio.Task[None]] = []
        self.controller: RolloutController | None = None

    def start(self) -> RolloutController:
        stop = asyncio.Event()
        self.controller = RolloutController(self.kube, self.namespace, resync=5)
        self.tasks = [
            asyncio.create_task(self.controller.run(stop)),
            asyncio.create_task(AnalysisController(self.kube, self.namespace).run(stop)),
        ]
        return self.controller

    async def kill(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.tasks = []
