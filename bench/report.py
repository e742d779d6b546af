"""Medians over rounds, the ratio of ours to the reference, the goals, and the table."""

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.machine import Machine
from bench.meter import Sample
from bench.procstat import CLOCK_TICKS
from bench.runner import WORKLOADS, Record, Sizes
from bench.servers import OURS_MEMORY, OURS_SIGNED, OURS_SQLITE, REFERENCE

COMPARED = ("bidi", "history", "unary", "unary-32")
STORES = {"memory": OURS_MEMORY, "sqlite": OURS_SQLITE}
# the most server CPU per message ours may spend, as a fraction of the reference's
GOALS = {
    ("bidi", "memory"): 0.5,
    ("history", "memory"): 0.5,
    ("bidi", "sqlite"): 0.75,
    ("unary", "memory"): 1.0,
    ("unary", "sqlite"): 1.0,
    ("unary-32", "memory"): 1.0,
    ("unary-32", "sqlite"): 1.0,
}


def cpu_us(sample: Sample) -> float:
    """Server CPU microseconds per message (per call, per delivery, per stream)."""
    return sample.cpu_s / sample.count * 1e6


def per_second(sample: Sample) -> float:
    return sample.count / sample.wall_s


def rss_per_stream_kib(sample: Sample) -> float:
    return (sample.rss_after_kib - sample.rss_before_kib) / sample.count


def median(
    records: Sequence[Record], target: str, workload: str, figure: Callable[[Sample], float]
) -> float:
    values = [figure(r.sample) for r in records if r.target == target and r.workload == workload]
    return statistics.median(values)


@dataclass(frozen=True)
class Comparison:
    """One workload on one of our stores beside the reference; figures are medians."""

    workload: str
    store: str
    ours_cpu_us: float
    reference_cpu_us: float
    ours_per_second: float
    reference_per_second: float
    goal: float | None
    round_ratios: tuple[float, ...]  # ours / reference within each round, in round order

    @property
    def ratio(self) -> float | None:
        """None when the reference used less than one clock tick (a run too small to tell)."""
        return self.ours_cpu_us / self.reference_cpu_us if self.reference_cpu_us else None

    @property
    def met(self) -> bool | None:
        return None if self.goal is None or self.ratio is None else self.ratio <= self.goal


def comparisons(records: Sequence[Record]) -> list[Comparison]:
    return [
        Comparison(
            workload,
            store,
            median(records, target, workload, cpu_us),
            median(records, REFERENCE, workload, cpu_us),
            median(records, target, workload, per_second),
            median(records, REFERENCE, workload, per_second),
            GOALS.get((workload, store)),
            _round_ratios(records, target, workload),
        )
        for workload in COMPARED
        for store, target in STORES.items()
    ]


def _round_ratios(records: Sequence[Record], target: str, workload: str) -> tuple[float, ...]:
    """Each round's ratio: both sides measured minutes apart, under the same machine load."""
    cost = {
        (r.round, r.target): cpu_us(r.sample)
        for r in records
        if r.workload == workload and r.target in (target, REFERENCE)
    }
    rounds = sorted({number for number, _ in cost})
    return tuple(
        cost[number, target] / cost[number, REFERENCE]
        for number in rounds
        if cost[number, REFERENCE]
    )


@dataclass(frozen=True)
class Signed:
    """A workload on ours-memory and on ours-signed (a signed token on every call); medians."""

    workload: str
    plain_cpu_us: float
    signed_cpu_us: float

    @property
    def extra(self) -> float | None:
        """What the token adds, as a fraction of the plain cost; None below a clock tick."""
        return self.signed_cpu_us / self.plain_cpu_us - 1 if self.plain_cpu_us else None


def signed_costs(records: Sequence[Record]) -> list[Signed]:
    return [
        Signed(
            workload.name,
            median(records, OURS_MEMORY, workload.name, cpu_us),
            median(records, OURS_SIGNED, workload.name, cpu_us),
        )
        for workload in WORKLOADS
        if workload.signed
    ]


@dataclass(frozen=True)
class Fanout:
    """Fan-out on one of our stores; medians."""

    store: str
    deliveries_per_second: float
    cpu_us_per_delivery: float
    latency_p50_ms: float
    latency_p99_ms: float


def fanouts(records: Sequence[Record]) -> list[Fanout]:
    return [
        Fanout(
            store,
            median(records, target, "fanout", per_second),
            median(records, target, "fanout", cpu_us),
            median(records, target, "fanout", lambda s: s.extra["latency_p50_ms"]),
            median(records, target, "fanout", lambda s: s.extra["latency_p99_ms"]),
        )
        for store, target in STORES.items()
    ]


def idle_kib_per_stream(records: Sequence[Record]) -> dict[str, float]:
    """Median RSS growth per open idle stream, by server."""
    return {
        target: median(records, target, "idle", rss_per_stream_kib)
        for target in (REFERENCE, OURS_MEMORY, OURS_SQLITE)
    }


def table(records: Sequence[Record], sizes: Sizes, machine: Machine) -> str:
    lines = [
        f"Server CPU per message, median of {sizes.rounds} round(s); "
        "ratio = ours / reference (lower is better; goal: ratio at most the figure shown);",
        "by round: the lowest and highest ratio of a single round",
        "",
        f"{'workload':<9} {'store':<7} {'ours µs':>8} {'ref µs':>8} {'ratio':>6} "
        f"{'by round':>12}  {'goal':<13} {'ours msg/s':>10} {'ref msg/s':>10}",
    ]
    for row in comparisons(records):
        verdict = {True: "met", False: "NOT met", None: "?"}[row.met]
        goal = "-" if row.goal is None else f"≤{row.goal:.2f} {verdict}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        spread = (
            f"{min(row.round_ratios):.2f} to {max(row.round_ratios):.2f}"
            if row.round_ratios
            else "-"
        )
        lines.append(
            f"{row.workload:<9} {row.store:<7} {row.ours_cpu_us:>8.1f} "
            f"{row.reference_cpu_us:>8.1f} {ratio:>6} {spread:>12}  {goal:<13} "
            f"{row.ours_per_second:>10,.0f} {row.reference_per_second:>10,.0f}"
        )
    lines += [
        "",
        f"Fan-out, ours only: 1 sender, {sizes.listeners} listeners in one room, "
        f"{sizes.fanout:,} messages",
        f"{'store':<7} {'deliveries/s':>12} {'µs/delivery':>11} {'p50 ms':>7} {'p99 ms':>7}",
    ]
    for fan in fanouts(records):
        lines.append(
            f"{fan.store:<7} {fan.deliveries_per_second:>12,.0f} {fan.cpu_us_per_delivery:>11.1f} "
            f"{fan.latency_p50_ms:>7.2f} {fan.latency_p99_ms:>7.2f}"
        )
    lines += [
        "",
        "Signed tokens, ours only: memory store without and with a JWT (HS256) on every call",
        f"{'workload':<9} {'plain µs':>8} {'signed µs':>9} {'extra':>7}",
    ]
    for cost in signed_costs(records):
        extra = "-" if cost.extra is None else f"{cost.extra:+.1%}"
        lines.append(
            f"{cost.workload:<9} {cost.plain_cpu_us:>8.1f} {cost.signed_cpu_us:>9.1f} {extra:>7}"
        )
    lines += [
        "",
        f"Idle streams: {sizes.idle:,} open SendAndReceiveMessage streams",
        f"{'server':<12} {'KiB RSS/stream':>14}",
    ]
    for target, kib in idle_kib_per_stream(records).items():
        lines.append(f"{target:<12} {kib:>14.1f}")
    lines += [
        "",
        f"CPU: utime + stime of the server process from /proc/PID/stat, in 1/{CLOCK_TICKS} s ticks",
        f"Machine: {machine.line()}",
    ]
    return "\n".join(lines)
