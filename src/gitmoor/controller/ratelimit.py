"""Per-repository limits on webhook refreshes: a token bucket for each repository.

A push makes the controller refresh every app that tracks the pushed
repository and ref; each refresh resolves the revision (a ``git ls-remote``)
and compares. Without a limit, anyone who can reach ``/api/webhook`` (or a
forge in a push loop, a bot committing every second) turns the controller
into a load generator against the git server and the API server. Argo CD has
no such limit on its webhook handler (only its repo-server's own lock per
repository); Flux's notification-controller rate-limits incoming events per
object (``--rate-limit-interval``, 5 s by default) and drops the excess. gitmoor
keeps Flux's idea but never drops a push: excess pushes coalesce into one
delayed refresh, so the last push of a burst is always seen.

Each repository (the payload's URLs reduced to host and path, so every
spelling of one repository shares a bucket) has ``burst`` tokens, refilled
at one per ``interval`` seconds. A push that finds a token refreshes at once;
one that finds none waits for the next token, together with every other push
to that repository until then. The buckets of repositories not heard from
for a while are forgotten, and at most ``max_keys`` are kept, so a flood of
invented repository names cannot grow memory without bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_BURST = 5
DEFAULT_INTERVAL = 10.0
DEFAULT_MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class RefreshLimits:
    """Per repository: ``burst`` refreshes at once, then one per ``interval`` seconds.

    ``interval <= 0`` turns the limit off.
    """

    burst: int = DEFAULT_BURST
    interval: float = DEFAULT_INTERVAL

    def __post_init__(self) -> None:
        if self.burst < 1:
            raise ValueError("burst must be at least 1")

    @property
    def enabled(self) -> bool:
        return self.interval > 0


@dataclass
class _Bucket:
    tokens: float
    at: float


class RepoRateLimiter:
    """Token buckets keyed by repository; not thread-safe (one event loop uses it)."""

    def __init__(
        self,
        limits: RefreshLimits = RefreshLimits(),
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, *, force: bool = False) -> float:
        """Take a token for ``key``: 0.0 when one was there (refresh now), else the
        seconds until the next one (and nothing is taken). ``force`` takes it
        anyway (a deferred refresh that is due), leaving the bucket empty."""
        if not self.limits.enabled:
            return 0.0
        now = self._clock()
        bucket = self._refill(key, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        if force:
            bucket.tokens = 0.0
            return 0.0
        return (1.0 - bucket.tokens) * self.limits.interval

    def __len__(self) -> int:
        return len(self._buckets)

    def _refill(self, key: str, now: float) -> _Bucket:
        burst = float(self.limits.burst)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(burst, now)
            self._buckets[key] = bucket
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(burst, bucket.tokens + elapsed / self.limits.interval)
            bucket.at = now
            self._buckets.move_to_end(key)
        self._forget_idle(now)
        return bucket

    def _forget_idle(self, now: float) -> None:
        # A bucket that has been idle long enough to be full again says nothing:
        # forgetting it changes no decision.
        full_after = self.limits.burst * self.limits.interval
        while self._buckets:
            oldest_key, oldest = next(iter(self._buckets.items()))
            if len(self._buckets) > self._max_keys or now - oldest.at >= full_after:
                del self._buckets[oldest_key]
            else:
                break
