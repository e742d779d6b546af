"""One soak run: start the servers, let the clients chat through the faults, then check.

Every client connects before anyone sends, so each one's record must hold the whole history of
its room. After the last fault and some more traffic the servers' memory is sampled (warm-up);
at the end it is sampled again, once every client has left. Then the log is read whole, and
every message's state from every server, after all the restarts.
"""

import asyncio
import math
import random
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from soak import check
from soak.clients import ACK_SECONDS, Behaviour, SoakClient
from soak.faults import Faults, Restartable, replica_and_redis_kills, server_kills
from soak.ledger import Ledger
from soak.presence import PRESENCE_FLAGS, PresenceWatch, nobody_online
from soak.processes import RedisProcess, ServerProcess, StartError
from soak.servers import Servers
from soak.tally import Tally

SETTLE_SECONDS = 15.0
"""How long servers may take to notice that every client has gone."""
SERVER_FLAGS = ("--rate-limit", "0")
"""Flood control off: each client sends its next message as soon as the last one is ACKed,
faster than the default limit lets one user post."""


class SoakError(Exception):
    """The run could not be carried out (a missing tool, a server that would not start)."""


class Redis(Restartable, Protocol):
    url: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The size and shape of a run; the defaults are the full soak."""

    store: str = "sqlite"  # or "redis": two replicas on one redis-server; or "memory"
    clients: int = 100
    rooms: int = 10
    messages: int = 1000
    seed: int = 1
    hang_up_rate: float = 0.004
    action_rate: float = 0.1  # of the requests sent: edits, reactions and deletes
    kills: int = 2  # SQLite and memory: how often the server is killed and restarted
    rss_limit_mib: float = 8.0
    timeout: float = 3600.0


@dataclass
class Report:
    """What a run did and what the checks found."""

    plan: Plan
    results: list[check.Result] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    hang_ups: int = 0
    actions: Counter[str] = field(default_factory=Counter)  # ACKed, by verb: edit, react, ...

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(result.ok for result in self.results)

    def summary(self) -> str:
        p = self.plan
        lines = [
            f"soak: {p.store}, {p.clients} clients in {p.rooms} rooms, {p.messages:,} requests "
            f"each ({p.action_rate:.0%} actions), seed {p.seed}",
            *(f"  {fact}" for fact in self.facts),
            *(f"  {'PASS' if r.ok else 'FAIL'}  {r.name}: {r.detail}" for r in self.results),
            f"soak: {'passed' if self.ok else 'FAILED'}",
        ]
        return "\n".join(lines)


async def run(
    plan: Plan,
    workdir: Path,
    redis: Redis | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Runs the plan in `workdir` (databases, logs); `redis` is used instead of starting one."""
    report = Report(plan)
    own_redis: RedisProcess | None = None
    if plan.store == "redis" and redis is None:
        if shutil.which("redis-server") is None:
            raise SoakError("redis-server is not installed (apt-get install redis-server)")
        redis = own_redis = RedisProcess(workdir)
        try:
            await own_redis.start()
        except StartError as error:
            raise SoakError(str(error)) from error
    servers, faults, watch = _servers_and_faults(plan, workdir, redis)
    try:
        for server in servers.processes.values():
            await server.start()
        async with asyncio.timeout(plan.timeout):
            await _chat(plan, servers, faults, report, progress, watch)
        logs = {name: server.log() for name, server in servers.processes.items()}
        codes = {name: await s.stop(signal.SIGTERM) for name, s in servers.processes.items()}
        report.results.append(check.logs_clean(logs))
        report.results.append(
            check.Result(
                "servers exit 0 on SIGTERM",
                not any(codes.values()),
                ", ".join(f"{name} {code}" for name, code in codes.items()),
            )
        )
    except TimeoutError:
        report.results.append(check.Result("the run finished", False, "timed out"))
    except StartError as error:
        raise SoakError(str(error)) from error
    finally:
        for server in servers.processes.values():
            await server.stop(signal.SIGKILL)
        if own_redis is not None:
            await own_redis.stop(signal.SIGKILL)
    return report


def _servers_and_faults(
    plan: Plan, workdir: Path, redis: Redis | None
) -> tuple[Servers, Faults, PresenceWatch | None]:
    """The servers, their faults, and (Redis) the watch on presence after a replica's kill."""
    if plan.store in ("sqlite", "memory"):
        store = f"sqlite:///{workdir / 'soak.db'}" if plan.store == "sqlite" else "memory://"
        server = ServerProcess("server", store, workdir / "server.log", *SERVER_FLAGS)
        return Servers({"server": server}), server_kills(server, plan.kills), None
    if plan.store == "redis" and redis is not None:
        flags = (*SERVER_FLAGS, *PRESENCE_FLAGS)
        a = ServerProcess("replica-a", redis.url, workdir / "replica-a.log", *flags)
        b = ServerProcess("replica-b", redis.url, workdir / "replica-b.log", *flags)
        watch = PresenceWatch(survivor=b)
        faults = replica_and_redis_kills(a, redis, watch.killed)
        return Servers({"replica-a": a, "replica-b": b}), faults, watch
    raise SoakError(f"unknown store {plan.store!r}: sqlite or redis")


async def _chat(
    plan: Plan,
    servers: Servers,
    faults: Faults,
    report: Report,
    progress: Callable[[str], None] | None,
    watch: PresenceWatch | None = None,
) -> None:
    """Connects every client, lets them send through the faults, lets them leave, checks."""
    tally = Tally()
    rng = random.Random(plan.seed)
    addresses = [server.address for server in servers.processes.values()]
    behaviour = Behaviour(plan.messages, plan.hang_up_rate, plan.action_rate)
    go = asyncio.get_running_loop().create_future()
    clients = [
        SoakClient(
            Ledger(user=f"u{n:03}", room=f"room{n % plan.rooms}"),
            addresses[n % len(addresses) :] + addresses[: n % len(addresses)],
            behaviour,
            random.Random(rng.random()),
            tally,
            go,
        )
        for n in range(plan.clients)
    ]
    if watch is not None:
        watch.clients = clients
    tasks = [asyncio.create_task(client.run()) for client in clients]
    counts = await servers.wait_connected(plan.clients, ACK_SECONDS)
    if set(counts.values()) != {plan.clients}:
        raise SoakError(f"only {min(counts.values())} of {plan.clients} clients connected")
    go.set_result(None)
    started = time.monotonic()
    planned = plan.clients * plan.messages
    injecting = asyncio.create_task(faults.inject(tally, planned))
    reporting = asyncio.create_task(_report_progress(tally, planned, faults, progress))
    try:
        warm_at = math.ceil(min(faults.last_at + 0.1, 0.95) * planned)
        sampling = asyncio.create_task(_sample_after(tally, warm_at, servers))
        await asyncio.gather(
            *(_sent_or_ended(client, task) for client, task in zip(clients, tasks, strict=True))
        )
        seconds = time.monotonic() - started
        tally.end()
        await injecting  # a fault under way completes; one not due yet never fires
        warm = await sampling
        for client in clients:
            client.finish_at(await servers.last_id(client.ledger.room))
        await asyncio.gather(*tasks)
    finally:
        for task in (injecting, reporting, *tasks):
            task.cancel()
    connected = await servers.wait_connected(0, SETTLE_SECONDS)
    end = servers.rss()
    log = await servers.log()
    history, folded = check.messages(log), check.fold(log)
    views = await servers.states(sorted({client.ledger.room for client in clients}))
    ledgers = [client.ledger for client in clients]
    report.faults, report.hang_ups = faults.done, tally.hang_ups
    for ledger in ledgers:
        report.actions.update(ledger.actions)
    report.facts += _facts(ledgers, report.actions, tally, faults, seconds)
    histories = 1 + (len(faults.done) if plan.store == "memory" else 0)
    report.results += [
        check.Result(
            "every fault fired",
            len(faults.done) == len(faults.schedule),
            f"{len(faults.done)} of {len(faults.schedule)}",
        ),
        check.acked_are_stored(ledgers, history),
        check.sent_are_stored_once(ledgers, history),
        check.epochs_changed_with_the_history(ledgers, histories),
        check.listeners_saw_their_rooms(ledgers, history),
        check.states_agree(folded, views),
        check.clients_expectations_hold(ledgers, folded),
        check.clients_behaved(ledgers),
        check.memory_is_flat({name: (warm[name], end[name]) for name in end}, plan.rss_limit_mib),
        check.streams_closed(connected),
    ]
    if watch is not None:
        report.results += [await watch.result(), await nobody_online(servers.processes)]


async def _sent_or_ended(client: SoakClient, task: "asyncio.Task[None]") -> None:
    sent = asyncio.create_task(client.sent_all.wait())
    await asyncio.wait({sent, task}, return_when=asyncio.FIRST_COMPLETED)
    sent.cancel()


async def _sample_after(tally: Tally, acked: int, servers: Servers) -> dict[str, int]:
    """The servers' RSS after `acked` ACKs (or at the end of sending, if it came first)."""
    await tally.reach(acked)
    return servers.rss()


async def _report_progress(
    tally: Tally, planned: int, faults: Faults, progress: Callable[[str], None] | None
) -> None:
    if progress is None:
        return
    started = time.monotonic()
    while True:
        await asyncio.sleep(1.0)  # one progress line a second
        elapsed = time.monotonic() - started
        progress(
            f"{tally.acked / planned:4.0%} {tally.acked:,}/{planned:,} ACKed "
            f"{tally.acked / elapsed:,.0f}/s, {tally.deliveries:,} delivered, "
            f"{tally.hang_ups} hang-ups, {tally.failures} broken streams, "
            f"faults {len(faults.done)}/{len(faults.schedule)}, {elapsed:.0f}s"
        )


def _facts(
    ledgers: list[Ledger],
    actions: Counter[str],
    tally: Tally,
    faults: Faults,
    seconds: float,
) -> list[str]:
    reasons = Counter(
        connection.ended.split(":")[0]
        for ledger in ledgers
        for connection in ledger.connections
        if connection.ended not in ("done", "") and not connection.ended.startswith("hung up")
    )
    return [
        f"took {seconds:.1f}s: {tally.acked:,} requests ACKed ({tally.acked / seconds:,.0f}/s), "
        f"{tally.deliveries:,} delivered to listeners",
        _actions(actions, sum(ledger.dropped for ledger in ledgers)),
        f"{sum(ledger.resent for ledger in ledgers)} requests sent again after a broken stream, "
        f"{sum(ledger.repeats for ledger in ledgers)} of them stored already (a repeat ACK)",
        f"{tally.hang_ups} random hang-ups; {tally.failures} streams broken by faults: "
        + (", ".join(f"{n} {reason}" for reason, n in reasons.most_common()) or "none"),
        "faults: " + ("; ".join(faults.done) or "none"),
    ]


def _actions(acked: Counter[str], dropped: int) -> str:
    """How many actions of each kind were ACKed, and dropped with a replaced history."""
    return (
        f"actions ACKed: {acked['edit']:,} edits, {acked['react']:,} reactions put on, "
        f"{acked['unreact']:,} taken off, {acked['delete']:,} deletes; {dropped} unACKed "
        "actions dropped with a replaced history"
    )
