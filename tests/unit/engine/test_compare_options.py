"""Argo CD's compare option IgnoreExtraneous and hook annotations in the comparison."""

from __future__ import annotations

from gitmoor.engine.compare import Comparison, ResourceStatus, ignores_extraneous, is_hook
from gitmoor.model import Health, HealthStatus, Manifest, ObjectRef, SyncStatus


def _status(name: str, sync: SyncStatus, **kw: bool) -> ResourceStatus:
    ref = ObjectRef("", "v1", "ConfigMap", "shop", name)
    return ResourceStatus(ref, sync, Health(HealthStatus.HEALTHY), **kw)


def test_extraneous_object_with_ignore_extraneous_leaves_the_app_synced() -> None:
    kept = _status(
        "generated", SyncStatus.OUT_OF_SYNC, requires_pruning=True, ignore_extraneous=True
    )
    cmp = Comparison("abc", (_status("cfg", SyncStatus.SYNCED), kept), {})
    assert cmp.sync is SyncStatus.SYNCED
    # Its own line still says what it is, as Argo CD's resource list does.
    assert kept.to_dict()["status"] == "OutOfSync"
    assert kept.to_dict()["requiresPruning"] is True
    plain = _status("old", SyncStatus.OUT_OF_SYNC, requires_pruning=True)
    assert Comparison("abc", (plain,), {}).sync is SyncStatus.OUT_OF_SYNC


def test_ignores_extraneous_reads_the_live_annotation() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "x",
            "annotations": {"argocd.argoproj.io/compare-options": "IgnoreExtraneous"},
        },
    }
    assert ignores_extraneous(live)
    assert not ignores_extraneous({"metadata": {"name": "x"}})


def test_argo_and_helm_hooks_and_skipped_objects_are_not_resources() -> None:
    def m(annotations: dict[str, str]) -> Manifest:
        return Manifest.of(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "annotations": annotations},
            }
        )

    assert is_hook(m({"argocd.argoproj.io/hook": "PostSync"}))
    assert is_hook(m({"argocd.argoproj.io/hook": "Skip"}))
    assert is_hook(m({"helm.sh/hook": "test"}))
    assert not is_hook(m({"helm.sh/hook": "crd-install"}))
    assert not is_hook(m({}))
    # A malformed gitmoor annotation still counts as a hook here; the plan names the error.
    assert is_hook(m({"gitmoor.io/hook": "PreSynk"}))
