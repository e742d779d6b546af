"""The soak run at a small size: clients chat through a server SIGKILL (SQLite), or through a
replica SIGKILL and a Redis restart, and nothing is lost, doubled or shown out of order; through
a memory server's restart, resuming clients are shown the whole new history."""

import asyncio
import dataclasses
import signal
from pathlib import Path

import pytest

from harness import RedisProcess
from soak.run import Plan, run

pytestmark = pytest.mark.slow

SMALL = Plan(clients=8, rooms=2, messages=50, hang_up_rate=0.03, kills=1, rss_limit_mib=48)
"""Small enough for seconds; memory is checked loosely here (a short run barely warms up) and
tightly by the full `just soak`."""


class FixtureRedis:
    """The test's redis-server, killed and restarted by the soak's faults."""

    def __init__(self, redis: RedisProcess) -> None:
        self.redis = redis
        self.url = redis.url

    async def start(self) -> None:
        await asyncio.to_thread(self.redis.start)

    async def stop(self, signum: int = signal.SIGKILL) -> int:
        await asyncio.to_thread(self.redis.stop, signum)
        return 0


async def test_nothing_is_lost_through_a_sqlite_server_sigkill(tmp_path: Path) -> None:
    report = await run(SMALL, tmp_path)
    assert report.ok, report.summary()
    assert [fault.split(" (")[0] for fault in report.faults] == [
        "server SIGKILLed and restarted at 50%"
    ]
    assert report.hang_ups > 0, report.summary()


async def test_nothing_is_lost_through_a_replica_sigkill_and_a_redis_restart(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    plan = dataclasses.replace(SMALL, store="redis")
    report = await run(plan, tmp_path, FixtureRedis(redis_server))
    assert report.ok, report.summary()
    assert [fault.split(" at ")[0] for fault in report.faults] == [
        "replica SIGKILLed",
        "replica restarted",
        "redis-server SIGKILLed and restarted",
    ]


async def test_clients_resuming_after_a_memory_server_restart_are_shown_the_new_history(
    tmp_path: Path,
) -> None:
    report = await run(dataclasses.replace(SMALL, store="memory"), tmp_path)
    assert report.ok, report.summary()
    assert "every client was shown 2 history epochs" in report.summary()
