"""How often the ApplicationSet controller looks at a set again: the smallest
``requeueAfterSeconds`` of its generators, but never a fraction of a second (Argo
CD's field is whole seconds), so one set cannot keep the controller and its git
server busy with back-to-back passes."""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.controller.appsets import MIN_REQUEUE, requeue_after
from gitmoor.model.appset import parse_appset


def appset(*generators: dict[str, Any]) -> Any:
    return parse_appset(
        {
            "apiVersion": "gitmoor.io/v1alpha1",
            "kind": "ApplicationSet",
            "metadata": {"name": "s", "namespace": "apps", "uid": "u"},
            "spec": {
                "generators": list(generators),
                "template": {
                    "metadata": {"name": "{{name}}"},
                    "spec": {"source": {"repoURL": "r"}, "destination": {"namespace": "n"}},
                },
            },
        }
    )


def listing(requeue: Any) -> dict[str, Any]:
    return {"list": {"elements": [], "requeueAfterSeconds": requeue}}


@pytest.mark.parametrize("requeue", [0.001, 0.5, 1e-9])
def test_a_sub_second_requeue_is_raised_to_the_floor(requeue: float) -> None:
    assert requeue_after(appset(listing(requeue)), 180.0) == MIN_REQUEUE == 1.0


def test_the_smallest_requeue_wins_also_nested_in_a_matrix() -> None:
    matrix = {"matrix": {"generators": [listing(30), listing(0.01)]}}
    assert requeue_after(appset(listing(120), matrix), 180.0) == 1.0
    assert requeue_after(appset(listing(120), listing(45)), 180.0) == 45.0


def test_no_requeue_named_is_the_controller_interval() -> None:
    assert requeue_after(appset(listing(0)), 180.0) == 180.0
    assert requeue_after(appset({"list": {"elements": []}}), 180.0) == 180.0
