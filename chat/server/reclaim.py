"""Gives the memory of closed connections and cancelled calls back to the system once a wave of
them has ended.

A held connection costs the server some 20 KiB, much of it in blocks of glibc's heap (h2 keeps
each setting in a deque, and a deque's storage is 760 bytes); a history call whose client stopped
reading holds a page of messages and a batch of replies. Freed when they end, they go back to
glibc, which keeps the free pages in the middle of its heap until it is asked to trim them: after
a flood of a few hundred connections the server stayed 5-8% bigger for good. So when enough have
ended and none has for a moment, the heap is trimmed, once: at most once per quiet moment after a
wave, never on a request's path. (A full collection is not needed first: a connection's objects
are freed as it closes, its protocol cutting the one cycle, and a cancelled call drops its
handler's frames, chat/server/calls.py.)
"""

import asyncio
import ctypes
import logging
import time
from collections.abc import Callable

log = logging.getLogger("chat.server.reclaim")

WAVE = 64
"""Connections closed and calls cancelled since the last reclaim that make one worth it."""
QUIET_SECONDS = 1.0
"""How long nothing may have ended before the reclaim runs: not in the midst of a wave, whose
ending connections and calls would refill what it freed."""


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
    """Counts closed connections and cancelled calls; trims the heap after a wave of them, once
    it is quiet."""

    def __init__(self, wave: int = WAVE, quiet: float = QUIET_SECONDS) -> None:
        self.wave = wave
        self.quiet = quiet
        self.ended_since = 0
        """Connections closed and calls cancelled since the last reclaim."""
        self.last_ended = 0.0
        self.reclaims = 0
        """Reclaims run so far (the tests read it)."""
        self._timer: asyncio.TimerHandle | None = None
        self._trim = _malloc_trim()

    def ended(self) -> None:
        """One more connection closed, or call cancelled (on the event loop)."""
        self.ended_since += 1
        self.last_ended = time.monotonic()
        if self.ended_since >= self.wave and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.quiet, self._when_quiet)

    def _when_quiet(self) -> None:
        waited = time.monotonic() - self.last_ended
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
            "%d connections closed or calls cancelled: the heap trimmed in %.1f ms",
            self.ended_since,
            (time.perf_counter() - started) * 1000,
        )
        self.ended_since = 0
