"""Two server processes on one redis-server: one chat, one id sequence, and Redis outages."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.client import split_address
from chat.testing import Chatter, RedisProcess, ServerProcess, run_client
from gen.grpc.chat import ChatServiceStub, MessageReplyKind, StatsRequest

Start = Callable[..., ServerProcess]
DELIVERED = (MessageReplyKind.CHAT, MessageReplyKind.ACK)


@pytest.fixture
async def channels() -> AsyncIterator[Callable[[ServerProcess], Channel]]:
    """Opens client channels to server processes; closes them after the test."""
    opened: list[Channel] = []

    def connect(server: ServerProcess) -> Channel:
        opened.append(Channel(*split_address(server.address)))
        return opened[-1]

    yield connect
    for channel in opened:
        channel.close()


async def until_connected(channel: Channel, room: str, streams: int) -> None:
    """Returns once the server behind `channel` counts `streams` open streams in `room`: a
    stream opened is not yet joined until the server has taken it."""
    stub = ChatServiceStub(channel)
    while (await stub.get_stats(StatsRequest(room=room))).num_connected < streams:
        pass  # each round trip gives the server time to take the streams


async def delivered_ids(chatter: Chatter, count: int) -> list[int]:
    """The ids of the next `count` messages a stream gets, its own ACKs and others' CHATs."""
    ids: list[int] = []
    while len(ids) < count:
        reply = await chatter.recv()
        assert reply is not None and reply.kind != MessageReplyKind.ERROR, reply
        if reply.kind in DELIVERED:
            ids.append(reply.id)
    return ids


async def test_replicas_share_rooms_ids_and_live_delivery(
    server_process: Start, redis_server: RedisProcess, channels: Callable[[ServerProcess], Channel]
) -> None:
    first, second = server_process(redis_server.url), server_process(redis_server.url)
    per_writer = 100
    async with AsyncExitStack() as stack:
        writers = [
            await Chatter.open(stack, channels(first), user="ann", room="r"),
            await Chatter.open(stack, channels(second), user="bob", room="r"),
        ]
        listeners = [
            await Chatter.open(stack, channels(server), user="lis", room="r")
            for server in (first, second)
        ]
        for server in (first, second):  # every stream has joined before the first message
            await until_connected(channels(server), "r", 2)

        async def write(chatter: Chatter) -> None:
            for number in range(per_writer):
                await chatter.send(str(number))

        total = 2 * per_writer
        seen = await asyncio.gather(
            *(write(writer) for writer in writers),
            *(delivered_ids(chatter, total) for chatter in writers + listeners),
        )
    for ids in seen[2:]:
        # Every stream, on either replica, sees the one sequence in order: no gap, no repeat.
        assert ids == list(range(1, total + 1))
    stats = run_client(["--server", second.address, "stats", "--room", "r"])
    assert stats.stdout.splitlines()[0] == f"Room r has {total} messages"


async def test_a_redis_outage_ends_streams_refuses_messages_and_heals_by_itself(
    server_process: Start, redis_server: RedisProcess, channels: Callable[[ServerProcess], Channel]
) -> None:
    server = server_process(redis_server.url)
    channel = channels(server)
    async with AsyncExitStack() as stack:
        listener = await Chatter.open(stack, channel, user="lis")
        writer = await Chatter.open(stack, channel, user="ann")
        assert (await writer.say("before")).id == 1
        redis_server.stop()
        for chatter in (listener, writer):
            with pytest.raises(GRPCError) as ended:
                while await chatter.recv():
                    pass
            assert ended.value.status is Status.UNAVAILABLE
        late = await Chatter.open(stack, channel, user="ann")
        await late.send("while Redis is away")
        with pytest.raises(GRPCError) as refused:
            await late.recv_kind(MessageReplyKind.ACK)
        assert refused.value.status is Status.UNAVAILABLE
    redis_server.start()
    async with AsyncExitStack() as stack:
        again = await Chatter.open(stack, channel, user="ann")
        assert (await again.say("after")).id == 2
    history = run_client(["--server", server.address, "messages"])
    assert [line.split(": ", 1)[1] for line in history.stdout.splitlines()] == ["before", "after"]
