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
        self.over = False
        self._order = itertools.count()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []

    def ack(self) -> None:
        self.acked += 1
        while self._waiters and self._waiters[0][0] <= self.acked:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)

    def end(self) -> None:
        """Every client has sent all it had: waiters for more ACKs give up."""
        self.over = True
        for _, _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def reach(self, acked: int) -> bool:
        """Waits until `acked` messages have been acknowledged, over all clients; False when the
        run ended short of that."""
        if self.acked < acked and not self.over:
            waiter = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (acked, next(self._order), waiter))
            await waiter
        return self.acked >= acked
