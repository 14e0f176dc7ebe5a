import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gitmoor.model import Manifest, RenderResult, RetryableError, UserInputError
from gitmoor.render import RenderCache, RenderOptions, render_app
from gitmoor.render.app import renderer_name

Writer = Callable[[str, str], Path]


class CountingRender:
    """A stand-in for render_app that counts calls and can be told to fail or wait."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_next: Exception | None = None
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def __call__(
        self, root: Path, path: str, revision: str, options: RenderOptions | None = None
    ) -> RenderResult:
        with self._lock:
            self.calls.append((path, revision))
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": path}}
        return RenderResult(revision, (Manifest.of(obj),))


@pytest.fixture
def fake() -> CountingRender:
    return CountingRender()


def test_same_commit_path_and_options_render_once(tmp_path: Path, fake: CountingRender) -> None:
    cache = RenderCache(render=fake)
    first = cache.get_or_render(tmp_path, "apps/web", "abc", RenderOptions())
    again = cache.get_or_render(tmp_path, "./apps/web/", "abc", RenderOptions(timeout=5))
    assert fake.calls == [("apps/web", "abc")]
    assert again == first


def test_revision_path_and_options_each_make_a_new_entry(
    tmp_path: Path, fake: CountingRender
) -> None:
    cache = RenderCache(render=fake)
    opts = RenderOptions()
    cache.get_or_render(tmp_path, "a", "c1", opts)
    cache.get_or_render(tmp_path, "a", "c2", opts)
    cache.get_or_render(tmp_path, "b", "c1", opts)
    cache.get_or_render(tmp_path, "a", "c1", RenderOptions(values={"replicas": 2}))
    cache.get_or_render(tmp_path, "a", "c1", RenderOptions(values={"replicas": 3}))
    cache.get_or_render(tmp_path, "a", "c1", RenderOptions(values={"replicas": 3}))
    assert len(fake.calls) == 5
    assert len(cache) == 5


def test_failures_are_not_cached(tmp_path: Path, fake: CountingRender) -> None:
    cache = RenderCache(render=fake)
    fake.fail_next = RetryableError("helm timed out")
    with pytest.raises(RetryableError):
        cache.get_or_render(tmp_path, "a", "c1", RenderOptions())
    assert len(cache) == 0
    cache.get_or_render(tmp_path, "a", "c1", RenderOptions())
    cache.get_or_render(tmp_path, "a", "c1", RenderOptions())
    assert len(fake.calls) == 2


def test_least_recently_used_entry_is_evicted(tmp_path: Path, fake: CountingRender) -> None:
    cache = RenderCache(maxsize=2, render=fake)
    opts = RenderOptions()
    cache.get_or_render(tmp_path, "a", "c", opts)
    cache.get_or_render(tmp_path, "b", "c", opts)
    cache.get_or_render(tmp_path, "a", "c", opts)  # a is now the most recent
    cache.get_or_render(tmp_path, "x", "c", opts)  # evicts b
    cache.get_or_render(tmp_path, "a", "c", opts)
    assert [p for p, _ in fake.calls] == ["a", "b", "x"]
    cache.get_or_render(tmp_path, "b", "c", opts)
    assert [p for p, _ in fake.calls] == ["a", "b", "x", "b"]


def test_callers_cannot_change_what_the_cache_holds(tmp_path: Path, fake: CountingRender) -> None:
    cache = RenderCache(render=fake)
    miss = cache.get_or_render(tmp_path, "a", "c", RenderOptions())
    miss.manifests[0].obj["metadata"]["labels"] = {"added": "on-a-miss"}
    hit = cache.get_or_render(tmp_path, "a", "c", RenderOptions())
    assert "labels" not in hit.manifests[0].obj["metadata"]
    hit.manifests[0].obj["metadata"]["labels"] = {"added": "on-a-hit"}
    again = cache.get_or_render(tmp_path, "a", "c", RenderOptions())
    assert "labels" not in again.manifests[0].obj["metadata"]


def test_concurrent_requests_for_one_key_render_once(tmp_path: Path, fake: CountingRender) -> None:
    cache = RenderCache(render=fake)
    fake.gate = threading.Event()
    results: list[RenderResult] = []

    def call() -> None:
        results.append(cache.get_or_render(tmp_path, "a", "c", RenderOptions()))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while not fake.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # time for the other threads to arrive (and, if buggy, to render too)
    fake.gate.set()
    for t in threads:
        t.join(5)
    assert len(results) == 4
    assert fake.calls == [("a", "c")]


def test_real_render_through_the_cache_reads_the_checkout_once(repo: Path, write: Writer) -> None:
    write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    cache = RenderCache()
    first = cache.get_or_render(repo, "app", "c1", RenderOptions())
    # The commit pins the content; a changed file with the same commit id is not re-read.
    write("app/cm.yaml", "- not an object\n")
    assert cache.get_or_render(repo, "app", "c1", RenderOptions()) == first
    with pytest.raises(UserInputError):
        cache.get_or_render(repo, "app", "c2", RenderOptions())


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RenderCache(maxsize=0)


class CountingRealRender:
    """render_app, counted: what the engine's cache runs for a real checkout."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self, root: Path, path: str, revision: str, options: RenderOptions | None = None
    ) -> RenderResult:
        self.calls += 1
        return render_app(root, path, revision, options)


def test_apps_of_one_commit_share_a_directory_render(repo: Path, write: Writer) -> None:
    # Two apps of one path in different namespaces (and so release names): a
    # directory app reads none of the options, so the commit renders once.
    write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    counted = CountingRealRender()
    cache = RenderCache(render=counted, renderer_of=renderer_name)
    team_a = cache.get_or_render(repo, "app", "c1", RenderOptions("web-a", namespace="team-a"))
    team_b = cache.get_or_render(repo, "app", "c1", RenderOptions("web-b", namespace="team-b"))
    assert counted.calls == 1
    assert team_a == team_b
    # Each app still gets objects of its own to add its namespace and tracking id to.
    team_a.manifests[0].obj["metadata"]["namespace"] = "team-a"
    assert "namespace" not in team_b.manifests[0].obj["metadata"]
    cache.get_or_render(repo, "app", "c2", RenderOptions("web-a", namespace="team-a"))
    assert counted.calls == 2


def test_a_kustomization_renders_again_only_for_the_option_it_reads(
    repo: Path, write: Writer, fake: CountingRender
) -> None:
    write("app/kustomization.yaml", "resources: []\n")
    cache = RenderCache(render=fake, renderer_of=renderer_name)
    cache.get_or_render(repo, "app", "c1", RenderOptions("a", namespace="team-a"))
    cache.get_or_render(repo, "app", "c1", RenderOptions("b", namespace="team-b"))
    assert len(fake.calls) == 1
    cache.get_or_render(repo, "app", "c1", RenderOptions("b", allow_remote_bases=True))
    assert len(fake.calls) == 2


def test_a_chart_renders_for_each_release_and_namespace(
    repo: Path, write: Writer, fake: CountingRender
) -> None:
    # .Release.Name and .Release.Namespace show in the output: never shared.
    write("chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n")
    cache = RenderCache(render=fake, renderer_of=renderer_name)
    cache.get_or_render(repo, "chart", "c1", RenderOptions("web-a", namespace="team-a"))
    cache.get_or_render(repo, "chart", "c1", RenderOptions("web-a", namespace="team-b"))
    cache.get_or_render(repo, "chart", "c1", RenderOptions("web-b", namespace="team-b"))
    cache.get_or_render(repo, "chart", "c1", RenderOptions("web-b", namespace="team-b"))
    assert len(fake.calls) == 3


def test_a_path_that_does_not_open_is_refused_by_the_render(repo: Path) -> None:
    cache = RenderCache()
    with pytest.raises(UserInputError, match="does not exist"):
        cache.get_or_render(repo, "missing", "c1", RenderOptions())


def test_forget_drops_every_render_of_one_path_only(tmp_path: Path, fake: CountingRender) -> None:
    cache = RenderCache(render=fake)
    for revision in ("c1", "c2"):
        cache.get_or_render(tmp_path, "apps/web", revision, RenderOptions())
    cache.get_or_render(tmp_path, "apps/db", "c1", RenderOptions())
    assert cache.forget("./apps/web/") == 2
    cache.get_or_render(tmp_path, "apps/db", "c1", RenderOptions())
    assert len(fake.calls) == 3  # apps/db still cached
    cache.get_or_render(tmp_path, "apps/web", "c1", RenderOptions())
    assert len(fake.calls) == 4  # apps/web rendered again


@pytest.mark.parametrize("hostile", ["../outside", "/etc", "a/../../b"])
def test_forget_of_a_path_that_cannot_render_drops_nothing_and_raises_nothing(
    tmp_path: Path, fake: CountingRender, hostile: str
) -> None:
    cache = RenderCache(render=fake)
    cache.get_or_render(tmp_path, "apps/web", "c1", RenderOptions())
    assert cache.forget(hostile) == 0
    assert len(cache) == 1
