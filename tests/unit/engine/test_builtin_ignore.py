"""The engine's built-in difference rule: a Service selector's
``rollouts-pod-template-hash`` (the Rollout controller's write) is no drift and
is sent back at apply, for every app, with no ignoreDifferences and no sync
option (what Argo CD's users get from client-side apply without writing a rule)."""

from __future__ import annotations

import copy
from typing import Any

from gitmoor.engine.compare import ignore_rules
from gitmoor.engine.normalize import BUILTIN_RULES, IgnoreRule, compare, respected
from gitmoor.model import ObjectRef
from gitmoor.model.application import (
    AppSource,
    Destination,
    application_manifest,
    parse_application,
)

SVC = ObjectRef("", "v1", "Service", "shop", "web-active")
HASH = "rollouts-pod-template-hash"


def service(selector: dict[str, str], port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-active", "namespace": "shop"},
        "spec": {"selector": dict(selector), "ports": [{"port": port}]},
    }


def app_with(spec: dict[str, Any] | None = None) -> Any:
    manifest = application_manifest(
        "shop", "gitmoor", AppSource("https://git.example.com/shop.git"), Destination("shop")
    )
    manifest["spec"].update(spec or {})
    return parse_application(manifest)


def test_every_app_has_the_rule_before_its_own() -> None:
    assert ignore_rules(app_with()) == BUILTIN_RULES
    own = {
        "ignoreDifferences": [
            {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
        ]
    }
    rules = ignore_rules(app_with(own))
    assert rules[: len(BUILTIN_RULES)] == BUILTIN_RULES
    assert rules[-1] == IgnoreRule("apps", "Deployment", json_pointers=("/spec/replicas",))


def test_the_controllers_hash_key_is_no_drift() -> None:
    rules = ignore_rules(app_with())
    live = service({"app": "web", HASH: "6c9f8d"})
    predicted = service({"app": "web"})  # Git's selector replaces the atomic map
    assert compare(SVC, live, predicted, rules).changed is False
    # without the rule, the same pair is what made a rollout's app OutOfSync
    assert compare(SVC, live, predicted).changed is True


def test_every_other_change_to_the_service_still_shows() -> None:
    rules = ignore_rules(app_with())
    live = service({"app": "web", HASH: "6c9f8d"})
    moved = compare(SVC, live, service({"app": "shop"}), rules)
    assert moved.changed is True
    assert "-    app: web\n" in moved.diff and "+    app: shop\n" in moved.diff
    assert HASH not in moved.diff
    port = compare(SVC, live, service({"app": "web"}, port=8080), rules)
    assert port.changed is True and HASH not in port.diff


def test_only_core_services_match() -> None:
    (rule,) = BUILTIN_RULES
    assert rule.matches(SVC)
    assert not rule.matches(ObjectRef("serving.knative.dev", "v1", "Service", "shop", "web"))
    assert not rule.matches(ObjectRef("apps", "v1", "Deployment", "shop", "web"))
    # a Deployment's selector with that key is not the Rollout controller's write
    rs_like = ObjectRef("apps", "v1", "ReplicaSet", "shop", "web-6c9f8d")
    assert not any(r.matches(rs_like) for r in ignore_rules(app_with()))


def test_the_builtin_rule_is_respected_whatever_the_sync_options() -> None:
    (rule,) = BUILTIN_RULES
    assert respected(rule, respect_ignored=False)
    assert respected(rule, respect_ignored=True)
    own = IgnoreRule("apps", "Deployment", json_pointers=("/spec/replicas",))
    assert not respected(own, respect_ignored=False)  # Argo CD's default: Git's value applied
    assert respected(own, respect_ignored=True)


def test_respecting_sends_back_the_live_hash_and_nothing_else() -> None:
    (rule,) = BUILTIN_RULES
    git = service({"app": "web"}, port=8080)
    body = copy.deepcopy(git)
    rule.keep_live(body, service({"app": "old", HASH: "6c9f8d"}))
    # the live hash joins Git's selector (whole, since the map is atomic); Git's
    # own keys and every other field stay Git's
    assert body["spec"]["selector"] == {"app": "web", HASH: "6c9f8d"}
    assert body["spec"]["ports"] == [{"port": 8080}]
    # before any rollout pointed the Service (no key live), Git's selector as written
    body = copy.deepcopy(git)
    rule.keep_live(body, service({"app": "web"}))
    assert body == git
