"""An Engine with a DryRunCache (as the controller runs it): what a sync applied
needs no dry-run in the refresh that follows, a re-sync with nothing changed
sends neither a dry-run nor a write, and a change made in the cluster is still
seen, because the cache is keyed by the live resourceVersion."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.engine.app import Engine
from gitmoor.engine.compare import DryRunCache
from gitmoor.engine.sync import SyncOptions
from gitmoor.kube import KubeClient, load_kubeconfig
from support.apps import actions, configmap, dump, kubectl, secret

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from support.apps import AppEnv


class _RequestLog:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url.path, dict(request.url.params)))

    def dry_runs(self) -> list[str]:
        return [p for m, p, q in self.requests if m == "PATCH" and q.get("dryRun") == "All"]

    def writes(self) -> list[str]:
        """Writes other than to the Applications' own status (which a sync records)."""
        return [
            p
            for m, p, q in self.requests
            if m in ("POST", "PUT", "DELETE", "PATCH")
            and q.get("dryRun") != "All"
            and "/apis/gitmoor.io/" not in p
        ]


async def test_cached_engine_dry_runs_only_what_changed_in_the_cluster(
    env: AppEnv, kubeconfig: Path
) -> None:
    env.repo.commit(
        {
            "config.yaml": dump(configmap("a", {"k": "1"}), configmap("b", {"k": "2"})),
            "secret.yaml": dump(secret("s", {"token": "t0ken"})),
        }
    )
    await env.create("cached")
    options = SyncOptions(timeout=60)
    async with KubeClient(load_kubeconfig(kubeconfig)) as kc:
        log = _RequestLog()
        kc._http.event_hooks["request"].append(log)
        engine = Engine(
            kc,
            git_cache_dir=env.engine.git_cache_dir,
            namespace=env.apps_namespace,
            dry_runs=DryRunCache(),
        )

        first = await engine.sync(await env.app("cached"), options)
        assert first.ok, first.message
        assert set(actions(first).values()) == {"created"}
        # The refresh that recorded the status trusted the apply's answers.
        assert log.dry_runs() == []
        assert (await env.app("cached")).status["sync"]["status"] == "Synced"

        log.requests.clear()
        again = await engine.sync(await env.app("cached"), options)
        assert again.ok, again.message
        assert set(actions(again).values()) == {"unchanged"}
        assert log.dry_runs() == []
        assert log.writes() == []

        # Another actor changes a field gitmoor applied: a new resourceVersion, so
        # the cache has no verdict and the dry-run shows the drift.
        kubectl(
            kubeconfig,
            *("-n", env.namespace, "patch", "configmap/a", "--type=merge"),
            *("-p", '{"data": {"k": "drifted"}}'),
        )
        log.requests.clear()
        app, comparison = await engine.refresh(await env.app("cached"))
        assert comparison is not None
        assert app.status["sync"]["status"] == "OutOfSync"
        assert [r.ref.name for r in comparison.resources if r.sync.value == "OutOfSync"] == ["a"]
        assert [p.rsplit("/", 1)[-1] for p in log.dry_runs()] == ["a"]

        healed = await engine.sync(app, SyncOptions(timeout=60, force_conflicts=True))
        assert healed.ok, healed.message
        assert actions(healed) == {
            "ConfigMap/a": "configured",
            "ConfigMap/b": "unchanged",
            "Secret/s": "unchanged",
        }
    live = await env.get(env.cm("a"))
    assert (live or {})["data"] == {"k": "1"}
