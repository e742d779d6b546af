"""Counts shared by every client of a run, and waiting for the run to reach a point."""

import asyncio
import heapq
import itertools


class Tally:
    """How far the run has got: faults and memory samples wait for a number of ACKs."""

    def __init__(self) -> None:
        self.acked = 0
        self.deliveries = 0
        self.hang_ups = 0
        self.failures = 0
        self._order = itertools.count()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []

    def ack(self) -> None:
        self.acked += 1
        while self._waiters and self._waiters[0][0] <= self.acked:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)

    async def reach(self, acked: int) -> None:
        """Returns once `acked` messages have been acknowledged, over all clients."""
        if self.acked >= acked:
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (acked, next(self._order), waiter))
        await waiter
