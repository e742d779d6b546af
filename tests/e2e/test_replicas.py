"""Two server processes on one redis-server (or one Redis Cluster): one chat, one id sequence,
one presence, and Redis outages."""

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat.client import split_address
from gen.grpc.chat import (
    ChatServiceStub,
    HistoryRequest,
    MessageReply,
    MessageReplyKind,
    MessageRequestAction,
    StatsReply,
    StatsRequest,
)
from harness import Chatter, RedisProcess, ServerProcess, run_client, seen_online

Start = Callable[..., ServerProcess]
DELIVERED = (MessageReplyKind.CHAT, MessageReplyKind.ACK)
JOIN, LEAVE = MessageReplyKind.JOIN, MessageReplyKind.LEAVE
PRESENCE = ("--presence-interval", "0.5", "--presence-timeout", "2")
"""Short presence beats, so a killed replica's users leave within seconds."""
BOUND = 2 + 0.5
"""Within this many seconds of a kill (timeout + interval, as PRESENCE sets them) the killed
replica's users leave; a loaded machine is given 10 s more."""


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
    """Returns once the server behind `channel` counts `streams` open streams in `room`, on
    every replica: a stream opened is not yet joined until its server has taken it."""
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


async def stats_until(
    channel: Channel, done: Callable[[StatsReply], bool], room: str = "r", seconds: float = 20
) -> StatsReply:
    """The room's stats once `done` holds for them; fails the test after `seconds`."""
    stub = ChatServiceStub(channel)
    async with asyncio.timeout(seconds):
        while not done(stats := await stub.get_stats(StatsRequest(room=room))):
            pass  # each round trip gives the other processes time
    return stats


async def presence_of(chatter: Chatter) -> MessageReply:
    """The next JOIN or LEAVE a stream gets (failing on ERROR, skipping the rest)."""
    while True:
        reply = await chatter.recv()
        assert reply is not None and reply.kind != MessageReplyKind.ERROR, reply
        if reply.kind in (JOIN, LEAVE):
            return reply


def seen(reply: MessageReply) -> tuple[int, str, str]:
    return reply.kind, reply.room, reply.user


async def test_replicas_share_rooms_ids_and_live_delivery(
    server_process: Start, redis_url: str, channels: Callable[[ServerProcess], Channel]
) -> None:
    first, second = server_process(redis_url), server_process(redis_url)
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
        await until_connected(channels(first), "r", 4)  # all joined before the first message

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


async def test_a_user_on_one_replica_is_online_and_connected_on_the_other(
    server_process: Start, redis_url: str, channels: Callable[[ServerProcess], Channel]
) -> None:
    first, second = server_process(redis_url), server_process(redis_url)
    async with AsyncExitStack() as stack:
        await Chatter.open(stack, channels(first), user="ann", room="r")
        await Chatter.open(stack, channels(second), user="bob", room="r")
        for server in (first, second):
            stats = await stats_until(channels(server), lambda s: s.num_connected == 2)
            assert stats.online == ["ann", "bob"]
        whole = await ChatServiceStub(channels(second)).get_stats(StatsRequest())
        assert (whole.online, whole.num_connected, whole.num_rooms) == (["ann", "bob"], 2, 1)
    for server in (first, second):  # closed streams leave every replica's figures
        stats = await stats_until(channels(server), lambda s: s.num_connected == 0)
        assert stats.online == []


async def test_twenty_pairs_entering_together_across_replicas_each_end_up_seeing_every_other(
    server_process: Start, redis_url: str, channels: Callable[[ServerProcess], Channel]
) -> None:
    """A stream's view (the snapshot its replica gives once the stream is in the room, then
    the JOINs and LEAVEs of every replica) misses no one."""
    servers = [server_process(redis_url), server_process(redis_url)]
    users = [f"u{n}" for n in range(40)]
    async with AsyncExitStack() as stack:

        async def enter(n: int) -> set[str]:
            channel = channels(servers[n % 2])
            chatter = await Chatter.open(stack, channel, user=users[n], room="lobby")
            return await seen_online(chatter, ChatServiceStub(channel), "lobby", set(users))

        views = await asyncio.gather(*(enter(n) for n in range(len(users))))
    assert all(view == set(users) for view in views)


async def test_one_join_and_one_leave_for_a_user_with_streams_on_two_replicas(
    server_process: Start, redis_url: str, channels: Callable[[ServerProcess], Channel]
) -> None:
    first, second = server_process(redis_url), server_process(redis_url)
    async with AsyncExitStack() as stack:
        listener = await Chatter.open(stack, channels(second), user="lis", room="r")
        await stats_until(channels(second), lambda s: s.num_connected == 1)
        async with AsyncExitStack() as ann:
            await Chatter.open(ann, channels(first), user="ann", room="r")
            assert seen(await presence_of(listener)) == (JOIN, "r", "ann")
            await Chatter.open(ann, channels(second), user="ann", room="r")
            await stats_until(channels(second), lambda s: s.num_connected == 3)
            # JOIN and LEAVE reach every replica in one order: a second JOIN for ann would
            # come before bob's.
            async with AsyncExitStack() as bob:
                await Chatter.open(bob, channels(first), user="bob", room="r")
                assert (await presence_of(listener)).user == "bob"
            assert seen(await presence_of(listener)) == (LEAVE, "r", "bob")
        assert seen(await presence_of(listener)) == (LEAVE, "r", "ann")
        async with AsyncExitStack() as bob:  # and nothing came between ann's LEAVE and this
            await Chatter.open(bob, channels(first), user="bob", room="r")
            assert seen(await presence_of(listener)) == (JOIN, "r", "bob")


async def test_a_killed_replicas_users_leave_the_others_within_the_bound(
    server_process: Start, redis_url: str, channels: Callable[[ServerProcess], Channel]
) -> None:
    first = server_process(redis_url, *PRESENCE)
    second = server_process(redis_url, *PRESENCE)
    async with AsyncExitStack() as stack, AsyncExitStack() as doomed:
        # The streams to the replica killed end with it: their hang-up finds the connection lost.
        doomed.enter_context(contextlib.suppress(StreamTerminatedError))
        listener = await Chatter.open(stack, channels(second), user="lis", room="r")
        await stats_until(channels(second), lambda s: s.num_connected == 1)
        await Chatter.open(doomed, channels(first), user="ann", room="r")
        await Chatter.open(doomed, channels(first), user="cat", room="r")
        await Chatter.open(stack, channels(second), user="cat", room="r")
        assert {(await presence_of(listener)).user for _ in range(2)} == {"ann", "cat"}
        await stats_until(channels(second), lambda s: s.num_connected == 4)
        first.stop(signal.SIGKILL)
        killed = time.monotonic()
        moved = await presence_of(listener)
        assert (moved.kind, moved.user) == (LEAVE, "ann")  # cat has a stream on this replica
        assert time.monotonic() - killed < BOUND + 10
        stats = await stats_until(channels(second), lambda s: s.num_connected == 2)
        assert stats.online == ["cat", "lis"]


async def test_an_edit_on_one_replica_reaches_a_listener_on_the_other_and_its_history(
    server_process: Start, redis_url: str, channels: Callable[[ServerProcess], Channel]
) -> None:
    first, second = server_process(redis_url), server_process(redis_url)
    async with AsyncExitStack() as stack:
        writer = await Chatter.open(stack, channels(first), user="ann", room="r")
        listener = await Chatter.open(
            stack, channels(second), user="lis", room="r", features="edits,reactions"
        )
        await until_connected(channels(first), "r", 2)
        await writer.send("helo")
        original = await writer.recv_kind(MessageReplyKind.ACK)
        await writer.send("hello", action=MessageRequestAction.EDIT, target_id=original.id)
        await writer.send("👍", action=MessageRequestAction.REACT, target_id=original.id)
        edit = await listener.recv_kind(MessageReplyKind.EDIT)
        reaction = await listener.recv_kind(MessageReplyKind.REACTION)
    assert (edit.message, edit.target_id, edit.user) == ("hello", original.id, "ann")
    assert (reaction.message, reaction.target_id) == ("👍", original.id)
    page = await ChatServiceStub(channels(second)).get_history(HistoryRequest(room="r"))
    (message,) = page.messages
    assert (message.id, message.message, message.edited_at is not None) == (
        original.id,
        "hello",
        True,
    )
    assert [(r.emoji, r.users) for r in message.reactions] == [("👍", ["ann"])]
