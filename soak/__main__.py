"""`python -m soak`: the soak run from the command line; exit code 1 when a check fails."""

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from soak.run import Plan, SoakError, run


def parser() -> argparse.ArgumentParser:
    d = Plan()
    p = argparse.ArgumentParser(
        prog="python -m soak",
        description="Many clients chat while servers (and Redis) are killed; then nothing may "
        "be missing, duplicated or out of order.",
    )
    p.add_argument("--store", choices=["sqlite", "redis", "memory"], default=d.store)
    p.add_argument("--clients", type=int, default=d.clients)
    p.add_argument("--rooms", type=int, default=d.rooms)
    p.add_argument("--messages", type=int, default=d.messages, help="requests each client sends")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--hang-up-rate", type=float, default=d.hang_up_rate, help="per request sent")
    p.add_argument(
        "--action-rate",
        type=float,
        default=d.action_rate,
        help="share of requests that are edits, reactions or deletes rather than messages",
    )
    p.add_argument("--kills", type=int, default=d.kills, help="server SIGKILLs (sqlite, memory)")
    p.add_argument("--rss-limit-mib", type=float, default=d.rss_limit_mib)
    p.add_argument("--timeout", type=float, default=d.timeout, help="seconds for the whole run")
    p.add_argument("--workdir", type=Path, help="keep the database and logs here")
    return p


def show_progress(line: str) -> None:
    if sys.stderr.isatty():
        print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.clients < args.rooms or args.rooms < 1 or args.messages < 1:
        sys.exit("soak: --clients must be at least --rooms, and both --rooms and --messages >= 1")
    if not 0 <= args.action_rate <= 1:
        sys.exit("soak: --action-rate must be between 0 and 1")
    plan = Plan(
        store=args.store,
        clients=args.clients,
        rooms=args.rooms,
        messages=args.messages,
        seed=args.seed,
        hang_up_rate=args.hang_up_rate,
        action_rate=args.action_rate,
        kills=args.kills,
        rss_limit_mib=args.rss_limit_mib,
        timeout=args.timeout,
    )
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            report = asyncio.run(run(plan, workdir, progress=show_progress))
        except SoakError as error:
            sys.exit(f"soak: {error}")
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(report.summary())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
