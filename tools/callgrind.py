"""Instructions the server spends per message, counted by callgrind: repeatable on a busy machine.

Wall-clock and CPU time move with whatever else the machine runs; the instructions a process
executes do not. The server runs on the fast path with the memory store under `valgrind
--tool=callgrind`, twice per workload (`--sizes`), driven by the benchmark's own clients; its
count for the smaller run (startup, connections) is taken from the larger one's, so what is
left is the cost of the messages between the two sizes (and of the guard's clock ticks in the
longer run's extra seconds: a run repeated lands within half a percent).

    python -m tools.callgrind                       # bidi, fanout and unary, this tree's server
    python -m tools.callgrind --root ../other-tree  # the server of another checkout
    python -m tools.callgrind --workload fanout --keep out/   # callgrind files kept for
                                                              # callgrind_annotate
"""

import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from bench import load
from harness import clean_environment, free_port, wait_accepting

HOST = "127.0.0.1"
FLAGS = (
    "--store",
    "memory://",
    "--rate-limit",
    "0",
    "--encoding",
    "handwritten",
    "--http2",
    "direct",
    "--web-port",
    "0",
    "--h2-max-connections-per-address",
    "20000",
)
"""The fast path as `just bench` runs it (its fast-memory target), flood control off."""
START_SECONDS = 300.0
"""Time the server has to start under valgrind (tens of times slower than without)."""
STOP_SECONDS = 120.0
LISTENERS = 50
WORKLOADS = ("bidi", "fanout", "unary")

Driver = Callable[[load.Endpoint, int], Coroutine[Any, Any, object]]


def _ignore(done: int) -> None:
    """Progress goes nowhere: the counts are read from callgrind's file."""


DRIVERS: dict[str, Driver] = {
    "bidi": lambda server, size: load.bidi(server, size, _ignore),
    "fanout": lambda server, size: load.fanout(server, size, _ignore, LISTENERS),
    "unary": lambda server, size: load.unary(server, size, _ignore),
}
"""Each workload as the benchmark drives it: one stream awaiting each ACK; messages to
LISTENERS listeners, each on its own connection; GetStats, one call after the other."""
UNIT = {"bidi": "message", "fanout": "message", "unary": "call"}


def server_instructions(
    root: Path, workload: str, size: int, keep: Path | None, allocator: str
) -> int:
    """Instructions the server in `root` executed from start to exit, with `size` units of
    `workload` (and nothing else) between, Python's small objects from `allocator`."""
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        out = (keep or Path(scratch)) / f"callgrind.{workload}.{size}.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "chat.server",
            "--host",
            HOST,
            "--port",
            str(port),
            *FLAGS,
        ]
        environment = clean_environment(
            {"PYTHONPATH": str(root), "PYTHONMALLOC": allocator, "PYTHONHASHSEED": "0"}
        )
        log = Path(scratch) / "server.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(command, cwd=root, env=environment, stdout=sink, stderr=sink)
        try:
            wait_accepting(port, proc, START_SECONDS)
            asyncio.run(DRIVERS[workload](load.Endpoint(HOST, port, proc.pid), size))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return _total(out.read_text(errors="replace"), log)


def _total(callgrind: str, log: Path) -> int:
    """The `summary:` (or `totals:`) line of a callgrind file."""
    found = re.search(r"^(?:summary|totals): (\d+)", callgrind, re.MULTILINE)
    if found is None:
        raise click.ClickException(
            f"callgrind wrote no totals; the server said:\n{log.read_text()}"
        )
    return int(found[1])


@click.command()
@click.option("--workload", type=click.Choice(WORKLOADS), multiple=True, default=WORKLOADS)
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path(__file__).resolve().parent.parent,
    show_default="this checkout",
    help="the checkout whose server runs (the clients are always this one's)",
)
@click.option("--sizes", type=(int, int), default=(100, 300), show_default=True)
@click.option(
    "--allocator",
    type=click.Choice(["pymalloc", "malloc"]),
    default="pymalloc",
    show_default=True,
    help="pymalloc, as the server ships; malloc adds glibc's heap consolidation, which moves "
    "with the heap's layout",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="a folder to keep callgrind's files in, for callgrind_annotate",
)
def main(
    workload: tuple[str, ...],
    root: Path,
    sizes: tuple[int, int],
    allocator: str,
    keep: Path | None,
) -> None:
    """Prints, per workload, the server's instructions per message (or per call)."""
    small, large = sizes
    if large <= small:
        raise click.BadParameter("the second size must be the larger", param_hint="--sizes")
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    click.echo(f"server from {root}, sizes {small} and {large}")
    for name in workload:
        began = time.monotonic()
        counts = [server_instructions(root, name, size, keep, allocator) for size in sizes]
        each = (counts[1] - counts[0]) / (large - small)
        line = f"{name:7} {each:12,.0f} instructions per {UNIT[name]}"
        if name == "fanout":
            line += f" ({each / LISTENERS:,.0f} per delivery to {LISTENERS} listeners)"
        click.echo(f"{line}   [{counts[0]:,} / {counts[1]:,}; {time.monotonic() - began:.0f}s]")


if __name__ == "__main__":
    main()
