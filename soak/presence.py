"""Presence after a replica is killed: the survivor's lists converge within the bound.

A replica killed with SIGKILL leaves its users' entries in Redis until a survivor's beat finds
its deadline passed. From the kill on, the survivor is asked for its stats until no user shows
online whose client has no stream open, and no more streams are counted than the clients have
open; how long that took is the figure. Clients move between streams all the time (hang-ups,
reconnects), so a user counts as streaming when its client had a stream open just before or
just after the stats were read.
"""

import asyncio
import time
from dataclasses import dataclass, field

from gen.grpc.chat import StatsRequest
from soak.check import Result
from soak.clients import SoakClient
from soak.processes import ServerProcess
from soak.servers import retrying

PRESENCE_FLAGS = ("--presence-interval", "1", "--presence-timeout", "3")
"""The replicas' presence beats in a soak: a killed replica's users go within 4 s."""
BOUND = 3 + 1
"""Seconds from a kill within which the killed replica's entries are gone (timeout + beat)."""
SLACK = 10.0
"""Seconds more a loaded machine is given before the check fails."""


@dataclass
class PresenceWatch:
    """Started by each replica kill; judged at the end of the run."""

    survivor: ServerProcess
    clients: list[SoakClient] = field(default_factory=list)
    converged: list[float] = field(default_factory=list)  # seconds after each kill
    problems: list[str] = field(default_factory=list)
    _tasks: list["asyncio.Task[None]"] = field(default_factory=list)

    def killed(self) -> None:
        """A replica was just killed: the survivor's lists must converge from now."""
        self._tasks.append(asyncio.create_task(self._converge(time.monotonic())))

    async def result(self) -> Result:
        await asyncio.gather(*self._tasks)
        seconds = ", ".join(f"{s:.1f}s" for s in self.converged)
        return Result(
            f"presence on the survivor converged within {BOUND}s (+{SLACK:.0f}s) of each kill",
            bool(self._tasks) and not self.problems,
            "; ".join(self.problems) or f"after {seconds}",
        )

    def _streaming(self) -> set[str]:
        return {
            client.ledger.user
            for client in self.clients
            if client.ledger.connections and not client.ledger.connections[-1].ended
        }

    async def _converge(self, killed: float) -> None:
        deadline = killed + BOUND + SLACK
        while True:
            before = self._streaming()
            stats = await retrying(self.survivor, lambda stub: stub.get_stats(StatsRequest()))
            streaming = before | self._streaming()
            phantoms = sorted(set(stats.online) - streaming)
            if not phantoms and stats.num_connected <= len(streaming):
                self.converged.append(time.monotonic() - killed)
                return
            if time.monotonic() > deadline:
                self.problems.append(
                    f"{time.monotonic() - killed:.0f}s after a kill: online without a stream "
                    f"{phantoms[:5]}, {stats.num_connected} streams counted for "
                    f"{len(streaming)} open"
                )
                return
            await asyncio.sleep(0.1)  # asks again: the survivor's beat is on its own clock


async def nobody_online(servers: dict[str, ServerProcess]) -> Result:
    """Once every client has left, no replica shows anyone online."""
    shown = {}
    for name, server in servers.items():
        stats = await retrying(server, lambda stub: stub.get_stats(StatsRequest()))
        shown[name] = stats.online
    return Result(
        "nobody online once every client has left",
        not any(shown.values()),
        ", ".join(f"{name} {online or 'nobody'}" for name, online in shown.items()),
    )
