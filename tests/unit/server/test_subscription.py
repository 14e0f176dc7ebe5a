"""The SSE fan-out coalesces changes per app."""

from __future__ import annotations

from gitmoor.server.state import Subscription


def test_changes_to_one_app_coalesce_into_the_latest() -> None:
    sub = Subscription()
    sub.push("web", False)
    sub.push("web", False)
    sub.push("db", False)
    sub.push("web", True)
    assert sub.wake.is_set()
    assert sub.take() == {"web": True, "db": False}
    assert not sub.wake.is_set()
    assert sub.take() == {}
