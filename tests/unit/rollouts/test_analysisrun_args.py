"""Building a run's spec from templates and the Rollout's args (plain data)."""

from __future__ import annotations

import pytest

from gitmoor.rollouts.analysis import AnalysisSpecError, ArgumentError
from gitmoor.rollouts.analysisrun import flatten_templates, merge_args, owner_field

ROLLOUT = {
    "metadata": {"name": "web", "labels": {"app": "web", "app.kubernetes.io/name": "shop"}},
    "spec": {
        "replicas": 3,
        "paused": False,
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}},
    },
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "web"),
        ("metadata.labels['app']", "web"),
        ('metadata.labels["app.kubernetes.io/name"]', "shop"),
        ("spec.replicas", "3"),
        ("spec.paused", "false"),
        ("spec.template.spec.containers[0].image", "nginx:1.27"),
    ],
)
def test_field_ref_paths(path: str, value: str) -> None:
    assert owner_field(ROLLOUT, path) == value


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("metadata.labels['nope']", "invalid path"),
        ("spec.template", "must terminate in a primitive value"),
        ("spec.template.spec.containers[3].image", "out of range"),
    ],
)
def test_field_ref_errors(path: str, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        owner_field(ROLLOUT, path)


def test_merge_args_fills_template_args_and_requires_values() -> None:
    template_args = [
        {"name": "service"},
        {"name": "threshold", "value": "0.95"},
        {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    merged = merge_args(
        [{"name": "service", "value": "web"}, {"name": "unknown", "value": "x"}], template_args
    )
    assert merged == [
        {"name": "service", "value": "web"},
        {"name": "threshold", "value": "0.95"},
        {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    with pytest.raises(ArgumentError, match=r"args.service was not resolved"):
        merge_args([], template_args)


def test_flatten_merges_metrics_and_refuses_clashes() -> None:
    a = {"spec": {"args": [{"name": "x"}], "metrics": [{"name": "m1"}]}}
    b = {"spec": {"args": [{"name": "x", "value": "1"}], "metrics": [{"name": "m2"}]}}
    flat = flatten_templates([a, b])
    assert [m["name"] for m in flat["metrics"]] == ["m1", "m2"]
    assert flat["args"] == [{"name": "x", "value": "1"}]
    with pytest.raises(AnalysisSpecError, match="two metrics have the same name 'm1'"):
        flatten_templates([a, a])
    c = {"spec": {"args": [{"name": "x", "value": "2"}]}}
    with pytest.raises(AnalysisSpecError, match="specified multiple times"):
        flatten_templates([b, c])
