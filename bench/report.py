"""Medians over rounds, the ratio of ours to the reference, the goals, and the table."""

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.machine import Machine
from bench.meter import Sample
from bench.procstat import CLOCK_TICKS
from bench.runner import Record, Sizes
from bench.servers import (
    BROADCAST,
    FLOOR,
    OURS_MEMORY,
    OURS_REFERENCE_PATH,
    OURS_SIGNED,
    OURS_SQLITE,
    REFERENCE,
    TARGETS,
)

COMPARED = ("bidi", "history", "unary", "unary-32")
STORES = {"memory": OURS_MEMORY, "sqlite": OURS_SQLITE, "ref-path": OURS_REFERENCE_PATH}
"""Our servers by the name a row shows: the fast path on each store, and the reference path."""
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
    """A workload on fast-memory and on fast-signed (a signed token on every call); medians."""

    workload: str
    plain_cpu_us: float
    signed_cpu_us: float

    @property
    def extra(self) -> float | None:
        """What the token adds, as a fraction of the plain cost; None below a clock tick."""
        return self.signed_cpu_us / self.plain_cpu_us - 1 if self.plain_cpu_us else None


SIGNED_WORKLOADS = ("unary", "unary-32")
"""The workloads run with a signed token too: one check per call is what a token costs."""


def signed_costs(records: Sequence[Record]) -> list[Signed]:
    return [
        Signed(
            workload,
            median(records, OURS_MEMORY, workload, cpu_us),
            median(records, OURS_SIGNED, workload, cpu_us),
        )
        for workload in SIGNED_WORKLOADS
    ]


FANOUT_OURS = {"fast": OURS_MEMORY, "ref-path": OURS_REFERENCE_PATH}
"""Our fan-out rows: the fast path and the reference path, both on the memory store."""
FANOUT_GOAL_LISTENERS = 50
FANOUT_GOAL_BROADCAST = 1 / 3
"""The fast path's CPU per delivery at 50 listeners, at most this share of grpcio's broadcast."""
FANOUT_GOAL_FLOOR = 2.0
"""... and at most this multiple of the socket floor's."""


@dataclass(frozen=True)
class Fanout:
    """One server's fan-out to `listeners` listeners; medians."""

    listeners: int
    server: str
    deliveries_per_second: float
    cpu_us_per_delivery: float
    latency_p50_ms: float
    latency_p99_ms: float
    broadcast_cpu_us: float
    floor_cpu_us: float

    @property
    def of_broadcast(self) -> float | None:
        """CPU per delivery as a share of grpcio's broadcast (None: too small to tell)."""
        return self.cpu_us_per_delivery / self.broadcast_cpu_us if self.broadcast_cpu_us else None

    @property
    def of_floor(self) -> float | None:
        """CPU per delivery as a multiple of the socket floor's (None: too small to tell)."""
        return self.cpu_us_per_delivery / self.floor_cpu_us if self.floor_cpu_us else None

    @property
    def met(self) -> bool | None:
        """Whether the fast path meets both fan-out goals (None: no goal for this row)."""
        if self.server != "fast" or self.listeners != FANOUT_GOAL_LISTENERS:
            return None
        if self.of_broadcast is None or self.of_floor is None:
            return None
        return self.of_broadcast <= FANOUT_GOAL_BROADCAST and self.of_floor <= FANOUT_GOAL_FLOOR


def fanouts(records: Sequence[Record], sizes: Sizes) -> list[Fanout]:
    rows = []
    for listeners in sizes.listeners:
        workload = f"fanout-{listeners}"
        servers = {**FANOUT_OURS, "grpcio": BROADCAST, "floor": FLOOR}
        for name, target in servers.items():
            rows.append(
                Fanout(
                    listeners,
                    name,
                    median(records, target, workload, per_second),
                    median(records, target, workload, cpu_us),
                    median(records, target, workload, lambda s: s.extra["latency_p50_ms"]),
                    median(records, target, workload, lambda s: s.extra["latency_p99_ms"]),
                    median(records, BROADCAST, workload, cpu_us),
                    median(records, FLOOR, workload, cpu_us),
                )
            )
    return rows


CROWD_GOAL_P99_MS = 50.0
"""The crowd's goal on the fast path: p99 delivery latency under this."""
CROWD_OURS = {**FANOUT_OURS, "fast-sqlite": OURS_SQLITE}
"""Our crowd rows: the fan-out rows, and the fast path on SQLite."""
CROWD_GOALS = frozenset({"fast", "fast-sqlite"})
"""The rows the crowd's goal is for: the fast path's."""


@dataclass(frozen=True)
class Crowd:
    """One server's crowd workload; medians."""

    server: str
    deliveries_per_second: float
    cpu_us_per_delivery: float
    cpu_share: float  # server CPU seconds per wall-clock second
    latency_p50_ms: float
    latency_p99_ms: float
    cut_off: float

    @property
    def met(self) -> bool | None:
        """Whether the fast path meets the latency goal (None: no goal for this row)."""
        return self.latency_p99_ms < CROWD_GOAL_P99_MS if self.server in CROWD_GOALS else None


def crowds(records: Sequence[Record]) -> list[Crowd]:
    return [
        Crowd(
            name,
            median(records, target, "crowd", per_second),
            median(records, target, "crowd", cpu_us),
            median(records, target, "crowd", lambda s: s.cpu_s / s.wall_s),
            median(records, target, "crowd", lambda s: s.extra["latency_p50_ms"]),
            median(records, target, "crowd", lambda s: s.extra["latency_p99_ms"]),
            median(records, target, "crowd", lambda s: s.extra["cut_off"]),
        )
        for name, target in CROWD_OURS.items()
        if any(r.target == target and r.workload == "crowd" for r in records)
    ]


def key_cost_us(records: Sequence[Record]) -> dict[str, tuple[float, float]]:
    """Server CPU µs per bidi message without and with a message key, by store (medians)."""
    return {
        store: (
            median(records, target, "bidi", cpu_us),
            median(records, target, "bidi-keyed", cpu_us),
        )
        for store, target in STORES.items()
    }


def idle_kib_per_stream(records: Sequence[Record]) -> dict[str, float]:
    """Median RSS growth per open idle stream, by server."""
    return {
        target: median(records, target, "idle", rss_per_stream_kib)
        for target in TARGETS
        if any(r.target == target and r.workload == "idle" for r in records)
    }


def table(records: Sequence[Record], sizes: Sizes, machine: Machine) -> str:
    lines = [
        f"Server CPU per message, median of {sizes.rounds} round(s); "
        "ratio = ours / grpcio (lower is better; goal: ratio at most the figure shown);",
        "ours: the fast path on the memory and SQLite stores, and the reference path",
        "(ref-path: betterproto on grpclib's documented API, memory store);",
        "by round: the lowest and highest ratio of a single round",
        "",
        f"{'workload':<9} {'ours':<8} {'ours µs':>8} {'grpcio µs':>9} {'ratio':>6} "
        f"{'by round':>12}  {'goal':<13} {'ours msg/s':>10} {'grpcio/s':>10}",
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
            f"{row.workload:<9} {row.store:<8} {row.ours_cpu_us:>8.1f} "
            f"{row.reference_cpu_us:>9.1f} {ratio:>6} {spread:>12}  {goal:<13} "
            f"{row.ours_per_second:>10,.0f} {row.reference_per_second:>10,.0f}"
        )
    lines += [
        "",
        "Fan-out: 1 sender, N listeners in one room, each message sent once every listener has",
        f"the one before; about {sizes.deliveries:,} deliveries per N. grpcio: the tutorial's "
        "service with a queue per stream;",
        "floor: a plain socket server writing the same bytes. Goal (fast, 50 listeners): "
        f"at most {FANOUT_GOAL_BROADCAST:.2f} of grpcio and {FANOUT_GOAL_FLOOR:.1f}x the floor",
        f"{'N':>4} {'server':<9} {'deliveries/s':>12} {'µs/delivery':>11} {'of grpcio':>9} "
        f"{'x floor':>7} {'p50 ms':>7} {'p99 ms':>7}  goal",
    ]
    for fan in fanouts(records, sizes):
        verdict = {True: "met", False: "NOT met", None: ""}[fan.met]
        of_broadcast = "-" if fan.of_broadcast is None else f"{fan.of_broadcast:.2f}"
        of_floor = "-" if fan.of_floor is None else f"{fan.of_floor:.2f}"
        lines.append(
            f"{fan.listeners:>4} {fan.server:<9} {fan.deliveries_per_second:>12,.0f} "
            f"{fan.cpu_us_per_delivery:>11.1f} {of_broadcast:>9} {of_floor:>7} "
            f"{fan.latency_p50_ms:>7.2f} {fan.latency_p99_ms:>7.2f}  {verdict}"
        )
    lines += [
        "",
        f"Crowd: {sizes.crowd:,} listeners in one room, each on a connection of its own; one "
        f"sender posting {sizes.crowd_rate:g} messages/s",
        f"for {sizes.crowd_seconds:g} s on the clock (open loop). Goal (fast): p99 under "
        f"{CROWD_GOAL_P99_MS:g} ms. CPU: server CPU s per wall s",
        f"{'server':<11} {'deliveries/s':>12} {'µs/delivery':>11} {'CPU':>5} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'cut off':>7}  goal",
    ]
    for crowd in crowds(records):
        verdict = {True: "met", False: "NOT met", None: ""}[crowd.met]
        lines.append(
            f"{crowd.server:<11} {crowd.deliveries_per_second:>12,.0f} "
            f"{crowd.cpu_us_per_delivery:>11.1f} {crowd.cpu_share:>5.2f} "
            f"{crowd.latency_p50_ms:>7.1f} {crowd.latency_p99_ms:>7.1f} "
            f"{crowd.cut_off:>7.0f}  {verdict}"
        )
    lines += [
        "",
        "Signed tokens, ours only: fast path, memory store, without and with a JWT (HS256) on "
        "every call",
        f"{'workload':<9} {'plain µs':>8} {'signed µs':>9} {'extra':>7}",
    ]
    for cost in signed_costs(records):
        extra = "-" if cost.extra is None else f"{cost.extra:+.1%}"
        lines.append(
            f"{cost.workload:<9} {cost.plain_cpu_us:>8.1f} {cost.signed_cpu_us:>9.1f} {extra:>7}"
        )
    lines += [
        "",
        f"Message keys, ours only: bidi, {sizes.messages:,} messages, each with a key",
        f"{'store':<7} {'µs':>8} {'keyed µs':>8} {'extra µs':>8}",
    ]
    for store, (plain, keyed) in key_cost_us(records).items():
        lines.append(f"{store:<7} {plain:>8.1f} {keyed:>8.1f} {keyed - plain:>+8.1f}")
    lines += [
        "",
        f"Idle streams: {sizes.idle:,} open SendAndReceiveMessage streams",
        f"{'server':<18} {'KiB RSS/stream':>14}",
    ]
    for target, kib in idle_kib_per_stream(records).items():
        lines.append(f"{target:<18} {kib:>14.1f}")
    lines += [
        "",
        f"CPU: utime + stime of the server process from /proc/PID/stat, in 1/{CLOCK_TICKS} s ticks",
        f"Machine: {machine.line()}",
    ]
    return "\n".join(lines)
