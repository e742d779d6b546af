"""Token buckets by key, in process memory: users' buckets for the memory and SQLite stores,
and the buckets of connections and client addresses on every store (chat/server/flood.py).

A bucket holds up to `burst` tokens and gains `rate` a second; a message takes one. A bucket
left alone for `burst / rate` seconds is full again, the same as a new one, so it is dropped:
memory follows the keys that sent lately, not every key ever seen.
"""

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """One bucket per key; `take` answers whether a message may go now."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # key: (tokens, when last taken), the least recently taken first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, rate: float, burst: int) -> bool:
        """Takes a token from `key`'s bucket; False (nothing taken) when it is empty."""
        now = self._clock()
        self._forget_full(now, burst / rate)
        tokens, then = self._buckets.pop(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - then) * rate)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)  # now the newest
        return allowed

    def _forget_full(self, now: float, refill: float) -> None:
        """Drops the buckets untouched for `refill` seconds (full again), oldest first."""
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets))
            if now - buckets[oldest][1] < refill:
                return
            del buckets[oldest]
