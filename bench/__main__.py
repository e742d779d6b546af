"""`python -m bench`: the chat server beside the tutorial's grpcio service; a table on stdout."""

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from bench import report, runner
from bench.machine import Machine
from bench.progress import ProgressLine
from bench.runner import Record, Sizes

QUICK = Sizes(
    messages=2_000,
    unary=500,
    unary_concurrent=2_000,
    deliveries=2_000,
    listeners=(10,),
    idle=100,
    crowd=20,
    crowd_seconds=1.0,
    rounds=1,
)


def listener_counts(text: str) -> tuple[int, ...]:
    """`10,50,500` as listener counts."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers like 10,50") from None


def parse(argv: Sequence[str] | None) -> tuple[Sizes, Path | None]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--messages", type=int, help="bidi messages (and history read)")
    parser.add_argument("--rounds", type=int, help="rounds; the table shows medians")
    parser.add_argument(
        "--listeners", type=listener_counts, help="fan-out listener counts, e.g. 10,50,500"
    )
    parser.add_argument("--deliveries", type=int, help="fan-out deliveries per listener count")
    parser.add_argument("--idle", type=int, help="idle streams held open")
    parser.add_argument("--crowd", type=int, help="listeners of the crowd (100 messages/s)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure here")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.messages is not None:
        sizes = dataclasses.replace(
            sizes,
            messages=args.messages,
            unary=max(1, args.messages // 4),
            unary_concurrent=args.messages,
            deliveries=args.messages,
        )
    for name in ("rounds", "listeners", "deliveries", "idle", "crowd"):
        if getattr(args, name) is not None:
            sizes = dataclasses.replace(sizes, **{name: getattr(args, name)})
    counts = (
        sizes.messages,
        sizes.deliveries,
        sizes.idle,
        sizes.crowd,
        sizes.rounds,
        *sizes.listeners,
    )
    if min(counts) < 1:
        parser.error("every size must be at least 1")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json: no folder {args.json.parent}")
    return sizes, args.json


def as_json(records: Sequence[Record], sizes: Sizes, machine: Machine) -> dict[str, object]:
    return {
        "machine": dataclasses.asdict(machine),
        "sizes": dataclasses.asdict(sizes),
        "samples": [
            {
                "round": r.round,
                "target": r.target,
                "workload": r.workload,
                **dataclasses.asdict(r.sample),
                "cpu_us_per_message": report.cpu_us(r.sample),
                "per_second": report.per_second(r.sample),
            }
            for r in records
        ],
        "comparisons": [
            {**dataclasses.asdict(row), "ratio": row.ratio, "met": row.met}
            for row in report.comparisons(records)
        ],
        "fanout": [
            {**dataclasses.asdict(fan), "of_grpcio": fan.of_broadcast, "x_floor": fan.of_floor}
            for fan in report.fanouts(records, sizes)
        ],
        "signed": [
            {**dataclasses.asdict(row), "extra": row.extra} for row in report.signed_costs(records)
        ],
        "crowd": [dataclasses.asdict(row) for row in report.crowds(records)],
        "idle_kib_per_stream": report.idle_kib_per_stream(records),
        "key_cost_us": report.key_cost_us(records),
    }


def main(argv: Sequence[str] | None = None) -> None:
    sizes, json_path = parse(argv)
    machine = Machine()
    progress = ProgressLine()
    try:
        records = uvloop.run(runner.run(sizes, progress))
    except (RuntimeError, OSError) as error:
        progress.clear()
        sys.exit(f"bench: {error}")
    print(report.table(records, sizes, machine))
    if json_path is not None:
        json_path.write_text(json.dumps(as_json(records, sizes, machine), indent=2) + "\n")


if __name__ == "__main__":
    main()
