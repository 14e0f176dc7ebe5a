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
    ObjectOptions,
    Plan,
    Role,
    annotation_warnings,
    build_plan,
    directives,
    hook_name,
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
    opts = ObjectOptions.parse(" Prune=false ,ServerSideApply=true,,Validate=false")
    assert opts.prune is False
    assert opts.get("ServerSideApply") == "true"
    assert opts.get("Replace") is None
    assert ObjectOptions.parse("Prune=TRUE").prune is True
    assert ObjectOptions.parse("").prune is True
    with pytest.raises(UserInputError, match="Key=value"):
        ObjectOptions.parse("Prune", concerns="x.yaml")
    with pytest.raises(UserInputError, match="true or false"):
        ObjectOptions.parse("Prune=confirm")


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


# --- Argo CD and Helm annotations ------------------------------------------------

EXAMPLES = Path(__file__).parents[2] / "integration" / "engine" / "testdata" / "argocd-example-apps"


def annotated(kind: str, name: str, annotations: dict[str, str], **meta: str) -> Manifest:
    """A manifest with annotations given by their full keys (Argo CD's, Helm's)."""
    o = obj(kind, name)
    o["metadata"].update(meta)
    if annotations:
        o["metadata"]["annotations"] = dict(annotations)
    return Manifest.of(o, Source(f"{name}.yaml"))


def hook_names(hooks: tuple[Hook, ...]) -> list[str]:
    return [h.ref.name for h in hooks]


def test_argocd_sync_wave_orders_waves() -> None:
    plan = build_plan(
        [
            annotated("ConfigMap", "late", {"argocd.argoproj.io/sync-wave": "2"}),
            annotated("ConfigMap", "early", {"argocd.argoproj.io/sync-wave": "-1"}),
            manifest("ConfigMap", "default"),
        ]
    )
    assert [(w.number, [m.ref.name for m in w.manifests]) for w in plan.waves] == [
        (-1, ["early"]),
        (0, ["default"]),
        (2, ["late"]),
    ]
    assert plan.warnings == ()


def test_helm_hook_weight_is_a_wave_on_any_object() -> None:
    # gitops-engine syncwaves.Wave falls back to helm.sh/hook-weight, hook or not.
    d = directives(
        obj("Service", "web")
        | {"metadata": {"name": "web", "annotations": {"helm.sh/hook-weight": "2"}}}
    )
    assert (d.role, d.wave) == (Role.RESOURCE, 2)


def test_invalid_argocd_wave_falls_back_to_helm_weight_with_a_warning() -> None:
    d = directives(
        obj("ConfigMap", "c")
        | {
            "metadata": {
                "name": "c",
                "annotations": {
                    "argocd.argoproj.io/sync-wave": "soon",
                    "helm.sh/hook-weight": "-3",
                },
            }
        },
        concerns="ConfigMap c (c.yaml)",
    )
    assert d.wave == -3
    assert d.warnings == (
        "ConfigMap c (c.yaml): argocd.argoproj.io/sync-wave 'soon' is not an integer; "
        "ignored, as Argo CD does",
    )


@pytest.mark.parametrize(
    "annotations,role,phases",
    [
        ({"argocd.argoproj.io/hook": "PreSync"}, Role.HOOK, ["PreSync"]),
        ({"argocd.argoproj.io/hook": "PostSync, SyncFail"}, Role.HOOK, ["PostSync", "SyncFail"]),
        ({"argocd.argoproj.io/hook": "Skip"}, Role.SKIPPED, []),
        # Skip is honoured only alone (hook.Skip: len(Types) == 1).
        ({"argocd.argoproj.io/hook": "Skip,PostSync"}, Role.HOOK, ["PostSync"]),
        ({"helm.sh/hook": "pre-install"}, Role.HOOK, ["PreSync"]),
        ({"helm.sh/hook": "pre-upgrade"}, Role.HOOK, ["PreSync"]),
        ({"helm.sh/hook": "post-install"}, Role.HOOK, ["PostSync"]),
        ({"helm.sh/hook": "post-upgrade"}, Role.HOOK, ["PostSync"]),
        # install and upgrade of one side give one hook, not two.
        ({"helm.sh/hook": "pre-install,pre-upgrade"}, Role.HOOK, ["PreSync"]),
        ({"helm.sh/hook": "pre-install,post-install"}, Role.HOOK, ["PreSync", "PostSync"]),
        # Test, delete and rollback hooks have no phase: never applied.
        ({"helm.sh/hook": "test"}, Role.SKIPPED, []),
        ({"helm.sh/hook": "test-success"}, Role.SKIPPED, []),
        ({"helm.sh/hook": "test-failure"}, Role.SKIPPED, []),
        ({"helm.sh/hook": "pre-delete"}, Role.SKIPPED, []),
        ({"helm.sh/hook": "post-delete"}, Role.SKIPPED, []),
        ({"helm.sh/hook": "pre-rollback,post-rollback"}, Role.SKIPPED, []),
        # Helm 2's CRD marker is not a hook (helmhook.IsHook).
        ({"helm.sh/hook": "crd-install"}, Role.RESOURCE, []),
        # Argo CD's own hook annotation wins over Helm's.
        ({"argocd.argoproj.io/hook": "Sync", "helm.sh/hook": "pre-install"}, Role.HOOK, ["Sync"]),
        ({"argocd.argoproj.io/hook": "Skip", "helm.sh/hook": "pre-install"}, Role.SKIPPED, []),
        # ... unless it names no known type: then Helm's decides (hook.Types).
        (
            {"argocd.argoproj.io/hook": "Bogus", "helm.sh/hook": "post-upgrade"},
            Role.HOOK,
            ["PostSync"],
        ),
        # gitmoor's Skip
        ({"gitmoor.io/hook": "Skip"}, Role.SKIPPED, []),
    ],
)
def test_hook_annotations_map_as_argo_cd_maps_them(
    annotations: dict[str, str], role: Role, phases: list[str]
) -> None:
    d = directives(obj("Job", "j") | {"metadata": {"name": "j", "annotations": annotations}})
    assert d.role is role
    assert [p.value for p in d.phases] == phases


def test_unknown_argocd_hook_types_are_ignored_with_a_warning() -> None:
    d = directives(
        obj("Job", "j")
        | {"metadata": {"name": "j", "annotations": {"argocd.argoproj.io/hook": "PreSync,Later"}}},
        concerns="Job j",
    )
    assert [p.value for p in d.phases] == ["PreSync"]
    assert d.warnings == (
        "Job j: argocd.argoproj.io/hook 'Later' is not a hook type; ignored, as Argo CD "
        "ignores unknown hook types",
    )


def test_argocd_hook_with_no_phase_is_skipped_not_applied() -> None:
    cleanup = annotated("Job", "cleanup", {"argocd.argoproj.io/hook": "PostDelete"})
    plan = build_plan([cleanup, manifest("ConfigMap", "cfg")])
    assert [m.ref.name for m in plan.manifests] == ["cfg"]
    assert [m.ref.name for m in plan.skipped] == ["cleanup"]
    assert not plan.post_sync
    assert any("PostDelete" in w and "no deletion hooks" in w for w in plan.warnings)
    assert any("is not applied" in w for w in plan.warnings)


def test_helm_test_hooks_and_skip_are_left_out_silently() -> None:
    plan = build_plan(
        [
            annotated("Pod", "smoke", {"helm.sh/hook": "test"}),
            annotated("ConfigMap", "kept-in-git", {"argocd.argoproj.io/hook": "Skip"}),
            manifest("ConfigMap", "cfg"),
        ]
    )
    assert [m.ref.name for m in plan.manifests] == ["cfg"]
    assert [m.ref.name for m in plan.skipped] == ["kept-in-git", "smoke"]
    assert not plan.pre_sync and not plan.post_sync
    assert plan.warnings == ()


@pytest.mark.parametrize(
    "annotations,expected",
    [
        ({}, {"BeforeHookCreation"}),  # Argo CD's default, and Helm 3's
        ({"helm.sh/hook-delete-policy": "before-hook-creation"}, {"BeforeHookCreation"}),
        ({"helm.sh/hook-delete-policy": "hook-succeeded"}, {"HookSucceeded"}),
        (
            {"helm.sh/hook-delete-policy": "hook-succeeded,hook-failed"},
            {"HookSucceeded", "HookFailed"},
        ),
        ({"argocd.argoproj.io/hook-delete-policy": "HookFailed"}, {"HookFailed"}),
        # Argo CD takes the union of both annotations (hook.DeletePolicies).
        (
            {
                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded",
                "helm.sh/hook-delete-policy": "hook-failed",
            },
            {"HookSucceeded", "HookFailed"},
        ),
    ],
)
def test_delete_policies_map_as_argo_cd_maps_them(
    annotations: dict[str, str], expected: set[str]
) -> None:
    plan = build_plan([annotated("Job", "j", {"helm.sh/hook": "pre-install", **annotations})])
    assert {p.value for p in plan.pre_sync[0].delete_policies} == expected


def test_argocd_sync_options() -> None:
    d = directives(
        obj("ConfigMap", "c")
        | {
            "metadata": {
                "name": "c",
                "annotations": {
                    "argocd.argoproj.io/sync-options": "Prune=false, Delete=false,PruneLast=true,"
                    "Replace=true,Validate=false,SkipDryRunOnMissingResource=true,"
                    "ServerSideApply=true"
                },
            }
        }
    )
    o = d.options
    assert (o.prune, o.delete, o.prune_last, o.replace, o.validate, o.skip_dry_run_on_missing) == (
        False,
        False,
        True,
        True,
        False,
        True,
    )
    assert d.warnings == ()  # ServerSideApply=true: accepted silently


@pytest.mark.parametrize(
    "option,prune,delete,warning",
    [
        ("Prune=confirm", False, True, "no confirmation step"),
        ("Delete=confirm", True, False, "no confirmation step"),
        ("ServerSideApply=false", True, True, "always applies server-side"),
        ("Force=true", True, True, "'Force=true' is not an option gitmoor honours"),
        # Argo CD matches options as exact strings: other spellings do nothing there.
        ("Prune=False", True, True, "'Prune=False' is not an option gitmoor honours"),
    ],
)
def test_argocd_sync_options_gitmoor_cannot_honour_warn(
    option: str, prune: bool, delete: bool, warning: str
) -> None:
    d = directives(
        obj("ConfigMap", "c")
        | {"metadata": {"name": "c", "annotations": {"argocd.argoproj.io/sync-options": option}}}
    )
    assert (d.options.prune, d.options.delete) == (prune, delete)
    assert len(d.warnings) == 1
    assert warning in d.warnings[0]


def test_argocd_prune_false_and_prune_last_order_the_prune() -> None:
    def live(name: str, options: str = "", wave: str = "0") -> dict[str, Any]:
        o = obj("ConfigMap", name)
        o["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": wave}
        if options:
            o["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] = options
        return o

    objs = [
        live("kept", "Prune=false"),
        live("last", "PruneLast=true", wave="5"),
        live("high", wave="3"),
        live("low", wave="-1"),
    ]
    plan = build_plan([], {ObjectRef.of(o): o for o in objs})
    assert [r.name for r in plan.prune] == ["high", "low", "last"]


def test_ignore_extraneous_compare_option() -> None:
    for word in ("IgnoreExtraneous", "IgnoreNeedsPruning"):
        d = directives(
            obj("ConfigMap", "c")
            | {
                "metadata": {
                    "name": "c",
                    "annotations": {"argocd.argoproj.io/compare-options": word},
                }
            }
        )
        assert d.ignore_extraneous and d.warnings == ()
    assert not directives(obj("ConfigMap", "c")).ignore_extraneous


# --- precedence: gitmoor's annotation over Argo CD's ------------------------------


def test_gitmoor_wave_wins_over_argocd_wave_with_a_warning() -> None:
    m = annotated(
        "ConfigMap",
        "cfg",
        {"gitmoor.io/sync-wave": "1", "argocd.argoproj.io/sync-wave": "5"},
    )
    plan = build_plan([m])
    assert [w.number for w in plan.waves] == [1]
    assert plan.warnings == (
        "ConfigMap shop/cfg (cfg.yaml): gitmoor.io/sync-wave (1) and Argo CD's wave (5, from "
        "argocd.argoproj.io/sync-wave) disagree; gitmoor's wins: wave 1",
    )
    assert annotation_warnings([m]) == plan.warnings


def test_gitmoor_hook_wins_over_helm_hook_with_a_warning() -> None:
    m = annotated("Job", "migrate", {"gitmoor.io/hook": "PostSync", "helm.sh/hook": "pre-install"})
    plan = build_plan([m])
    assert hook_names(plan.post_sync) == ["migrate"]
    assert not plan.pre_sync
    (warning,) = plan.warnings
    assert "gitmoor.io/hook makes it a PostSync hook" in warning
    assert "helm.sh/hook a PreSync hook" in warning
    assert "gitmoor's wins" in warning


def test_gitmoor_skip_wins_over_argocd_presync() -> None:
    m = annotated("Job", "j", {"gitmoor.io/hook": "Skip", "argocd.argoproj.io/hook": "PreSync"})
    plan = build_plan([m])
    assert [s.ref.name for s in plan.skipped] == ["j"]
    assert "gitmoor.io/hook makes it skipped" in plan.warnings[0]


def test_gitmoor_delete_policy_wins_with_a_warning() -> None:
    m = annotated(
        "Job",
        "j",
        {
            "argocd.argoproj.io/hook": "PreSync",
            "gitmoor.io/hook-delete-policy": "HookSucceeded",
            "argocd.argoproj.io/hook-delete-policy": "HookFailed",
        },
    )
    plan = build_plan([m])
    assert plan.pre_sync[0].delete_policies == {HookDeletePolicy.HOOK_SUCCEEDED}
    assert "gitmoor.io/hook-delete-policy (HookSucceeded)" in plan.warnings[0]


def test_sync_options_merge_key_by_key_gitmoor_winning() -> None:
    d = directives(
        obj("ConfigMap", "c")
        | {
            "metadata": {
                "name": "c",
                "annotations": {
                    "gitmoor.io/sync-options": "Prune=true,Replace=true",
                    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
                },
            }
        },
        concerns="ConfigMap c",
    )
    # Prune from gitmoor's (disagreeing), Delete from Argo CD's, Replace from gitmoor's.
    assert (d.options.prune, d.options.delete, d.options.replace) == (True, False, True)
    assert d.warnings == (
        "ConfigMap c: gitmoor.io/sync-options Prune=true and argocd.argoproj.io/sync-options "
        "Prune=false disagree; gitmoor's wins",
    )


def test_agreeing_annotations_give_no_warning() -> None:
    m = annotated(
        "Job",
        "j",
        {
            "gitmoor.io/hook": "PreSync",
            "argocd.argoproj.io/hook": "PreSync",
            "gitmoor.io/sync-wave": "2",
            "helm.sh/hook-weight": "2",
            "gitmoor.io/sync-options": "Prune=false",
            "argocd.argoproj.io/sync-options": "Prune=false",
        },
    )
    assert annotation_warnings([m]) == ()


def test_malformed_gitmoor_annotation_fails_annotation_warnings() -> None:
    with pytest.raises(UserInputError, match="sync-wave must be an integer"):
        annotation_warnings([manifest("ConfigMap", "cfg", sync_wave="x")])


# --- generateName ----------------------------------------------------------------


def test_generate_name_only_on_hooks() -> None:
    hook = annotated(
        "Job", "", {"argocd.argoproj.io/hook": "PreSync"}, generateName="upgrade-sql-schema"
    )
    plan = build_plan([hook])
    assert plan.pre_sync[0].generated_name
    assert plan.pre_sync[0].ref.name == "upgrade-sql-schema"
    resource = annotated("ConfigMap", "", {}, generateName="cfg-")
    with pytest.raises(UserInputError, match=r"only a hook may use metadata\.generateName"):
        build_plan([resource])


def test_hook_name_as_argo_cd_names_it() -> None:
    assert (
        hook_name("upgrade-sql-schema", "0D521C6E0498", HookPhase.PRE_SYNC, 1764547200.9)
        == "upgrade-sql-schema0d521c6-presync-1764547200"
    )


# --- Argo CD's own examples --------------------------------------------------------


def _example(path: str) -> list[Manifest]:
    text = (EXAMPLES / path).read_text()
    return [Manifest.of(o, Source(path)) for o in yaml.safe_load_all(text) if o]


def test_sync_waves_example_plan() -> None:
    """argocd-example-apps/sync-waves, in the order Argo CD's sync-waves docs give."""
    plan = build_plan(_example("sync-waves/manifests.yaml"))
    assert hook_names(plan.pre_sync) == ["upgrade-sql-schema"]
    assert [
        (w.number, [label(m.ref) for m in w.manifests], hook_names(w.hooks)) for w in plan.waves
    ] == [
        (0, ["Service/backend", "ReplicaSet/backend"], []),
        (1, [], ["maint-page-up"]),
        (2, ["Service/frontend", "ReplicaSet/frontend"], []),
        (3, [], ["maint-page-down"]),
    ]
    assert plan.waves[1].hooks[0].delete_policies == {HookDeletePolicy.BEFORE_HOOK_CREATION}
    assert not plan.post_sync and plan.warnings == ()


def test_helm_hooks_example_plan() -> None:
    """argocd-example-apps/helm-hooks: weights order the PreSync hooks, and the
    Service's hook-weight puts it in wave 2."""
    plan = build_plan(_example("helm-hooks/manifests.yaml"))
    assert [(h.wave, h.ref.name) for h in plan.pre_sync] == [
        (-2, "upgrade-sql-schema"),
        (-1, "maint-page-up"),
    ]
    assert [(w.number, [label(m.ref) for m in w.manifests]) for w in plan.waves] == [
        (0, ["ReplicaSet/frontend"]),
        (2, ["Service/frontend"]),
    ]
    assert hook_names(plan.post_sync) == ["maint-page-down"]
    assert plan.warnings == ()
