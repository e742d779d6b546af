"""What an attack is, and how one runs against a real server process.

An attack is a named coroutine that misbehaves against a `Target` for a number of seconds. Each
module of `abuse.attacks` exports its attacks as `ATTACKS`; `registered()` finds them all, so
a new module adds attacks without changing this one. `run_attack` starts a fresh server with
the attack's store and flags, measures it idle, runs the attack beside the probes, lets the
server settle, and returns the figures that `Figures.failures` judges.
"""

import asyncio
import importlib
import pkgutil
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import ROOT, RedisProcess, ServerProcess

STOP_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Target:
    """The server under attack."""

    host: str
    port: int
    pid: int
    workdir: Path
    """A scratch folder of this attack's own (its store's files live here too)."""
    token: str = ""
    """The server's shared token, which the probes send (the attack's `token`)."""
    web_port: int = 0
    """The server's web door, when the attack asked for one (0: none)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


AttackRun = Callable[[Target, float], Coroutine[Any, Any, None]]
"""`run(target, seconds)`: misbehaves for about `seconds`, then returns (closing what it
opened). Exceptions from the server's refusals (connection reset, GOAWAY) are the attack's to
swallow: only a bug in the attack itself should escape."""


@dataclass(frozen=True, slots=True)
class Attack:
    """One misbehaviour, and the server it is aimed at."""

    name: str
    """Short and unique across modules: `rapid-reset`, `ping-flood`, ..."""
    run: AttackRun
    about: str = ""
    """One line for the report: what the attacker does."""
    store: str = "memory://"
    """The server's `--store`; `{workdir}` is replaced by the attack's scratch folder, and
    `{redis}` by the address of a redis-server started for the attack."""
    flags: tuple[str, ...] = ()
    """More server flags (the harness always adds `--rate-limit 0`, and `--web-port 0` unless
    the attack wants the web door)."""
    web: bool = False
    """Whether the server serves its web door too, on a free port (the target's `web_port`)."""
    prepare: AttackRun | None = None
    """What the server is given before it is measured idle (a long history to ask for, say):
    run as the attack is, for its short time; what the server then holds is its idle."""
    short_seconds: float = 1.0
    """How long it runs in `--short` form."""
    short_rss_settle: float | None = None
    """The short form's mark for memory back near idle, when the attack is held to a tighter
    one than the suite's (its memory has to come back within the short settling too)."""
    seconds: float = 30.0
    """How long it runs in the full form."""
    token: str = ""
    """The shared token the probes send, for an attack on a server started with `--token`."""


def registered() -> list[Attack]:
    """Every attack of every module in `abuse.attacks`, in module then list order."""
    import abuse.attacks

    attacks: list[Attack] = []
    for module in sorted(pkgutil.iter_modules(abuse.attacks.__path__), key=lambda m: m.name):
        loaded = importlib.import_module(f"abuse.attacks.{module.name}")
        attacks.extend(getattr(loaded, "ATTACKS", ()))
    names = [attack.name for attack in attacks]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"attacks named twice: {sorted(duplicates)}")
    return attacks


@dataclass(slots=True)
class Figures:
    """What the probes saw during one attack."""

    name: str
    probes: int = 0
    probes_answered: int = 0
    """GetStats calls answered OK within their 1 s deadline."""
    delivery_ms: list[float] = field(default_factory=list)
    """Live delivery latency in the watcher's room: send to receipt by another stream."""
    deliveries_missed: int = 0
    """Watcher messages that did not arrive within the deadline."""
    rss_idle_kib: int = 0
    rss_peak_kib: int = 0
    rss_after_kib: int = 0
    acked: int = 0
    lost: int = 0
    """ACKed messages missing from the history after the attack."""
    ledger_failure: str = ""
    """Why the history could not be read back after the attack, if it could not."""
    send_failure: str = ""
    """Why the watcher's sender stopped early (no ACK in time, its stream ended), if it did."""
    seconds: float = 0.0

    @property
    def answered(self) -> float:
        return self.probes_answered / self.probes if self.probes else 0.0

    @property
    def delivery_p99_ms(self) -> float:
        if not self.delivery_ms:
            return float("inf")
        ordered = sorted(self.delivery_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def failures(self, limits: "Limits") -> list[str]:
        """Each check this attack failed, in words; empty when it passed."""
        failed = []
        if self.answered < limits.answered:
            failed.append(f"GetStats answered {self.probes_answered}/{self.probes} within 1 s")
        if self.delivery_p99_ms >= limits.delivery_p99_ms or self.deliveries_missed:
            failed.append(
                f"delivery p99 {self.delivery_p99_ms:.0f} ms, {self.deliveries_missed} missed"
            )
        growth = (self.rss_peak_kib - self.rss_idle_kib) / 1024
        if growth > limits.rss_growth_mib:
            failed.append(f"RSS grew {growth:.0f} MiB over idle")
        if self.rss_after_kib > self.rss_idle_kib * (1 + limits.rss_settle):
            failed.append(
                f"RSS {self.rss_after_kib // 1024} MiB after, idle {self.rss_idle_kib // 1024} MiB"
            )
        if self.send_failure:
            failed.append(f"the watcher's sender failed: {self.send_failure}")
        if self.ledger_failure:
            failed.append(f"the history could not be read: {self.ledger_failure}")
        if self.lost:
            failed.append(f"{self.lost} of {self.acked} ACKed messages lost")
        return failed


@dataclass(frozen=True, slots=True)
class Limits:
    """The pass marks."""

    answered: float = 0.99
    delivery_p99_ms: float = 1000.0
    rss_growth_mib: float = 256.0
    rss_settle: float = 0.10


async def run_attack(
    attack: Attack,
    seconds: float,
    workdir: Path,
    settle_seconds: float = 20.0,
    server_flags: tuple[str, ...] = (),
) -> Figures:
    """Starts a server for `attack` (`server_flags` added to its own), runs it with the probes
    for `seconds`, and measures; the server has `settle_seconds` afterwards to come back near
    its idle RSS."""
    from abuse.probes import Probes

    scratch = workdir / attack.name
    scratch.mkdir(parents=True, exist_ok=True)
    redis = RedisProcess(scratch, durable=False).start() if "{redis}" in attack.store else None
    store = attack.store.replace("{workdir}", str(scratch))
    if redis is not None:
        store = store.replace("{redis}", f"127.0.0.1:{redis.port}")
    server = ServerProcess(
        scratch / "server.log",
        store,
        "--rate-limit",
        "0",
        *attack.flags,
        *server_flags,
        web=attack.web,
    )
    await asyncio.to_thread(server.start)
    try:
        assert server.proc is not None
        target = Target(
            "127.0.0.1", server.port, server.proc.pid, scratch, attack.token, server.web_port
        )
        if attack.prepare is not None:
            await _in_a_process(attack, target, attack.short_seconds, prepare=True)
        probes = Probes(target, Figures(attack.name), settle_seconds)
        figures = await probes.measure(_in_a_process(attack, target, seconds))
        figures.seconds = seconds
        return figures
    finally:
        await asyncio.to_thread(_stop, server)
        if redis is not None:
            redis.stop()


async def _in_a_process(
    attack: Attack, target: Target, seconds: float, prepare: bool = False
) -> None:
    """Runs `attack` (or what prepares for it) in a child process (`abuse.attack`): its work
    never slows the probes."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "abuse.attack",
        attack.name,
        target.host,
        str(target.port),
        str(target.pid),
        str(target.workdir),
        str(seconds),
        str(target.web_port),
        *(["prepare"] if prepare else []),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(target.workdir / "attack.log").open("ab"),
    )
    code = await child.wait()
    if code:
        raise AttackError(f"{attack.name} failed with exit code {code}: see its attack.log")


class AttackError(Exception):
    """The attacker itself failed (a bug in the attack, not a finding about the server)."""


def _stop(server: ServerProcess) -> None:
    """SIGTERM, then SIGKILL when a swamped server does not stop in time."""
    try:
        server.stop(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        server.stop(signal.SIGKILL)
