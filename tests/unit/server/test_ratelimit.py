"""Failed-login limits: per account and per address, a sliding window, bounded memory."""

from __future__ import annotations

from gitmoor.server.auth.ratelimit import MAX_FAILURES, WINDOW, LoginLimiter


def test_ten_failures_are_allowed_and_the_eleventh_attempt_is_refused() -> None:
    lim = LoginLimiter()
    for i in range(MAX_FAILURES):
        assert lim.check("alice", "10.0.0.1", now=float(i)) is None
        lim.failed("alice", "10.0.0.1", now=float(i))
    wait = lim.check("alice", "10.0.0.1", now=10.0)
    # Allowed again when the first failure (at t=0) leaves the window.
    assert wait == WINDOW - 10.0


def test_the_window_slides_one_failure_at_a_time() -> None:
    lim = LoginLimiter(max_failures=3, window=60)
    for t in (0.0, 10.0, 20.0):
        lim.failed("bob", "a", now=t)
    assert lim.check("bob", "a", now=59.0) == 1.0
    assert lim.check("bob", "a", now=60.0) is None
    lim.failed("bob", "a", now=60.0)
    # t=10, 20, 60 are in the window again: refused until t=70.
    assert lim.check("bob", "a", now=61.0) == 9.0


def test_the_account_is_limited_from_every_address() -> None:
    lim = LoginLimiter(max_failures=3, window=60)
    for i in range(3):
        lim.failed("carol", f"10.0.0.{i}", now=0.0)
    assert lim.check("carol", "192.168.1.1", now=1.0) is not None
    assert lim.check("dave", "192.168.1.1", now=1.0) is None


def test_one_address_is_limited_across_accounts() -> None:
    lim = LoginLimiter(max_failures=3, window=60)
    for name in ("u1", "u2", "u3"):
        lim.failed(name, "203.0.113.9", now=0.0)
    assert lim.check("u4", "203.0.113.9", now=1.0) is not None
    assert lim.check("u4", "203.0.113.10", now=1.0) is None


def test_a_success_clears_the_account_but_not_the_address() -> None:
    lim = LoginLimiter(max_failures=2, window=60)
    lim.failed("erin", "x", now=0.0)
    lim.failed("erin", "y", now=0.0)
    lim.failed("frank", "x", now=0.0)
    lim.succeeded("erin", "y")
    assert lim.check("erin", "z", now=1.0) is None
    # Address x saw two failures (erin, frank): still limited.
    assert lim.check("erin", "x", now=1.0) is not None


def test_memory_stays_bounded_under_a_spray_of_names_and_addresses() -> None:
    lim = LoginLimiter(max_failures=5, window=60, max_keys=100)
    for i in range(10_000):
        lim.failed(f"user{i}", f"addr{i}", now=float(i) / 1000)
    assert len(lim) <= 100
    # The newest keys are the ones kept.
    for _ in range(4):
        lim.failed("user9999", "addr9999", now=10.0)
    assert lim.check("user9999", "elsewhere", now=10.0) is not None


def test_expired_keys_are_forgotten() -> None:
    lim = LoginLimiter(max_failures=2, window=5)
    lim.failed("gina", "q", now=0.0)
    assert lim.check("gina", "q", now=6.0) is None
    assert len(lim) == 0
