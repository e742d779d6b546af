"""A time budget for each turn of the event loop, shared by every chat stream.

Requests a connection holds by the thousand are read without waiting, so a stream going
through them would keep the loop to itself, and a hundred such streams would take a hundred
times as long. Instead, every turn is timed from the first request handled in it; once it has
lasted TURN_SECONDS, each stream waits for the next turn before its next request. A backlog is
still stored and delivered many messages to a turn (and to a write), and nobody waits long.
"""

import asyncio
import time

TURN_SECONDS = 0.002
"""How long the requests handled in one turn of the event loop may take, together."""


class Turns:
    """The current turn of the event loop, as far as request handling is concerned."""

    def __init__(self) -> None:
        self._began: float | None = None

    def over(self) -> bool:
        """Whether this turn has had its TURN_SECONDS of requests: then wait for the next
        (`await asyncio.sleep(0)`) before handling another."""
        now = time.monotonic()
        if self._began is None:
            self._began = now
            asyncio.get_running_loop().call_soon(self._next)  # runs in the next turn
            return False
        return now - self._began > TURN_SECONDS

    def _next(self) -> None:
        self._began = None
