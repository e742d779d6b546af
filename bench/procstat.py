"""What a server process has cost so far, read from /proc: CPU time (memory: harness)."""

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of the process, in seconds (clock-tick resolution).

    It counts only the server's own work: a slow client adds nothing to it (a busy machine still
    makes that work dearer, mostly through costlier thread wake-ups).
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS
