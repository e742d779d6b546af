"""`python -m abuse [--short] [--only NAME ...]`: every registered attack against a fresh server;
exit code 1 when one fails its checks."""

import argparse
import asyncio
import dataclasses
import json
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from abuse.harness import Attack, Figures, Limits, registered, run_attack

SHORT = Limits(rss_settle=0.25)
"""The short form's marks: its few seconds of settling leave more of a burst's pages with the
allocator than the full run's 20 s, so memory back within 25% of idle, not 10%; a leak (the
rapid reset's 1 GiB before its fix) still fails it."""


def limits(attack: Attack) -> Limits:
    """The short form's marks for `attack`: its own for memory back near idle, if it has one."""
    if attack.short_rss_settle is None:
        return SHORT
    return dataclasses.replace(SHORT, rss_settle=attack.short_rss_settle)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m abuse", description=__doc__)
    p.add_argument("--short", action="store_true", help="each attack for its short time")
    p.add_argument("--only", nargs="*", default=[], metavar="NAME", help="these attacks only")
    p.add_argument("--seconds", type=float, help="each attack for this long instead")
    p.add_argument("--workdir", type=Path, help="keep the servers' logs and stores here")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--list", action="store_true", help="name the attacks and stop")
    p.add_argument(
        "--server-flags",
        default="",
        metavar="FLAGS",
        help="more flags for every server, one string: '--http2 grpclib' tries the reference path",
    )
    return p


def line(figures: Figures, failed: list[str]) -> str:
    growth = (figures.rss_peak_kib - figures.rss_idle_kib) / 1024
    return (
        f"{figures.name:<20} {'FAIL' if failed else 'ok':<4} "
        f"probes {figures.probes_answered}/{figures.probes} "
        f"p99 {figures.delivery_p99_ms:.0f} ms "
        f"rss idle {figures.rss_idle_kib / 1024:.0f} MiB +{growth:.0f} "
        f"after {figures.rss_after_kib / 1024:.0f} MiB "
        f"lost {figures.lost}/{figures.acked}" + (f"  ({'; '.join(failed)})" if failed else "")
    )


async def run_all(args: argparse.Namespace, workdir: Path) -> bool:
    attacks = [a for a in registered() if not args.only or a.name in args.only]
    unknown = set(args.only) - {a.name for a in attacks}
    if unknown:
        sys.exit(f"abuse: no attack named {', '.join(sorted(unknown))}")
    passed, results = True, []
    for attack in attacks:
        seconds = args.seconds or (attack.short_seconds if args.short else attack.seconds)
        figures = await run_attack(
            attack,
            seconds,
            workdir,
            5.0 if args.short else 20.0,
            tuple(shlex.split(args.server_flags)),
        )
        failed = figures.failures(limits(attack) if args.short else Limits())
        passed = passed and not failed
        print(line(figures, failed), flush=True)
        results.append(
            {
                "name": attack.name,
                "seconds": seconds,
                "failed": failed,
                "answered": figures.answered,
                "delivery_p99_ms": figures.delivery_p99_ms,
                "rss_idle_kib": figures.rss_idle_kib,
                "rss_peak_kib": figures.rss_peak_kib,
                "rss_after_kib": figures.rss_after_kib,
                "acked": figures.acked,
                "lost": figures.lost,
            }
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return passed


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.list:
        for attack in registered():
            print(f"{attack.name:<20} {attack.about}")
        return
    with tempfile.TemporaryDirectory(prefix="abuse-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        if not asyncio.run(run_all(args, workdir)):
            sys.exit(1)


if __name__ == "__main__":
    main()
