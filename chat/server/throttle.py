"""Failed authentications counted per client address: past the limit, an address's failures
are answered RESOURCE_EXHAUSTED for the rest of the window instead of UNAUTHENTICATED, logged
once a minute, and counted as refusals.

The credential is always checked first, so a right one is let in however many others at its
address failed: an attacker sharing a client's address (a NAT, a proxy, a campus) cannot lock
it out. Guessing therefore goes as fast as the checks are answered; what stands against it is
the credential itself (a long random shared token, a signature), not this count.
"""

import time
from collections import OrderedDict
from collections.abc import Callable

REMEMBERED_ADDRESSES = 100_000
"""Addresses whose failures are counted at once; past it the oldest window is forgotten."""


class AuthFailures:
    """Failures per address in fixed windows of `window` seconds, each begun by a failure."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        # address: (when its window began, failures in it), the oldest window first
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def blocked(self, address: str) -> float:
        """Seconds until `address` may try again (0: it may now). Always 0 when the limit is 0."""
        if not self.limit:
            return 0.0
        now = self._clock()
        self._forget_ended(now)
        began, failures = self._windows.get(address, (now, 0))
        return began + self.window - now if failures >= self.limit else 0.0

    def failed(self, address: str) -> None:
        """Counts a failed authentication from `address`."""
        if not self.limit:
            return
        now = self._clock()
        self._forget_ended(now)
        began, failures = self._windows.get(address, (now, 0))
        if not failures:
            self._windows.pop(address, None)
            if len(self._windows) >= REMEMBERED_ADDRESSES:
                self._windows.popitem(last=False)
        self._windows[address] = (began, failures + 1)

    def _forget_ended(self, now: float) -> None:
        windows = self._windows
        while windows:
            began, _ = next(iter(windows.values()))
            if now - began < self.window:
                return
            windows.popitem(last=False)
