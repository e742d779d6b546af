"""Rounds of every workload against every server, alternating which server goes first."""

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench import load
from bench.load import Endpoint, Progress
from bench.meter import Sample
from bench.progress import ProgressLine
from bench.servers import OURS_SIGNED, REFERENCE, TARGETS, ServerProcess

T = TypeVar("T")
WORKLOAD_TIMEOUT = 600.0  # a stuck server fails the run instead of hanging it


@dataclass(frozen=True)
class Sizes:
    """How much each workload does; the defaults are the full benchmark."""

    messages: int = 20_000  # bidi messages, hence also the history read
    unary: int = 5_000  # sequential GetStats calls
    unary_concurrent: int = 20_000  # GetStats calls, load.CONCURRENCY at a time
    fanout: int = 2_000  # messages sent to the fan-out room
    listeners: int = 50  # fan-out listeners
    idle: int = 1_000  # idle streams held open
    rounds: int = 3


@dataclass(frozen=True)
class Workload:
    name: str
    run: Callable[[Endpoint, Sizes, Progress], Awaitable[Sample]]
    total: Callable[[Sizes], int]  # for the progress line
    reference: bool  # whether the tutorial's service can do it too
    signed: bool = False  # whether it runs on ours-signed too: the cost of a token per call


WORKLOADS = (
    Workload("bidi", lambda e, s, p: load.bidi(e, s.messages, p), lambda s: s.messages, True),
    Workload(
        "history",
        lambda e, s, p: load.history(e, p),
        lambda s: s.messages + load.WARM_UP_MESSAGES,
        True,
    ),
    Workload("unary", lambda e, s, p: load.unary(e, s.unary, p), lambda s: s.unary, True, True),
    Workload(
        "unary-32",
        lambda e, s, p: load.unary_concurrent(e, s.unary_concurrent, p),
        lambda s: s.unary_concurrent,
        True,
        True,
    ),
    Workload(
        "fanout",
        lambda e, s, p: load.fanout(e, s.fanout, p, s.listeners),
        lambda s: s.fanout,
        False,
    ),
    Workload("idle", lambda e, s, p: load.idle(e, s.idle, p), lambda s: s.idle, True),
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
        for workload in WORKLOADS:
            for server in servers:
                if server.target == REFERENCE and not workload.reference:
                    continue
                if server.target == OURS_SIGNED and not workload.signed:
                    continue
                label = f"round {number}/{sizes.rounds} {server.target} {workload.name}"
                progress.begin(label, workload.total(sizes))
                run = workload.run(server.endpoint, sizes, progress.update)
                sample = await _guarded(server, label, run)
                records.append(Record(number, server.target, workload.name, sample))
    return records


async def _warm_up(server: ServerProcess) -> None:
    await server.ready()
    await load.warm_up(server.endpoint)


async def _guarded(server: ServerProcess, label: str, work: Awaitable[T]) -> T:
    """`work` within WORKLOAD_TIMEOUT; any failure becomes one RuntimeError saying what and why."""
    try:
        async with asyncio.timeout(WORKLOAD_TIMEOUT):
            return await work
    except Exception as error:  # a crash says more than the client's error
        reason = server.failure() or f"{type(error).__name__}: {error}".removesuffix(": ")
        raise RuntimeError(f"{label}: {reason}") from error
