"""A server's cost over one measured stretch: its CPU time and RSS from /proc, the wall clock."""

import time
from dataclasses import dataclass, field

from bench.procstat import cpu_seconds
from harness import rss_kib


@dataclass(frozen=True)
class Sample:
    """What one workload cost the server: `count` messages in `wall_s`, `cpu_s` of its CPU."""

    count: int
    wall_s: float
    cpu_s: float
    rss_before_kib: int
    rss_after_kib: int
    extra: dict[str, float] = field(default_factory=dict)


class Meter:
    """Reads a server process's CPU time, RSS and the wall clock around the measured part."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._cpu = 0.0
        self._wall = 0.0
        self._rss = 0

    def start(self) -> None:
        self._rss = rss_kib(self._pid)
        self._wall = time.perf_counter()
        self._cpu = cpu_seconds(self._pid)

    def stop(self, count: int, **extra: float) -> Sample:
        cpu = cpu_seconds(self._pid) - self._cpu
        wall = time.perf_counter() - self._wall
        return Sample(count, wall, cpu, self._rss, rss_kib(self._pid), extra)
