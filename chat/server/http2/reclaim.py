"""Gives the memory of closed connections back to the system once a wave of them has closed.

A held connection costs the server some 20 KiB, much of it in blocks of glibc's heap (h2 keeps
each setting in a deque, and a deque's storage is 760 bytes). Freed when the connection closes,
they go back to glibc, which keeps the free pages in the middle of its heap until it is asked to
trim them: after a flood of a few hundred connections the server stayed 5-8% bigger for good. So
when enough connections have closed and none has for a moment, the heap is trimmed, once: at most
once per quiet moment after a wave, never on a request's path. (A full collection is not needed
first: a connection's objects are freed as it closes, its protocol cutting the one cycle.)
"""

import asyncio
import ctypes
import logging
import time
from collections.abc import Callable

log = logging.getLogger("chat.server.http2")

WAVE = 64
"""Connections closed since the last reclaim that make one worth it."""
QUIET_SECONDS = 1.0
"""How long no connection may have closed before the reclaim runs: not in the midst of a wave,
whose closing connections would refill what it freed."""


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, which hands the heap's free pages back to the system; None where
    the C library has none (musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
    return trim


class Reclaimer:
    """Counts closed connections; trims the heap after a wave of them, once it is quiet."""

    def __init__(self, wave: int = WAVE, quiet: float = QUIET_SECONDS) -> None:
        self.wave = wave
        self.quiet = quiet
        self.closed = 0
        """Connections closed since the last reclaim."""
        self.last_closed = 0.0
        self.reclaims = 0
        """Reclaims run so far (the tests read it)."""
        self._timer: asyncio.TimerHandle | None = None
        self._trim = _malloc_trim()

    def connection_closed(self) -> None:
        """One more connection closed (on the event loop)."""
        self.closed += 1
        self.last_closed = time.monotonic()
        if self.closed >= self.wave and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.quiet, self._when_quiet)

    def _when_quiet(self) -> None:
        waited = time.monotonic() - self.last_closed
        if waited < self.quiet:  # still closing: wait until it stops
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.quiet - waited, self._when_quiet)
            return
        self._timer = None
        self.reclaim()

    def reclaim(self) -> None:
        """The heap's free pages back to the system."""
        started = time.perf_counter()
        if self._trim is not None:
            self._trim(0)
        self.reclaims += 1
        log.debug(
            "%d connections closed: the heap trimmed in %.1f ms",
            self.closed,
            (time.perf_counter() - started) * 1000,
        )
        self.closed = 0
