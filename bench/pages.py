"""`python -m bench --pages`: what a GetHistory page costs in a large room on SQLite.

The room is filled through the store's own API before the server starts (a million messages
sent one by one would take the run's hour), then read back newest first, a page of 500 at a
time with `before_id`, as a client scrolling up does. A page's cost is the server's CPU for it
(from /proc, over every page) and its wall time as the client sees it, median and 99th
percentile.
"""

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from grpclib.client import Channel

from bench.meter import Meter
from chat.model import Draft
from chat.store.sqlite import SqliteStore
from gen.grpc.chat import ChatServiceStub, HistoryRequest
from harness import ServerProcess, free_port, path_flags

ROOM = "big"
PAGE = 500
FILL_BATCH = 5_000
"""Messages written to the database in one go while filling it."""


@dataclass(frozen=True)
class PagesSample:
    """`pages` pages read from a room of `messages` messages."""

    messages: int
    pages: int
    cpu_s: float
    walls_s: list[float]

    @property
    def cpu_ms_per_page(self) -> float:
        return self.cpu_s / self.pages * 1e3

    @property
    def wall_ms_p50(self) -> float:
        return statistics.median(self.walls_s) * 1e3

    @property
    def wall_ms_p99(self) -> float:
        return statistics.quantiles(self.walls_s, n=100)[98] * 1e3


async def fill(path: Path, messages: int) -> None:
    """Writes `messages` short messages into one room of a new database."""
    store = await SqliteStore.open(str(path))
    try:
        for start in range(0, messages, FILL_BATCH):
            count = min(FILL_BATCH, messages - start)
            await store.append_all(
                [Draft(ROOM, f"u{n % 50}", f"message {n}") for n in range(start, start + count)]
            )
    finally:
        await store.close()


async def run(messages: int, pages: int) -> PagesSample:
    """Fills a room, starts a server on it, and reads `pages` pages back from the newest."""
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as workdir:
        database = Path(workdir) / "pages.db"
        await fill(database, messages)
        server = ServerProcess(
            Path(workdir) / "server.log",
            f"sqlite:///{database}",
            *path_flags("fast"),
            port=free_port(),
        ).start()
        try:
            return await _read_pages(server, messages, pages)
        finally:
            server.stop()


async def _read_pages(server: ServerProcess, messages: int, pages: int) -> PagesSample:
    host, _, port = server.address.rpartition(":")
    channel = Channel(host, int(port))
    try:
        history = ChatServiceStub(channel, timeout=30).get_history
        await history(HistoryRequest(room=ROOM, limit=PAGE))  # warm: imports and caches
        assert server.proc is not None
        meter = Meter(server.proc.pid)
        walls: list[float] = []
        before = 0
        meter.start()
        for _ in range(pages):
            started = time.perf_counter()
            page = await history(HistoryRequest(room=ROOM, before_id=before, limit=PAGE))
            walls.append(time.perf_counter() - started)
            if not page.more:
                break
            before = page.messages[0].id
        sample = meter.stop(len(walls))
        return PagesSample(messages, len(walls), sample.cpu_s, walls)
    finally:
        channel.close()


def table(sample: PagesSample) -> str:
    return (
        f"GetHistory on SQLite, {sample.messages:,} messages in the room, "
        f"{sample.pages} pages of {PAGE} read back from the newest\n"
        f"  server CPU {sample.cpu_ms_per_page:.2f} ms a page; wall p50 "
        f"{sample.wall_ms_p50:.2f} ms, p99 {sample.wall_ms_p99:.2f} ms (goal: 3 ms a page)"
    )


def main(messages: int, pages: int) -> str:
    return table(asyncio.run(run(messages, pages)))
