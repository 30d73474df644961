"""Per-principal token buckets: ``rate`` requests per second on average, ``burst`` at once.

In memory, per worker process: with N workers each enforces its own buckets, so the fleet-wide
limit is up to N times the configured one (documented; the Redis store of a later issue shares
buckets across workers and hosts). Idle buckets are forgotten so the table cannot grow without
bound under many principals.

Example::

    >>> limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: 0.0)
    >>> [limiter.take("alice") for _ in range(3)]
    [0.0, 0.0, 1.0]
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimiter"]

MAX_BUCKETS = 100_000


class RateLimiter:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # principal -> (tokens, at)

    def take(self, principal: str) -> float:
        """Spend one token; 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, at = self._buckets.get(principal, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[principal] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= MAX_BUCKETS and principal not in self._buckets:
            self._forget_full(now)
        self._buckets[principal] = (tokens - 1.0, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting them changes no decision."""
        full = [
            p for p, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst
        ]
        for principal in full:
            del self._buckets[principal]
