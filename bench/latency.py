"""Delivery latency in the fan-out workloads: the send time rides in the text, on one clock."""

import asyncio
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

SENT_AT = re.compile(rb"fanout \d+ (\d+)")
"""The send time (perf_counter_ns of the load generator) in a fan-out message's bytes."""


def fanout_text(number: int, sent_ns: int) -> str:
    """The text of fan-out message `number`, sent at `sent_ns`."""
    return f"fanout {number} {sent_ns}"


def percentile(values: list[int], fraction: float) -> float:
    """The `fraction` percentile of sorted `values`."""
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def figures(sent: int, listeners: int, latencies_ns: list[int]) -> dict[str, float]:
    """What a fan-out sample carries besides its counts: sizes and p50/p99 latency in ms."""
    ordered = sorted(latencies_ns)
    return {
        "sent": sent,
        "listeners": listeners,
        "latency_p50_ms": percentile(ordered, 0.50) / 1e6,
        "latency_p99_ms": percentile(ordered, 0.99) / 1e6,
    }


class Listener(Protocol):
    """A fan-out listener of the load: how many messages it has, and how it reads them."""

    received: int

    async def listen(self, expected: int) -> None: ...


async def paced(
    crowd: Sequence[Listener],
    changed: asyncio.Event,
    size: int,
    send: Callable[[int, str], Awaitable[None]],
) -> None:
    """Sends `size` fan-out messages through `send(number, text)` while the crowd listens, each
    once every listener has the one before (`changed` is set on every receipt), so the latency
    measured is the server's, not a queue in the load generator."""
    async with asyncio.TaskGroup() as group:
        for listener in crowd:
            group.create_task(listener.listen(size))
        for number in range(size):
            while min(listener.received for listener in crowd) < number:
                changed.clear()
                await changed.wait()
            await send(number, fanout_text(number, time.perf_counter_ns()))
