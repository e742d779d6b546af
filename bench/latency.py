"""Delivery latency in the fan-out workloads: the send time rides in the text, on one clock."""

import re
import statistics

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
