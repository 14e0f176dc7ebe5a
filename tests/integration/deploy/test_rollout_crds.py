"""gitmoor's Argo Rollouts CRDs in the real API server: `gitmoor install --rollouts`
installs them, they accept Argo Rollouts' own manifests field for field (the
blue-green example with pre-promotion analysis and the ``success-rate`` template of
Argo Rollouts' docs/features/analysis.md), refuse wrong types and misspelled fields,
and are told apart from Argo Rollouts' own CRDs.

The CRDs are cluster-wide and shared by every test: installed idempotently, never
deleted. Foreign CRDs are only ever made in another group: replacing the real
``rollouts.argoproj.io`` would break every other rollout test running meanwhile.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.kube import ApiError, wait_for
from gitmoor.model import ObjectRef
from gitmoor.rollouts.crds import (
    CRD_NAMES,
    crds_state,
    install_rollout_crds,
    is_gitmoors,
    rollout_crds_state,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from support.cli import Gitmoor

API = "argoproj.io/v1alpha1"


def crd_ref(name: str) -> ObjectRef:
    return ObjectRef("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "", name)


def success_rate(namespace: str) -> dict[str, Any]:
    """Argo Rollouts' ``success-rate`` AnalysisTemplate (docs/features/analysis.md),
    unchanged but for the namespace and the Prometheus address (loopback)."""
    return {
        "apiVersion": API,
        "kind": "AnalysisTemplate",
        "metadata": {"name": "success-rate", "namespace": namespace},
        "spec": {
            "args": [{"name": "service-name"}],
            "metrics": [
                {
                    "name": "success-rate",
                    "interval": "5m",
                    "successCondition": "result[0] >= 0.95",
                    "failureLimit": 3,
                    "provider": {
                        "prometheus": {
                            "address": "http://127.0.0.1:9090",
                            "query": (
                                "sum(irate(\n"
                                '  istio_requests_total{reporter="source",destination_service=~'
                                '"{{args.service-name}}",response_code!~"5.*"}[5m]\n'
                                ")) /\nsum(irate(\n"
                                '  istio_requests_total{reporter="source",destination_service=~'
                                '"{{args.service-name}}"}[5m]\n))\n'
                            ),
                        }
                    },
                }
            ],
        },
    }


def bluegreen(namespace: str) -> dict[str, Any]:
    """Argo Rollouts' blue-green example (examples/rollout-bluegreen.yaml) with the
    pre-promotion analysis of docs/features/analysis.md and a scale-down delay."""
    return {
        "apiVersion": API,
        "kind": "Rollout",
        "metadata": {"name": "rollout-bluegreen", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": "rollout-bluegreen"}},
            "template": {
                "metadata": {"labels": {"app": "rollout-bluegreen"}},
                "spec": {
                    "containers": [
                        {
                            "name": "rollouts-demo",
                            "image": "argoproj/rollouts-demo:blue",
                            "imagePullPolicy": "Always",
                            "ports": [{"containerPort": 8080}],
                        }
                    ]
                },
            },
            "strategy": {
                "blueGreen": {
                    "activeService": "rollout-bluegreen-active",
                    "previewService": "rollout-bluegreen-preview",
                    "autoPromotionEnabled": False,
                    "scaleDownDelaySeconds": 30,
                    "prePromotionAnalysis": {
                        "templates": [{"templateName": "success-rate"}],
                        "args": [
                            {
                                "name": "service-name",
                                "value": f"rollout-bluegreen-preview.{namespace}.svc.cluster.local",
                            }
                        ],
                    },
                }
            },
        },
    }


def canary(namespace: str) -> dict[str, Any]:
    """The issue's basic canary, with the fields Argo Rollouts has and gitmoor only
    keeps (a traffic router, an experiment step): they must survive unpruned."""
    return {
        "apiVersion": API,
        "kind": "Rollout",
        "metadata": {"name": "canary", "namespace": namespace},
        "spec": {
            "replicas": 4,
            "minReadySeconds": 5,
            "progressDeadlineSeconds": 120,
            "paused": False,
            "restartAt": "2026-11-30T10:00:00Z",
            "selector": {"matchLabels": {"app": "canary"}},
            "template": {
                "metadata": {"labels": {"app": "canary"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.29"}]},
            },
            "strategy": {
                "canary": {
                    "canaryService": "canary-preview",
                    "stableService": "canary-stable",
                    "maxSurge": "25%",
                    "maxUnavailable": 0,
                    "analysis": {
                        "templates": [{"templateName": "success-rate"}],
                        "startingStep": 1,
                        "args": [
                            {"name": "service-name", "value": "canary-preview"},
                            {
                                "name": "image",
                                "valueFrom": {
                                    "fieldRef": {
                                        "fieldPath": "spec.template.spec.containers[0].image"
                                    }
                                },
                            },
                        ],
                    },
                    "steps": [
                        {"setWeight": 25},
                        {"pause": {"duration": "5s"}},
                        {"setWeight": 50},
                        {"pause": {"duration": 10}},
                        {"analysis": {"templates": [{"templateName": "success-rate"}]}},
                        {"pause": {}},
                        {"experiment": {"templates": [{"name": "x", "specRef": "canary"}]}},
                    ],
                    "trafficRouting": {"nginx": {"stableIngress": "canary"}},
                }
            },
        },
    }


def web_template(namespace: str, kind: str = "AnalysisTemplate") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"web-check-{secrets.token_hex(3)}"}
    if kind == "AnalysisTemplate":
        meta["namespace"] = namespace
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": meta,
        "spec": {
            "args": [
                {"name": "token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
                {"name": "app", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            ],
            "metrics": [
                {
                    "name": "ok",
                    "interval": "10s",
                    "count": 3,
                    "initialDelay": "5s",
                    "successCondition": "result.ok == true",
                    "failureCondition": "result.ok == false",
                    "failureLimit": 1,
                    "inconclusiveLimit": 2,
                    "consecutiveErrorLimit": "{{args.limit}}",
                    "provider": {
                        "web": {
                            "url": "http://127.0.0.1:9/health?app={{args.app}}",
                            "method": "POST",
                            "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}],
                            "body": '{"check": "ok"}',
                            "jsonPath": "{$.data}",
                            "timeoutSeconds": 5,
                        }
                    },
                }
            ],
        },
    }


def analysis_run(namespace: str) -> dict[str, Any]:
    template = web_template(namespace)
    return {
        "apiVersion": API,
        "kind": "AnalysisRun",
        "metadata": {"name": f"run-{secrets.token_hex(3)}", "namespace": namespace},
        # Terminated from the start: no analysis controller of another test measures it.
        "spec": {
            "terminate": True,
            "args": [{"name": "app", "value": "web"}],
            "metrics": template["spec"]["metrics"],
        },
    }


@pytest.fixture
async def rollout_crds(kube: KubeClient) -> None:
    # Idempotent; shared with every other test, so never deleted.
    assert await install_rollout_crds(kube) == list(CRD_NAMES)


async def test_install_rollouts_installs_the_four_crds_labelled_as_gitmoors(
    gitmoor: Gitmoor, kube: KubeClient
) -> None:
    result = await asyncio.to_thread(gitmoor, "install", "--rollouts")
    assert result.returncode == 0, result.stderr
    assert "rollouts.argoproj.io" in result.stdout
    # Run twice: the second is a no-op apply, not an error.
    again = await asyncio.to_thread(gitmoor, "install", "--rollouts")
    assert again.returncode == 0, again.stderr
    for name in CRD_NAMES:
        live = await kube.get(crd_ref(name))
        assert live is not None, name
        assert is_gitmoors(live), name
        conds = {c["type"]: c["status"] for c in live["status"]["conditions"]}
        # Established, and the schema is structural (else NonStructuralSchema=True).
        assert conds["Established"] == "True", (name, conds)
        assert conds.get("NonStructuralSchema", "False") == "False", (name, conds)
    assert await rollout_crds_state(kube) == "gitmoor"


async def test_install_force_alone_is_refused(gitmoor: Gitmoor) -> None:
    result = await asyncio.to_thread(gitmoor, "install", "--force")
    assert result.returncode == 2
    assert "--force only applies to --rollouts" in result.stderr


@pytest.mark.usefixtures("rollout_crds")
async def test_argo_rollouts_manifests_are_accepted_field_for_field(
    kube: KubeClient, namespace: str
) -> None:
    cluster_template = web_template(namespace, "ClusterAnalysisTemplate")
    objs = [
        success_rate(namespace),
        bluegreen(namespace),
        canary(namespace),
        web_template(namespace),
        cluster_template,
        analysis_run(namespace),
    ]
    try:
        for obj in objs:
            # Strict: a field the schema did not declare would be refused, and a
            # declared one pruned would differ below.
            created = await kube.create(copy.deepcopy(obj), field_validation="Strict")
            assert created["spec"] == obj["spec"], obj["kind"]
            live = await kube.get(ObjectRef.of(obj))
            assert live is not None
            assert live["spec"] == obj["spec"], obj["kind"]
    finally:
        await kube.delete(ObjectRef.of(cluster_template))


@pytest.mark.usefixtures("rollout_crds")
async def test_the_rollout_scales_through_its_scale_subresource_as_upstreams(
    kube: KubeClient, namespace: str
) -> None:
    rollout = bluegreen(namespace)
    await kube.create(rollout)
    ref = ObjectRef.of(rollout)
    # The controller's status (through the status subresource) is what the scale
    # subresource reports: HPAReplicas and the selector, Argo Rollouts' paths.
    await kube.merge_patch(
        ref,
        {"status": {"HPAReplicas": 2, "selector": "app=rollout-bluegreen", "phase": "Healthy"}},
        subresource="status",
    )
    path = f"/apis/{API}/namespaces/{namespace}/rollouts/rollout-bluegreen/scale"
    scale = await kube.get_raw(path)
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 2, "selector": "app=rollout-bluegreen"}
    # What `kubectl scale` and an HPA do.
    await kube.merge_patch(ref, {"spec": {"replicas": 5}}, subresource="scale")
    live = await kube.get(ref)
    assert live is not None
    assert live["spec"]["replicas"] == 5


def _mutate(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    cur: Any = out
    keys = path.split(".")
    for key in keys[:-1]:
        cur = cur[int(key)] if isinstance(cur, list) else cur[key]
    last = keys[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value
    return out


@pytest.mark.usefixtures("rollout_crds")
@pytest.mark.parametrize(
    ("make", "path", "value"),
    [
        (bluegreen, "spec.replicas", "two"),
        (bluegreen, "spec.strategy.blueGreen.autoPromotionEnabled", "false"),
        (bluegreen, "spec.strategy.blueGreen.scaleDownDelaySeconds", "30s"),
        (bluegreen, "spec.strategy.blueGreen.prePromotionAnalysis.templates", "success-rate"),
        (canary, "spec.strategy.canary.steps.0.setWeight", "25%"),
        (canary, "spec.strategy.canary.maxSurge", True),
        (success_rate, "spec.metrics.0.successCondition", 0.95),
        (success_rate, "spec.metrics.0.provider.prometheus.query", ["up"]),
        (success_rate, "spec.metrics.0.failureLimit", 1.5),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_a_wrong_type_is_refused_by_the_api_server(
    kube: KubeClient, namespace: str, make: Any, path: str, value: Any
) -> None:
    obj = _mutate(make(namespace), path, value)
    with pytest.raises(ApiError) as refused:
        await kube.create(obj)
    assert refused.value.code == 422, refused.value
    assert path.rsplit(".", 1)[-1] in str(refused.value)


@pytest.mark.usefixtures("rollout_crds")
async def test_a_misspelled_field_is_refused_under_strict_validation(
    kube: KubeClient, namespace: str
) -> None:
    # blueGreen enumerates every field Argo Rollouts has, so a typo is an unknown
    # field (kubectl apply validates strictly by default) rather than silently kept.
    obj = bluegreen(namespace)
    obj["spec"]["strategy"]["blueGreen"]["autoPromotionEnabld"] = False
    with pytest.raises(ApiError) as refused:
        await kube.create(obj, field_validation="Strict")
    assert refused.value.code == 400, refused.value
    assert "autoPromotionEnabld" in str(refused.value)
    # Immutable selector, as a Deployment's and Argo Rollouts' own.
    ok = await kube.create(bluegreen(namespace))
    ok["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiError) as immutable:
        await kube.replace(ObjectRef.of(ok), ok)
    assert ".spec.selector is immutable" in str(immutable.value)


@pytest.mark.usefixtures("rollout_crds")
async def test_a_crd_without_gitmoors_label_is_foreign(
    kube: KubeClient, cluster_scoped: list[ObjectRef]
) -> None:
    # A CRD as Argo Rollouts' own install leaves it (no managed-by gitmoor), made in
    # a group of its own: the real rollouts.argoproj.io is shared by every test.
    group = f"r{secrets.token_hex(3)}.gitmoor.test"
    foreign = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"rollouts.{group}",
            "labels": {"app.kubernetes.io/part-of": "argo-rollouts"},
        },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout"},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    await kube.create(foreign)
    cluster_scoped.append(crd_ref(f"rollouts.{group}"))
    live_foreign = await wait_for(
        lambda: kube.get(crd_ref(f"rollouts.{group}")), within=10, what="the foreign CRD"
    )
    assert not is_gitmoors(live_foreign)
    live = {name: await kube.get(crd_ref(name)) for name in CRD_NAMES}
    assert crds_state(live) == "gitmoor"
    # The same cluster, with that CRD where Argo Rollouts' would be.
    assert crds_state({**live, "rollouts.argoproj.io": live_foreign}) == "foreign"
    assert crds_state({**live, "analysisruns.argoproj.io": live_foreign}) == "foreign"
