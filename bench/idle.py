"""`python -m bench.idle`: what one idle stream costs, on a fresh server of each of our paths.

The full benchmark's idle row comes after the fan-out workloads, whose heap a server reuses, and
beside grpcio's server, which cancels streams long before 10,000. Here each path gets a fresh
server, one warm-up, then `--streams` SendAndReceiveMessage streams opened and left open (the
benchmark's own `idle` workload): its RSS growth per stream, in KiB.
"""

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import uvloop

from bench import load
from bench.servers import OURS_MEMORY, OURS_REFERENCE_PATH, ServerProcess

PATHS = {"fast": OURS_MEMORY, "reference": OURS_REFERENCE_PATH}


async def kib_per_stream(target: str, streams: int, workdir: Path) -> float:
    with ServerProcess(target, workdir / target) as server:
        await server.ready()
        await load.warm_up(server.endpoint)
        sample = await load.idle(server.endpoint, streams, lambda done: None)
    return (sample.rss_after_kib - sample.rss_before_kib) / streams


async def run(streams: int, paths: Sequence[str]) -> list[str]:
    lines = [
        f"{streams:,} idle SendAndReceiveMessage streams on a fresh server",
        "path       KiB/stream",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as workdir:
        for path in paths:
            kib = await kib_per_stream(PATHS[path], streams, Path(workdir))
            lines.append(f"{path:<10} {kib:10.1f}")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--streams", type=int, default=10_000, help="idle streams (10,000)")
    parser.add_argument(
        "--path", choices=sorted(PATHS), action="append", help="one path only (both by default)"
    )
    args = parser.parse_args(argv)
    if args.streams < 1:
        parser.error("--streams must be at least 1")
    try:
        lines = uvloop.run(run(args.streams, args.path or ["fast", "reference"]))
    except (RuntimeError, OSError) as error:
        sys.exit(f"bench.idle: {error}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
