"""grpc.health.v1.Health over TCP: SERVING while the store answers, NOT_SERVING when it does not
and while the server stops; never behind the token."""

import asyncio
import resource
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import cast

import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from chat.client import split_address
from chat.contract import Kind
from gen.grpc.chat import ChatServiceStub, MessageReply, MessagesRequest, StatsRequest
from harness import Chatter, RedisProcess, ServerProcess, redis_cli, run_client

Start = Callable[..., ServerProcess]
SERVING, NOT_SERVING = HealthCheckResponse.SERVING, HealthCheckResponse.NOT_SERVING
WAIT = 15.0


async def check(server: ServerProcess, service: str = "") -> int:
    channel = Channel(*split_address(server.address))
    try:
        reply = await HealthStub(channel).Check(HealthCheckRequest(service=service), timeout=10)
        return reply.status
    finally:
        channel.close()


@pytest.mark.parametrize("service", ["", "grpc.chat.ChatService"], ids=["server", "chat"])
async def test_a_running_server_is_serving_even_to_a_caller_without_the_token(
    server_process: Start, service: str
) -> None:
    server = server_process("memory://", "--token", "s3cret")
    assert await check(server, service) == SERVING


async def test_an_unknown_service_is_not_found(server_process: Start) -> None:
    with pytest.raises(GRPCError) as error:
        await check(server_process(), "no.such.Service")
    assert error.value.status is Status.NOT_FOUND


@asynccontextmanager
async def watch(channel: Channel) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """Watches the server's health; yields a function that waits for the next status."""
    async with HealthStub(channel).Watch.open(timeout=60) as stream:
        await stream.send_message(HealthCheckRequest(service=""), end=True)

        async def next_status() -> int:
            async with asyncio.timeout(WAIT):
                reply = await stream.recv_message()
            assert reply is not None
            return reply.status

        yield next_status
        await stream.cancel()


async def test_watchers_see_not_serving_while_redis_is_down_and_serving_once_it_is_back(
    server_process: Start,
    redis_server: RedisProcess,
    channel_to: Callable[..., Channel],
) -> None:
    server = server_process(redis_server.url)
    async with watch(channel_to(server)) as next_status:
        assert await next_status() == SERVING
        redis_server.stop()
        assert await next_status() == NOT_SERVING
        assert await check(server) == NOT_SERVING
        redis_server.start()
        assert await next_status() == SERVING


async def test_a_stopping_server_is_not_serving_while_it_drains(
    server_process: Start, channel_to: Callable[..., Channel]
) -> None:
    server = server_process("memory://", "--drain-seconds", "30")
    channel = channel_to(server)
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel)
        for _ in range(20):  # more than a 64 KiB window holds
            await chatter.say("x" * 8000)
    # A reader that takes one message and no more keeps its call open: the server drains.
    small_window = Configuration(http2_connection_window_size=65535, http2_stream_window_size=65535)
    stub = ChatServiceStub(channel_to(server, small_window))
    reader = cast(AsyncGenerator[MessageReply, None], stub.get_messages(MessagesRequest()))
    assert (await anext(reader)).message == "x" * 8000
    async with watch(channel) as next_status:
        assert await next_status() == SERVING
        server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert await next_status() == NOT_SERVING
    assert await check(server) == NOT_SERVING  # a new caller too, while the reader is open
    await reader.aclose()
    assert await asyncio.to_thread(server.proc.wait, 15) == 0  # type: ignore[union-attr]


async def _post_until_refused(channel: Channel) -> None:
    """Posts 8 KB texts until the server ends the stream with UNAVAILABLE."""
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel)
        with pytest.raises(GRPCError) as error:
            for _ in range(1000):
                await chatter.send("x" * 8000)
                await chatter.recv_kind(Kind.ACK)
    assert error.value.status is Status.UNAVAILABLE


async def test_a_store_that_cannot_write_is_not_serving_until_a_write_succeeds(
    server_process: Start, channel_to: Callable[..., Channel], tmp_path: Path
) -> None:
    """SQLite's files may grow no more (a file size limit, as on a full disk): the first failed
    write makes the server NOT_SERVING, with one WARNING however many fail; the first write
    that succeeds once they may grow makes it SERVING, with one INFO line."""
    server = server_process(f"sqlite:///{tmp_path / 'chat.db'}")
    assert server.proc is not None
    channel = channel_to(server)
    async with watch(channel) as next_status:
        assert await next_status() == SERVING
        files = [tmp_path / "chat.db", tmp_path / "chat.db-wal", server.log_path]
        room = max(path.stat().st_size for path in files if path.exists()) + 64 * 1024
        limits = resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (room, limits[1]))
        for _ in range(3):
            await _post_until_refused(channel)
        assert await next_status() == NOT_SERVING
        assert await check(server) == NOT_SERVING
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, limits)
        async with AsyncExitStack() as stack:
            await (await Chatter.open(stack, channel)).say("the disk has room again")
        assert await next_status() == SERVING
    server.stop()
    log = server.log()
    assert log.count("store writes fail") == 1, log
    assert log.count("store writes succeed again") == 1, log


async def test_while_redis_refuses_writes_stats_answer_at_once_and_messages_get_unavailable(
    server_process: Start, channel_to: Callable[..., Channel], redis_server: RedisProcess
) -> None:
    """Redis out of memory (noeviction) refuses the presence writes a new stream makes: reads
    of presence do not wait for writes that cannot happen, so GetStats answers well within its
    second, while a message gets UNAVAILABLE."""
    server = server_process(redis_server.url, "--presence-interval", "3")
    channel = channel_to(server)
    stub = ChatServiceStub(channel)
    assert (await stub.get_stats(StatsRequest(), timeout=WAIT)).num_messages == 0
    redis_cli(redis_server.port, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    redis_cli(redis_server.port, "CONFIG", "SET", "maxmemory", "1")
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, user="ann")  # a presence write refused
        with pytest.raises(GRPCError) as error:
            await chatter.say("not stored")
        assert error.value.status is Status.UNAVAILABLE
        for _ in range(3):
            started = time.monotonic()
            await stub.get_stats(StatsRequest(), timeout=WAIT)
            assert time.monotonic() - started < 1.0
    piped = await asyncio.to_thread(
        run_client, ["--server", server.address, "chat"], "not stored either\n"
    )
    assert piped.returncode == 1
    assert "the server cannot store messages now" in piped.stderr, piped.stderr
    assert "cannot reach" not in piped.stderr, piped.stderr
