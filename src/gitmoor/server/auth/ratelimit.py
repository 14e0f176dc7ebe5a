"""Failed-login limits, per account and per client address.

Argo CD counts failed logins per user in a sliding window
(``ARGOCD_SESSION_FAILURE_MAX_FAIL_COUNT``, default 5, and
``ARGOCD_SESSION_FAILURE_WINDOW_SECONDS``, default 300) and refuses further
attempts until the window has passed. gitmoor does the same with 10 failures
per 5 minutes, and counts per client address too, so that one address cannot
try a password against many accounts, nor many addresses hammer one account
without it being refused.

The check comes before the password is verified: a refused attempt costs no
argon2 work, so the limit also caps the CPU a brute force can burn. Logins use
:meth:`LoginLimiter.begin`, which counts the attempt in the same step as the
check, so parallel attempts cannot all pass the check before one is counted. A
success clears that account's counter (the owner got in), not the address's.

Memory is bounded: each key keeps at most ``max_failures`` timestamps, and at
most ``max_keys`` keys are tracked; past that, the keys whose newest failure is
oldest are dropped first (Argo CD caps its failure cache the same way,
``ARGOCD_SESSION_MAX_CACHE_SIZE``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_FAILURES = 10
WINDOW = 300.0
MAX_KEYS = 10_000


class LoginLimiter:
    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` is for tests: the window is measured on it."""
        self.clock = clock
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        # key -> failure times, oldest first; the dict is ordered by last failure
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(account: str, address: str) -> tuple[str, str]:
        return f"account:{account}", f"address:{address}"

    def _wait(self, key: str, now: float) -> float | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        if len(times) < self.max_failures:
            return None
        # The attempt is allowed again once the oldest counted failure leaves the window.
        return max(times[0] + self.window - now, 0.001)

    def check(self, account: str, address: str, *, now: float | None = None) -> float | None:
        """Seconds to wait before another attempt (for ``Retry-After``), or None
        when the attempt may go ahead."""
        t = self.clock() if now is None else now
        with self._lock:
            waits = [w for k in self._keys(account, address) if (w := self._wait(k, t)) is not None]
        return max(waits) if waits else None

    def begin(self, account: str, address: str, *, now: float | None = None) -> float | None:
        """:meth:`check`, and when the attempt may go ahead, count it as a failure
        at once, in the same critical section. Checking first and counting after
        the slow argon2 verify let every one of 40 parallel guesses through (all
        had passed the check before the first was counted); counted up front,
        parallel attempts count against each other. A right password then calls
        ``succeeded(..., begun=True)``, which takes this count back."""
        t = self.clock() if now is None else now
        with self._lock:
            waits = [w for k in self._keys(account, address) if (w := self._wait(k, t)) is not None]
            if waits:
                return max(waits)
            self._record(account, address, t)
        return None

    def failed(self, account: str, address: str, *, now: float | None = None) -> None:
        t = self.clock() if now is None else now
        with self._lock:
            self._record(account, address, t)

    def _record(self, account: str, address: str, t: float) -> None:
        for key in self._keys(account, address):
            times = self._failures.pop(key, None) or deque(maxlen=self.max_failures)
            times.append(t)
            self._failures[key] = times  # moved to the end: the newest
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, account: str, address: str, *, begun: bool = False) -> None:
        """Clear the account's failures; with ``begun``, also take back the count
        :meth:`begin` made for this attempt at the address."""
        account_key, address_key = self._keys(account, address)
        with self._lock:
            self._failures.pop(account_key, None)
            times = self._failures.get(address_key)
            if begun and times:
                times.pop()
                if not times:
                    del self._failures[address_key]

    def __len__(self) -> int:
        return len(self._failures)
