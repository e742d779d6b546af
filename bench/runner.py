"""Rounds of every workload against every server, alternating which server goes first."""

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench import crowd, floor, load
from bench.load import Progress
from bench.meter import Sample
from bench.progress import ProgressLine
from bench.servers import (
    BROADCAST,
    FLOOR,
    OURS_MEMORY,
    OURS_REFERENCE_PATH,
    OURS_SIGNED,
    OURS_SQLITE,
    REFERENCE,
    TARGETS,
    ServerProcess,
)

T = TypeVar("T")
WORKLOAD_TIMEOUT = 600.0  # a stuck server fails the run instead of hanging it


@dataclass(frozen=True)
class Sizes:
    """How much each workload does; the defaults are the full benchmark."""

    messages: int = 20_000  # bidi messages, hence also the history read
    unary: int = 5_000  # sequential GetStats calls
    unary_concurrent: int = 20_000  # GetStats calls, load.CONCURRENCY at a time
    deliveries: int = 100_000  # fan-out deliveries per listener count (messages x listeners)
    listeners: tuple[int, ...] = (10, 50, 500)  # fan-out listeners, one workload each
    idle: int = 1_000  # idle streams held open (grpcio's server cancels them by 10,000)
    crowd: int = 1_000  # listeners of the crowd workload
    crowd_rate: float = 100.0  # its messages a second
    crowd_seconds: float = 10.0  # how long it sends
    rounds: int = 3

    def crowd_messages(self) -> int:
        """Messages the crowd's sender posts."""
        return max(1, round(self.crowd_rate * self.crowd_seconds))

    def fanout_messages(self, listeners: int) -> int:
        """Messages sent to `listeners` listeners: about `deliveries` in all."""
        return max(1, self.deliveries // listeners)


TUTORIAL = frozenset({REFERENCE, OURS_MEMORY, OURS_SQLITE, OURS_REFERENCE_PATH})
"""Who runs the tutorial's workloads: grpcio's service and ours."""
UNARY = TUTORIAL | {OURS_SIGNED}
"""Who runs the unary workloads: those, and ours with a signed token on every call."""
OURS = TUTORIAL - {REFERENCE}
"""Who runs what only our server can: bidi with message keys."""
FANOUT = frozenset({BROADCAST, FLOOR, OURS_MEMORY, OURS_REFERENCE_PATH})
"""Who runs fan-out: grpcio's broadcast, the socket floor, and ours on both paths."""
CROWD = frozenset({OURS_MEMORY, OURS_SQLITE, OURS_REFERENCE_PATH})
"""Who runs the crowd: ours on both paths, and the fast one on SQLite too, whose writes wait for
a commit (grpcio's broadcast never got a message to 1,000 listeners within two minutes, and the
floor has no paced sender)."""


@dataclass(frozen=True)
class Workload:
    name: str
    run: Callable[[ServerProcess, Sizes, Progress], Awaitable[Sample]]
    total: Callable[[Sizes], int]  # for the progress line
    targets: frozenset[str]


def _fanout(listeners: int) -> Workload:
    async def run(server: ServerProcess, sizes: Sizes, progress: Progress) -> Sample:
        size = sizes.fanout_messages(listeners)
        endpoint = server.endpoint
        if server.target == FLOOR:
            return await floor.fanout(endpoint.host, endpoint.port, endpoint.pid, size, listeners)
        return await load.fanout(endpoint, size, progress, listeners)

    return Workload(f"fanout-{listeners}", run, lambda s: s.fanout_messages(listeners), FANOUT)


def workloads(sizes: Sizes) -> tuple[Workload, ...]:
    """Every workload of a run, in the order they run."""
    return (
        Workload(
            "bidi",
            lambda e, s, p: load.bidi(e.endpoint, s.messages, p),
            lambda s: s.messages,
            TUTORIAL,
        ),
        Workload(
            "history",
            lambda e, s, p: load.history(e.endpoint, p),
            lambda s: s.messages + load.WARM_UP_MESSAGES,
            TUTORIAL,
        ),
        Workload(
            "bidi-keyed",
            lambda e, s, p: load.bidi(e.endpoint, s.messages, p, keyed=True),
            lambda s: s.messages,
            OURS,
        ),
        Workload(
            "unary",
            lambda e, s, p: load.unary(e.endpoint, s.unary, p),
            lambda s: s.unary,
            UNARY,
        ),
        Workload(
            "unary-32",
            lambda e, s, p: load.unary_concurrent(e.endpoint, s.unary_concurrent, p),
            lambda s: s.unary_concurrent,
            UNARY,
        ),
        *(_fanout(listeners) for listeners in sizes.listeners),
        Workload(
            "crowd",
            lambda e, s, p: crowd.crowd(e.endpoint, s.crowd, s.crowd_rate, s.crowd_seconds, p),
            lambda s: s.crowd_messages(),
            CROWD,
        ),
        Workload(
            "idle",
            lambda e, s, p: load.idle(e.endpoint, s.idle, p),
            lambda s: s.idle,
            TUTORIAL,
        ),
    )


@dataclass(frozen=True)
class Record:
    """One workload's sample from one server in one round."""

    round: int
    target: str
    workload: str
    sample: Sample


def order(round_number: int) -> tuple[str, ...]:
    """Who goes first alternates from round to round, so neither side always runs warmer."""
    return TARGETS if round_number % 2 else tuple(reversed(TARGETS))


async def run(sizes: Sizes, progress: ProgressLine) -> list[Record]:
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        for number in range(1, sizes.rounds + 1):
            records += await _round(number, sizes, progress, Path(workdir) / f"round{number}")
    progress.clear()
    return records


async def _round(number: int, sizes: Sizes, progress: ProgressLine, workdir: Path) -> list[Record]:
    """Fresh servers; then each workload runs on each server in turn, before the next workload."""
    records = []
    with ExitStack() as stack:
        servers = [
            stack.enter_context(ServerProcess(target, workdir / target)) for target in order(number)
        ]
        for server in servers:
            progress.begin(f"round {number}/{sizes.rounds} {server.target} warm-up", 0)
            await _guarded(server, f"{server.target} warm-up", _warm_up(server))
        for workload in workloads(sizes):
            for server in servers:
                if server.target not in workload.targets:
                    continue
                label = f"round {number}/{sizes.rounds} {server.target} {workload.name}"
                progress.begin(label, workload.total(sizes))
                run = workload.run(server, sizes, progress.update)
                sample = await _guarded(server, label, run)
                records.append(Record(number, server.target, workload.name, sample))
    return records


async def _warm_up(server: ServerProcess) -> None:
    await server.ready()
    if server.target != FLOOR:
        await load.warm_up(server.endpoint)


async def _guarded(server: ServerProcess, label: str, work: Awaitable[T]) -> T:
    """`work` within WORKLOAD_TIMEOUT; any failure becomes one RuntimeError saying what and why."""
    try:
        async with asyncio.timeout(WORKLOAD_TIMEOUT):
            return await work
    except Exception as error:  # a crash says more than the client's error
        reason = server.failure() or f"{type(error).__name__}: {error}".removesuffix(": ")
        raise RuntimeError(f"{label}: {reason}") from error
