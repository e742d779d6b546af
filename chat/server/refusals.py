"""What the service refuses past its limits: counted by reason for the metrics, and told in the
log once per peer and reason per interval, however many requests a peer makes meanwhile."""

import logging
import time
from collections import Counter
from collections.abc import Callable
from enum import Enum
from typing import Generic, TypeVar

log = logging.getLogger("chat.limits")

LOG_INTERVAL = 60.0
"""Seconds between two log lines about one peer's refusals for one reason."""
REMEMBERED_PEERS = 10_000
"""Peers whose last line is remembered; past it the memory starts again (one more line each)."""


Reason = TypeVar("Reason", bound=Enum)


class Refused(Enum):
    """Why the service refused a request: the metrics' `reason` label."""

    ROOMS = "rooms"
    """A message for a new room, with --max-rooms rooms kept already."""
    AUTH_FAILURES = "auth_failures"
    """A failed credential from an address past --max-auth-failures: RESOURCE_EXHAUSTED."""


class Refusals(Generic[Reason]):
    """Counts refusals, and logs the first of each peer and reason in each interval, with how
    many went unsaid since the line before. The service's (`Refused`) and the HTTP/2 guard's
    (`chat.server.guard.limits.Refusal`) each keep one, in loggers of their own."""

    def __init__(
        self,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.counts: Counter[Reason] = Counter()
        self._interval = interval
        self._clock = clock
        self._log = logger
        self._said: dict[tuple[str, Reason], tuple[float, int]] = {}  # when, unsaid since

    def refuse(self, reason: Reason, peer: str, detail: str, count: int = 1) -> None:
        """Counts `count` refusals; logs `detail` unless this peer's last line for it is
        recent."""
        self.counts[reason] += count
        now = self._clock()
        key = (peer, reason)
        said = self._said.get(key)
        if said is not None and now - said[0] < self._interval:
            self._said[key] = (said[0], said[1] + count)
            return
        if len(self._said) >= REMEMBERED_PEERS:
            self._said.clear()
        self._said[key] = (now, 0)
        unsaid = f" ({said[1]} more since the last line)" if said and said[1] else ""
        self._log.warning("%s: %s%s", peer, detail, unsaid)
