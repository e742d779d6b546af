"""The faults of a run: servers and Redis killed with SIGKILL and started again, on schedule.

A fault fires when a given share of the planned messages has been ACKed, so it always lands in
the middle of the traffic, however fast the machine is.
"""

import math
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from soak.tally import Tally


class Restartable(Protocol):
    """A process that can be killed and started again on the same port."""

    async def start(self) -> None: ...

    async def stop(self, signum: int = signal.SIGKILL) -> int: ...


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # share of the planned messages ACKed when it fires
    what: str
    act: Callable[[], Awaitable[None]]


@dataclass
class Faults:
    """A schedule of faults, and what happened when each fired."""

    schedule: list[Fault]
    done: list[str] = field(default_factory=list)

    @property
    def last_at(self) -> float:
        return max((fault.at for fault in self.schedule), default=0.0)

    async def inject(self, tally: Tally, planned: int) -> None:
        """Fires each fault in turn once its share of `planned` ACKs is reached."""
        for fault in sorted(self.schedule, key=lambda f: f.at):
            if not await tally.reach(math.ceil(fault.at * planned)):
                return
            started = time.monotonic()
            await fault.act()
            took = time.monotonic() - started
            self.done.append(f"{fault.what} at {fault.at:.0%} ({took:.1f}s)")


async def kill_and_restart(process: Restartable) -> None:
    await process.stop(signal.SIGKILL)
    await process.start()


def server_kills(server: Restartable, kills: int) -> Faults:
    """SIGKILL and restart of the one server, `kills` times, evenly spread over the run."""
    return Faults(
        [
            Fault(
                n / (kills + 1), "server SIGKILLed and restarted", lambda: kill_and_restart(server)
            )
            for n in range(1, kills + 1)
        ]
    )


def replica_and_redis_kills(
    replica: Restartable, redis: Restartable, killed: Callable[[], None]
) -> Faults:
    """One replica killed and, a while later, started again; then Redis killed and restarted.
    `killed` is called right after the replica's kill (the presence watch starts)."""

    async def kill() -> None:
        await replica.stop(signal.SIGKILL)
        killed()

    return Faults(
        [
            Fault(0.2, "replica SIGKILLed", kill),
            Fault(0.35, "replica restarted", replica.start),
            Fault(0.55, "redis-server SIGKILLed and restarted", lambda: kill_and_restart(redis)),
        ]
    )
