"""`python -m abuse.attack NAME HOST PORT PID WORKDIR SECONDS WEB_PORT`: one registered attack, in a
process of its own, so the attacker's work never slows the probes that judge the server."""

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from abuse.harness import Target, registered


def main(argv: Sequence[str] | None = None) -> None:
    name, host, port, pid, workdir, seconds, web_port = sys.argv[1:] if argv is None else argv
    attack = {attack.name: attack for attack in registered()}[name]
    target = Target(host, int(port), int(pid), Path(workdir), web_port=int(web_port))
    asyncio.run(attack.run(target, float(seconds)))


if __name__ == "__main__":
    main()
