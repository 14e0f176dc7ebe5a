from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitmoor.engine.plan import (
    KIND_ORDER,
    Hook,
    HookDeletePolicy,
    HookPhase,
    Plan,
    SyncOptions,
    build_plan,
)
from gitmoor.model import Manifest, ObjectRef, Source, UserInputError

TESTDATA = Path(__file__).parent / "testdata" / "plan"

API = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "ServiceAccount": "v1",
    "Pod": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "Ingress": "networking.k8s.io/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "Widget": "example.com/v1",
}


def obj(kind: str, name: str, namespace: str = "shop", **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if kind not in ("Namespace", "CustomResourceDefinition"):
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = {
            f"gitmoor.io/{k.replace('_', '-')}": v for k, v in annotations.items()
        }
    return {"apiVersion": API.get(kind, "example.com/v1"), "kind": kind, "metadata": meta}


def manifest(kind: str, name: str, file: str | None = None, **annotations: str) -> Manifest:
    return Manifest.of(obj(kind, name, **annotations), Source(file or f"{name}.yaml"))


def crd(group: str = "example.com", kind: str = "Widget", **annotations: str) -> Manifest:
    o = obj("CustomResourceDefinition", f"{kind.lower()}s.{group}", **annotations)
    o["spec"] = {"group": group, "names": {"kind": kind, "plural": f"{kind.lower()}s"}}
    return Manifest.of(o, Source("crd.yaml"))


def label(ref: ObjectRef) -> str:
    return f"{ref.kind}/{ref.namespace}/{ref.name}" if ref.namespace else f"{ref.kind}/{ref.name}"


def kinds(manifests: tuple[Manifest, ...]) -> list[str]:
    return [m.ref.kind for m in manifests]


def test_kind_order_within_a_wave_follows_gitops_engine() -> None:
    names = [*KIND_ORDER, "Widget", "Certificate"]
    ms = [manifest(k, "x") for k in names]
    random.Random(7).shuffle(ms)
    plan = build_plan(ms)
    assert len(plan.waves) == 1
    # Unknown kinds come after every known kind, in name order like the rest.
    assert kinds(plan.waves[0].manifests) == [*KIND_ORDER, "Certificate", "Widget"]


def test_same_kind_is_ordered_by_name() -> None:
    plan = build_plan([manifest("ConfigMap", n) for n in ("c", "a", "b")])
    assert [m.ref.name for m in plan.manifests] == ["a", "b", "c"]


def test_waves_are_numeric_negative_first() -> None:
    plan = build_plan(
        [
            manifest("ConfigMap", "ten", sync_wave="10"),
            manifest("ConfigMap", "two", sync_wave="2"),
            manifest("ConfigMap", "default"),
            manifest("ConfigMap", "minus-five", sync_wave="-5"),
            manifest("Namespace", "plus", sync_wave="+2"),
        ]
    )
    assert [w.number for w in plan.waves] == [-5, 0, 2, 10]
    assert [m.ref.name for m in plan.manifests] == ["minus-five", "default", "plus", "two", "ten"]


def test_wave_beats_kind_order() -> None:
    plan = build_plan(
        [manifest("Namespace", "late", sync_wave="1"), manifest("Deployment", "early")]
    )
    assert kinds(plan.manifests) == ["Deployment", "Namespace"]


def test_hooks_are_separated_by_phase_with_delete_policies() -> None:
    plan = build_plan(
        [
            manifest("Deployment", "web"),
            manifest("Job", "migrate", hook="PreSync", hook_delete_policy="HookSucceeded"),
            manifest("Pod", "smoke", hook="PostSync"),
            manifest("Job", "notify", hook="SyncFail,PostSync"),
            manifest("Job", "warm", hook="Sync", sync_wave="3"),
        ]
    )
    assert [m.ref.name for m in plan.manifests] == ["web"]
    assert [h.ref.name for h in plan.pre_sync] == ["migrate"]
    assert plan.pre_sync[0].delete_policies == {HookDeletePolicy.HOOK_SUCCEEDED}
    assert [h.ref.name for h in plan.post_sync] == ["smoke", "notify"]
    assert [h.ref.name for h in plan.sync_fail] == ["notify"]
    # A Sync hook lives in its wave; a wave may hold nothing but hooks.
    assert [w.number for w in plan.waves] == [0, 3]
    assert plan.waves[1].steps == ()
    assert [h.ref.name for h in plan.hooks(HookPhase.SYNC)] == ["warm"]
    assert plan.hooks(HookPhase.POST_SYNC) == plan.post_sync
    # Argo CD's default policy.
    assert all(
        h.delete_policies == {HookDeletePolicy.BEFORE_HOOK_CREATION}
        for h in (*plan.post_sync, *plan.sync_fail, *plan.hooks(HookPhase.SYNC))
    )


def test_hook_phases_are_ordered_by_wave_then_kind() -> None:
    plan = build_plan(
        [
            manifest("Job", "b", hook="PreSync"),
            manifest("ConfigMap", "c", hook="PreSync"),
            manifest("Job", "a", hook="PreSync", sync_wave="-1"),
        ]
    )
    assert [(h.wave, h.ref.kind, h.ref.name) for h in plan.pre_sync] == [
        (-1, "Job", "a"),
        (0, "ConfigMap", "c"),
        (0, "Job", "b"),
    ]


@pytest.mark.parametrize(
    "annotations,message",
    [
        ({"hook": "PreSynk"}, "unknown value 'PreSynk'"),
        ({"hook": "PreSync", "hook_delete_policy": "OnSuccess"}, "unknown value 'OnSuccess'"),
    ],
)
def test_unknown_hook_words_are_errors(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(UserInputError, match=message) as err:
        build_plan([manifest("Job", "migrate", file="hooks/migrate.yaml", **annotations)])
    assert "hooks/migrate.yaml" in str(err.value)


def test_prune_runs_in_reverse_apply_order() -> None:
    live = {
        ObjectRef.of(o): o
        for o in (
            obj("Namespace", "old-ns", sync_wave="-1"),
            obj("ConfigMap", "old-config"),
            obj("Deployment", "old-web"),
            obj("Service", "old-web"),
            obj("Ingress", "old-web"),
            obj("Widget", "old-widget", sync_wave="2"),
        )
    }
    plan = build_plan([], live)
    assert [label(r) for r in plan.prune] == [
        "Widget/shop/old-widget",
        "Ingress/shop/old-web",
        "Deployment/shop/old-web",
        "Service/shop/old-web",
        "ConfigMap/shop/old-config",
        "Namespace/old-ns",
    ]


def test_prune_false_is_never_pruned() -> None:
    keep = obj("PersistentVolumeClaim", "data", sync_options="Validate=false, Prune=false")
    drop = obj("ConfigMap", "old")
    plan = build_plan([], {ObjectRef.of(keep): keep, ObjectRef.of(drop): drop})
    assert [r.name for r in plan.prune] == ["old"]


def test_prune_accepts_bare_refs_and_skips_desired_objects() -> None:
    desired = manifest("ConfigMap", "kept")
    # Same object under another version: still desired, so not pruned.
    kept_other_version = ObjectRef("", "v2", "ConfigMap", "shop", "kept")
    gone = ObjectRef("", "v1", "ConfigMap", "shop", "gone")
    plan = build_plan([desired], [kept_other_version, gone])
    assert plan.prune == (gone,)


def test_crd_and_its_custom_resource_in_one_wave_take_two_steps() -> None:
    plan = build_plan([manifest("Widget", "blue"), manifest("ConfigMap", "cfg"), crd()])
    (wave,) = plan.waves
    assert [kinds(step) for step in wave.steps] == [
        ["ConfigMap", "CustomResourceDefinition"],
        ["Widget"],
    ]
    assert kinds(wave.manifests) == ["ConfigMap", "CustomResourceDefinition", "Widget"]


def test_custom_resource_of_a_crd_in_an_earlier_wave_needs_no_extra_step() -> None:
    plan = build_plan([manifest("Widget", "blue", sync_wave="1"), crd(sync_wave="-1")])
    assert [(w.number, len(w.steps)) for w in plan.waves] == [(-1, 1), (1, 1)]


def test_custom_resources_of_other_groups_are_not_held_back() -> None:
    other = Manifest.of(
        {"apiVersion": "other.io/v1", "kind": "Widget", "metadata": {"name": "x", "namespace": "s"}}
    )
    plan = build_plan([other, crd()])
    assert len(plan.waves[0].steps) == 1


@pytest.mark.parametrize(
    "cr",
    [
        manifest("Widget", "blue", file="cr.yaml", sync_wave="-1"),
        manifest("Widget", "blue", file="cr.yaml", hook="PreSync"),
        manifest("Widget", "blue", file="cr.yaml", hook="Sync", sync_wave="-2"),
    ],
    ids=["resource-in-earlier-wave", "presync-hook", "sync-hook-in-earlier-wave"],
)
def test_custom_resource_before_its_crd_is_an_error(cr: Manifest) -> None:
    with pytest.raises(UserInputError, match=r"widgets\.example\.com") as err:
        build_plan([cr, crd()])
    assert "cr.yaml" in str(err.value)
    fix = "Sync or PostSync hook" if "PreSync" in cr.annotations.values() else "at least 0"
    assert fix in str(err.value)


@pytest.mark.parametrize("wave", ["abc", "1.5", "", "1_0", "0x10", "- 1"])
def test_invalid_wave_annotation_names_object_and_source(wave: str) -> None:
    with pytest.raises(UserInputError, match="sync-wave must be an integer") as err:
        build_plan([manifest("ConfigMap", "cfg", file="base/cfg.yaml", sync_wave=wave)])
    assert "ConfigMap shop/cfg" in str(err.value)
    assert "base/cfg.yaml" in str(err.value)


def test_invalid_wave_on_a_live_object_names_it() -> None:
    live = obj("ConfigMap", "old", sync_wave="soon")
    with pytest.raises(UserInputError, match=r"ConfigMap shop/old \(live\)"):
        build_plan([], {ObjectRef.of(live): live})


def test_duplicate_objects_name_both_sources() -> None:
    a = manifest("ConfigMap", "cfg", file="base/a.yaml")
    b = manifest("ConfigMap", "cfg", file="overlay/b.yaml")
    with pytest.raises(UserInputError, match="defined twice") as err:
        build_plan([a, manifest("ConfigMap", "other"), b])
    assert "base/a.yaml" in str(err.value)
    assert "overlay/b.yaml" in str(err.value)


def test_same_object_at_two_versions_is_a_duplicate() -> None:
    v1 = Manifest.of(obj("Widget", "w") | {"apiVersion": "example.com/v1"}, Source("a.yaml"))
    v2 = Manifest.of(obj("Widget", "w") | {"apiVersion": "example.com/v2"}, Source("b.yaml"))
    with pytest.raises(UserInputError, match="defined twice"):
        build_plan([v1, v2])


def test_same_name_in_other_namespace_or_kind_is_not_a_duplicate() -> None:
    a = Manifest.of(obj("ConfigMap", "cfg", namespace="a"))
    b = Manifest.of(obj("ConfigMap", "cfg", namespace="b"))
    c = Manifest.of(obj("Secret", "cfg", namespace="a"))
    assert len(build_plan([a, b, c]).manifests) == 3


def test_plan_does_not_depend_on_input_order() -> None:
    ms = [
        crd(),
        manifest("Widget", "w1"),
        manifest("Widget", "w2", sync_wave="1"),
        manifest("Deployment", "web"),
        manifest("Service", "web"),
        manifest("Job", "migrate", hook="PreSync"),
        manifest("ConfigMap", "a", sync_wave="-1"),
        Manifest.of(obj("ConfigMap", "a", namespace="other")),
    ]
    plans = set()
    for seed in range(5):
        shuffled = ms[:]
        random.Random(seed).shuffle(shuffled)
        plans.add(build_plan(shuffled))
    assert len(plans) == 1


def test_invalid_sync_options_on_a_manifest_fail_the_plan() -> None:
    with pytest.raises(UserInputError, match="Key=value") as err:
        build_plan([manifest("ConfigMap", "cfg", file="cfg.yaml", sync_options="Prune")])
    assert "cfg.yaml" in str(err.value)


def test_sync_options_parse() -> None:
    opts = SyncOptions.parse(" Prune=false ,ServerSideApply=true,,Validate=false")
    assert opts.prune is False
    assert opts.get("ServerSideApply") == "true"
    assert opts.get("Replace") is None
    assert SyncOptions.parse("Prune=TRUE").prune is True
    assert SyncOptions.parse("").prune is True
    with pytest.raises(UserInputError, match="Key=value"):
        SyncOptions.parse("Prune", concerns="x.yaml")
    with pytest.raises(UserInputError, match="true or false"):
        SyncOptions.parse("Prune=confirm")


# --- golden plan ---------------------------------------------------------------


def _hook(h: Hook) -> dict[str, Any]:
    return {
        "wave": h.wave,
        "hook": label(h.ref),
        "delete": sorted(p.value for p in h.delete_policies),
    }


def describe(plan: Plan) -> dict[str, Any]:
    waves = []
    for w in plan.waves:
        wave: dict[str, Any] = {
            "wave": w.number,
            "steps": [[label(m.ref) for m in step] for step in w.steps],
        }
        if w.hooks:
            wave["hooks"] = [_hook(h) for h in w.hooks]
        waves.append(wave)
    return {
        "pre_sync": [_hook(h) for h in plan.pre_sync],
        "waves": waves,
        "post_sync": [_hook(h) for h in plan.post_sync],
        "sync_fail": [_hook(h) for h in plan.sync_fail],
        "prune": [label(r) for r in plan.prune],
    }


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.yaml")), ids=lambda p: p.stem)
def test_golden_plan(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    manifests = [
        Manifest.of(o, Source(path.name, i)) for i, o in enumerate(case["manifests"], start=1)
    ]
    live = {ObjectRef.of(o): o for o in case.get("live_to_prune") or []}
    assert describe(build_plan(manifests, live)) == case["expect"]
