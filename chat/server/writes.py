"""Whether the store takes writes: the first write that fails makes the server NOT_SERVING and
says so in one WARNING; the first that succeeds after makes it SERVING again, in one INFO line.

A store can answer reads and still refuse writes (SQLite on a full disk or read-only files):
only a write tells.
"""

import logging
from collections.abc import Callable

log = logging.getLogger("chat.store")


class StoreWrites:
    """The outcome of the store's latest write, and the failures counted since the start."""

    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self.failing = False
        self.failures = 0
        self.on_change = on_change
        """Told True or False each time writes start succeeding or failing (health)."""

    def failed(self, error: Exception) -> None:
        """A write failed with `error`."""
        self.failures += 1
        if not self.failing:
            self.failing = True
            log.warning("store writes fail, NOT_SERVING until one succeeds: %s", error)
            if self.on_change is not None:
                self.on_change(False)

    def succeeded(self) -> None:
        """A write succeeded."""
        if self.failing:
            self.failing = False
            log.info("store writes succeed again, SERVING")
            if self.on_change is not None:
                self.on_change(True)
