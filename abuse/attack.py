"""`python -m abuse.attack NAME HOST PORT PID WORKDIR SECONDS WEB_PORT [prepare]`: one registered
attack (or, with `prepare`, what it gives the server first), in a process of its own, so the
attacker's work never slows the probes that judge the server."""

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from abuse.harness import Target, registered


def main(argv: Sequence[str] | None = None) -> None:
    name, host, port, pid, workdir, seconds, web_port, *phase = (
        sys.argv[1:] if argv is None else argv
    )
    attack = {attack.name: attack for attack in registered()}[name]
    target = Target(host, int(port), int(pid), Path(workdir), web_port=int(web_port))
    run = attack.prepare if phase == ["prepare"] else attack.run
    assert run is not None, f"{name} has nothing to prepare"
    asyncio.run(run(target, float(seconds)))


if __name__ == "__main__":
    main()
