"""The three RPCs, the service served in process as serve() serves it: the tutorial's
behaviour, stats and history options."""

from contextlib import AsyncExitStack

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from gen.grpc.chat import ChatServiceStub, MessageReplyKind, MessagesRequest, StatsRequest
from harness import Chatter


async def history(channel: Channel, **fields: object) -> list[tuple[int, str, str]]:
    stub = ChatServiceStub(channel, timeout=10)
    return [
        (reply.id, reply.room, reply.message)
        async for reply in stub.get_messages(MessagesRequest(**fields))  # type: ignore[arg-type]
    ]


async def test_tutorial_exchange_acks_counts_and_lists_three_messages(channel: Channel) -> None:
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel)
        acks = [await chatter.say(text) for text in ("one", "two", "three")]
        await chatter.stream.end()
        assert await chatter.recv() is None
    assert [(a.kind, a.id, a.message) for a in acks] == [
        (MessageReplyKind.ACK, 1, "Server Responding to one"),
        (MessageReplyKind.ACK, 2, "Server Responding to two"),
        (MessageReplyKind.ACK, 3, "Server Responding to three"),
    ]
    assert all(a.sent_at.tzinfo is not None for a in acks)
    stats = await ChatServiceStub(channel).get_stats(StatsRequest())
    assert (stats.num_messages, stats.num_rooms, stats.num_connected) == (3, 1, 0)
    assert await history(channel) == [
        (1, "general", "one"),
        (2, "general", "two"),
        (3, "general", "three"),
    ]


async def test_half_close_delivers_every_outstanding_ack_then_ok(channel: Channel) -> None:
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, user="ann")
        for number in range(50):
            await chatter.send(f"m{number}")
        await chatter.stream.end()
        replies = []
        while (reply := await chatter.recv()) is not None:
            replies.append(reply)
    assert [r.id for r in replies] == list(range(1, 51))
    assert {r.kind for r in replies} == {MessageReplyKind.ACK}


async def test_history_filters_by_room_resumes_after_an_id_and_keeps_the_newest(
    channel: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel)
        for number in range(1, 7):
            await chatter.say(f"m{number}", room="odd" if number % 2 else "even")
    assert [m[0] for m in await history(channel, room="odd")] == [1, 3, 5]
    assert [m[0] for m in await history(channel, after_id=4)] == [5, 6]
    assert [m[0] for m in await history(channel, limit=2)] == [5, 6]
    assert [m[0] for m in await history(channel, room="even", after_id=2, limit=1)] == [6]
    assert await history(channel, room="nobody-here") == []


async def test_stats_of_one_room_count_its_messages_streams_and_online_users(
    channel: Channel,
) -> None:
    stub = ChatServiceStub(channel, timeout=10)
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann", room="red")
        await Chatter.open(stack, channel, user="bob", room="red")
        await Chatter.open(stack, channel, user="cid", room="blue")
        await ann.say("hello")
        red = await stub.get_stats(StatsRequest(room="red"))
        whole = await stub.get_stats(StatsRequest())
        assert (red.num_messages, red.num_rooms, red.num_connected) == (1, 1, 2)
        assert red.online == ["ann", "bob"]
        assert (whole.num_messages, whole.num_rooms, whole.num_connected) == (1, 2, 3)
        assert whole.online == ["ann", "bob", "cid"]
        assert whole.uptime_seconds > 0


@pytest.mark.parametrize("field", [{"room": "no spaces"}, {"room": "x" * 65}])
async def test_a_bad_room_filter_is_invalid_argument(
    channel: Channel, field: dict[str, str]
) -> None:
    with pytest.raises(GRPCError) as error:
        await ChatServiceStub(channel).get_stats(StatsRequest(**field))
    assert error.value.status is Status.INVALID_ARGUMENT
    assert "room name" in (error.value.message or "")


@pytest.mark.parametrize("after_id", ["-1", "12a", str(2**64), "9" * 5000])
async def test_a_chat_after_id_that_is_no_message_id_is_invalid_argument(
    channel: Channel, after_id: str
) -> None:
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, after_id=after_id)
        with pytest.raises(GRPCError) as error:
            await chatter.recv()
    assert error.value.status is Status.INVALID_ARGUMENT
    assert "is not a message id" in (error.value.message or "")
