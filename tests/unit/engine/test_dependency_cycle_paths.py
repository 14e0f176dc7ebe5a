"""A ``dependsOn`` cycle's message names a path of edges that exist (so the user
knows which dependency to cut), stays short on a large cycle, and an app's gate
reads only the apps its own ``dependsOn`` reaches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gitmoor.engine.automation import dependency_cycle, dependency_gates


def app(*deps: str) -> dict[str, Any]:
    return {"spec": {"dependsOn": [{"name": d} for d in deps]}, "status": {}}


def test_the_cycle_path_follows_real_edges_not_the_sorted_names() -> None:
    # a -> c -> b -> a: there is no edge a -> b, nor c -> a.
    apps = {"a": app("c"), "b": app("a"), "c": app("b")}

    assert dependency_cycle("a", apps) == ("a", "b", "c")
    assert "(a -> c -> b -> a)" in dependency_gates("a", apps).cycle
    assert "(b -> a -> c -> b)" in dependency_gates("b", apps).cycle


def test_the_path_is_the_shortest_way_back_through_the_app() -> None:
    # a -> b -> a, and a longer loop a -> c -> d -> a through the same app.
    apps = {"a": app("c", "b"), "b": app("a"), "c": app("d"), "d": app("a")}

    gates = dependency_gates("a", apps)

    assert "dependency cycle among a, b, c, d (a -> b -> a)" in gates.cycle


def test_a_large_cycle_is_named_in_a_bounded_message() -> None:
    n = 5000
    apps = {f"app{i:04d}": app(f"app{(i + 1) % n:04d}") for i in range(n)}

    message = dependency_gates("app0000", apps).cycle

    assert message.startswith("dependency cycle among app0000, app0001,")
    assert "(4990 more)" in message
    assert "app0000 -> app0001 -> app0002" in message
    assert len(message) < 500


class _Watched(Mapping[str, Mapping[str, Any]]):
    """The namespace's Applications, remembering which ones were read."""

    def __init__(self, apps: dict[str, dict[str, Any]]) -> None:
        self.apps, self.read = apps, set[str]()

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        self.read.add(key)
        return self.apps[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.apps)

    def __len__(self) -> int:
        return len(self.apps)


def test_a_gate_reads_only_the_apps_its_dependencies_reach() -> None:
    # The controller asks at every refresh of every app: reading the whole
    # namespace each time makes thousands of apps cost seconds per pass.
    apps = {f"other{i}": app("hub") for i in range(2000)}
    apps |= {"hub": app("a0"), "a0": app("hub"), "web": app("db"), "db": app()}
    watched = _Watched(apps)

    assert dependency_cycle("hub", watched) == ("a0", "hub")
    assert dependency_gates("web", watched).cycle == ""
    assert dependency_gates("other7", watched).cycle == ""

    assert watched.read <= {"hub", "a0", "web", "db", "other7"}
