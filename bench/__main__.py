"""`python -m bench`: the chat server beside the tutorial's grpcio service; a table on stdout.
`python -m bench --scale`: replicas behind one Redis instead (bench/scale.py).
`python -m bench --pages`: GetHistory pages in a large room on SQLite (bench/pages.py)."""

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from bench import pages, report, runner, scale
from bench.machine import Machine
from bench.progress import ProgressLine
from bench.runner import Record, Sizes

SCALE_MESSAGES = 20_000
"""Messages per replica count in a --scale run (--quick: a tenth)."""
PAGES_MESSAGES = 1_000_000
"""Messages in the room of a --pages run (--quick: a tenth)."""
PAGES_READ = 200
"""Pages a --pages run reads back: 100,000 messages."""
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


def parse(argv: Sequence[str] | None) -> tuple[Sizes, Path | None, int, int]:
    """The sizes, the JSON file, the messages of a --scale run (0: no --scale), and those of
    a --pages run (0: no --pages)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="instead: one and two replicas behind one Redis (messages/s, deliveries/s, "
        "Redis CPU and presence round trips per message)",
    )
    parser.add_argument(
        "--pages",
        action="store_true",
        help="instead: GetHistory pages of 500 read back from a room of a million messages "
        "on SQLite (server CPU and wall time a page)",
    )
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
    scale_messages = 0
    if args.scale:
        scale_messages = args.messages or (SCALE_MESSAGES // 10 if args.quick else SCALE_MESSAGES)
    pages_messages = 0
    if args.pages:
        pages_messages = args.messages or (PAGES_MESSAGES // 10 if args.quick else PAGES_MESSAGES)
    return sizes, args.json, scale_messages, pages_messages


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
    sizes, json_path, scale_messages, pages_messages = parse(argv)
    machine = Machine()
    if pages_messages:
        print(f"{machine.line()}\n{pages.main(pages_messages, PAGES_READ)}")
        return
    if scale_messages:
        run_scale(scale_messages, machine, json_path)
        return
    progress = ProgressLine()
    try:
        records = uvloop.run(runner.run(sizes, progress))
    except (RuntimeError, OSError) as error:
        progress.clear()
        sys.exit(f"bench: {error}")
    print(report.table(records, sizes, machine))
    if json_path is not None:
        json_path.write_text(json.dumps(as_json(records, sizes, machine), indent=2) + "\n")


def run_scale(messages: int, machine: Machine, json_path: Path | None) -> None:
    try:
        samples = uvloop.run(scale.run(messages))
    except (RuntimeError, OSError, TimeoutError) as error:
        sys.exit(f"bench --scale: {error}")
    print(f"{machine.line()}\n{scale.table(samples)}")
    if json_path is not None:
        figures = [
            {
                **dataclasses.asdict(sample),
                "messages_per_s": sample.messages_per_s,
                "deliveries_per_s": sample.deliveries_per_s,
                "redis_cpu_us_per_message": sample.redis_cpu_us_per_message,
                "redis_commands_per_message": sample.redis_commands_per_message,
                "presence_updates_per_message": sample.presence_updates_per_message,
            }
            for sample in samples
        ]
        document = {"machine": dataclasses.asdict(machine), "scale": figures}
        json_path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
