"""`python -m bench --scale`: replicas behind one Redis, how many messages and deliveries a
second, what each message costs Redis's own CPU, and how many presence round trips it makes.

For one and then two replicas (fast path, `--store redis://`, on a redis-server of its own,
kept durable as the README advises): listeners and writers in one room, spread evenly over the
replicas; every writer sends its share as fast as flow control lets it and reads its replies.
The clock runs from the first send to the last delivery. A delivery is a CHAT or ACK any stream
received. Redis's CPU is `used_cpu_sys + used_cpu_user` from `INFO cpu`, before and after;
presence round trips come from each server's `chat_presence_updates` metric.
"""

import asyncio
import tempfile
import time
import urllib.request
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from grpclib.client import Channel

from chat.client import split_address
from gen.grpc.chat import ChatServiceStub, MessageReplyKind, StatsRequest
from harness import Chatter, RedisProcess, ServerProcess, free_port, path_flags

LISTENERS = 10
"""Listening streams per replica."""
WRITERS = 2
"""Writing streams per replica."""
ROOM = "scale"
REPLY_KINDS = (MessageReplyKind.CHAT, MessageReplyKind.ACK)


@dataclass(frozen=True)
class ScaleSample:
    """One run: `replicas` servers on one Redis, `messages` sent."""

    replicas: int
    messages: int
    deliveries: int
    wall_s: float
    redis_cpu_s: float
    redis_commands: int
    presence_updates: int

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.wall_s

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.wall_s

    @property
    def redis_cpu_us_per_message(self) -> float:
        return self.redis_cpu_s / self.messages * 1e6

    @property
    def redis_commands_per_message(self) -> float:
        return self.redis_commands / self.messages

    @property
    def presence_updates_per_message(self) -> float:
        return self.presence_updates / self.messages


def redis_cpu_s(redis: RedisProcess) -> float:
    cpu = redis.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def redis_commands(redis: RedisProcess) -> int:
    return int(redis.info("stats")["total_commands_processed"])


def presence_updates(metrics_port: int) -> int:
    """The server's `chat_presence_updates_total` from its /metrics."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("chat_presence_updates_total "):
                return int(float(line.split()[1]))
    raise RuntimeError(f"{url} shows no chat_presence_updates_total")


RUN_TIMEOUT = 600.0
"""A stuck run fails instead of hanging."""
FLAGS = ("--rate-limit", "0", "--queue-size", "1000000")
"""Flood control off, and room for every listener's backlog: the writers send as fast as they
can, and the load generator's listeners, one process for all, read slower than the replicas
write, so the default queue of 1,000 would cut them off (a throughput run, not a test of the
slow-consumer cut-off)."""


async def _drain(chatter: Chatter, expected: int) -> int:
    """Reads replies until `expected` CHATs and ACKs came; returns how many."""
    count = 0
    while count < expected:
        # No per-reply clock (the run has one): the load generator, one process for every
        # stream, is the slower side, and a stream may wait seconds while it decodes the
        # others' bursts.
        reply = await chatter.stream.recv_message()
        if reply is None:
            raise RuntimeError("a stream ended before every message reached it")
        if reply.kind in REPLY_KINDS:
            count += 1
    return count


async def _write(chatter: Chatter, messages: int) -> None:
    for number in range(messages):
        await chatter.send(str(number))


async def run_once(replicas: int, messages: int, workdir: Path) -> ScaleSample:
    """`messages` (rounded down to a multiple of the writers) through `replicas` servers."""
    redis = RedisProcess(workdir).start()
    servers: list[ServerProcess] = []
    ports = [free_port() for _ in range(replicas)]
    try:
        for number, metrics_port in enumerate(ports):
            flags = (*path_flags("fast"), *FLAGS, "--metrics-port", str(metrics_port))
            log = workdir / f"server-{number}.log"
            servers.append(ServerProcess(log, redis.url, *flags).start())
        writers_total = WRITERS * replicas
        share = messages // writers_total
        total = share * writers_total
        async with AsyncExitStack() as stack:
            listeners: list[Chatter] = []
            writers: list[Chatter] = []
            for server in servers:
                channel = Channel(*split_address(server.address))
                stack.callback(channel.close)
                for number in range(LISTENERS):
                    listeners.append(
                        await Chatter.open(stack, channel, user=f"l{number}", room=ROOM)
                    )
                for number in range(WRITERS):
                    writers.append(await Chatter.open(stack, channel, user=f"w{number}", room=ROOM))
            await _settled(servers, len(listeners) + len(writers))
            cpu, commands = redis_cpu_s(redis), redis_commands(redis)
            updates = sum(presence_updates(port) for port in ports)
            started = time.perf_counter()
            async with asyncio.timeout(RUN_TIMEOUT):
                counts = await asyncio.gather(
                    *(_write(writer, share) for writer in writers),
                    *(_drain(chatter, total) for chatter in (*listeners, *writers)),
                )
            wall = time.perf_counter() - started
            if failed := [s for s in servers if s.proc and s.proc.poll() is not None]:
                raise RuntimeError(f"a server exited: {failed[0].log()[-500:]}")
            return ScaleSample(
                replicas=replicas,
                messages=total,
                deliveries=sum(count for count in counts if count),
                wall_s=wall,
                redis_cpu_s=redis_cpu_s(redis) - cpu,
                redis_commands=redis_commands(redis) - commands,
                presence_updates=sum(presence_updates(port) for port in ports) - updates,
            )
    finally:
        for server in servers:
            server.stop()
        redis.stop()


async def _settled(servers: list[ServerProcess], streams: int) -> None:
    """Returns once every server counts every stream (presence is written in the background):
    the measured part then carries no presence of its own making."""
    for server in servers:
        channel = Channel(*split_address(server.address))
        try:
            stub = ChatServiceStub(channel)
            async with asyncio.timeout(30):
                while (await stub.get_stats(StatsRequest(room=ROOM))).num_connected < streams:
                    pass  # each round trip gives the server time
        finally:
            channel.close()


async def run(messages: int) -> list[ScaleSample]:
    with tempfile.TemporaryDirectory(prefix="chat-scale-") as folder:
        samples = []
        for replicas in (1, 2):
            workdir = Path(folder) / f"replicas-{replicas}"
            workdir.mkdir()
            samples.append(await run_once(replicas, messages, workdir))
        return samples


def table(samples: list[ScaleSample]) -> str:
    head = (
        f"{'replicas':>8}  {'messages':>8}  {'msg/s':>8}  {'deliveries/s':>12}  "
        f"{'Redis CPU us/msg':>16}  {'Redis cmds/msg':>14}  {'presence/msg':>12}"
    )
    rows = [
        f"{s.replicas:>8}  {s.messages:>8}  {s.messages_per_s:>8.0f}  {s.deliveries_per_s:>12.0f}"
        f"  {s.redis_cpu_us_per_message:>16.1f}  {s.redis_commands_per_message:>14.2f}"
        f"  {s.presence_updates_per_message:>12.3f}"
        for s in samples
    ]
    listeners = f"{LISTENERS} listeners and {WRITERS} writers per replica, one room, one Redis"
    return "\n".join(["Scale: " + listeners, head, *rows])
