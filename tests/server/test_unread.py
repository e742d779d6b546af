"""Read markers, the service served in process on every store: a READ moves its user's marker
forward only, reaches that user's other streams that asked for `read` and no one else, and
ListRooms tells each caller their own marker and unread count."""

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from grpclib.client import Channel

from chat.contract import FEATURES
from chat.server.config import Settings
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessageRequestAction,
    MessagesRequest,
    Room,
    RoomsRequest,
)
from harness import Chatter

Serve = Callable[[str, Settings], Awaitable[Channel]]
Kind, Action = MessageReplyKind, MessageRequestAction


def stub(channel: Channel, user: str, **metadata: str) -> ChatServiceStub:
    return ChatServiceStub(channel, timeout=10, metadata={"chat-user": user, **metadata})


async def post(channel: Channel, user: str, room: str = "r", **fields: Any) -> MessageReply:
    return await stub(channel, user).post_message(MessageRequest(room=room, **fields))


async def rooms(channel: Channel, user: str) -> dict[str, Room]:
    listed = (await stub(channel, user).list_rooms(RoomsRequest())).rooms
    return {room.name: room for room in listed}


async def until(chatter: Chatter, kind: int, id: int = 0) -> list[MessageReply]:
    """The replies a stream gets up to the first of `kind` (with `id`, when given)."""
    replies = []
    while True:
        reply = await chatter.recv()
        assert reply is not None and reply.kind != Kind.ERROR, reply
        replies.append(reply)
        if reply.kind == kind and (not id or reply.id == id):
            return replies


async def test_a_read_reaches_its_readers_other_streams_that_asked_and_no_one_else(
    service_on: Serve, settings: Settings, store_url: str
) -> None:
    channel = await service_on(store_url, settings)
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann", room="r", features="read")
        ann_too = await Chatter.open(stack, channel, user="ann", room="r", features="read")
        ann_plain = await Chatter.open(stack, channel, user="ann", room="r")
        bob = await Chatter.open(stack, channel, user="bob", room="r", features="read")
        for chatter in (ann, ann_too, ann_plain, bob):
            await chatter.stream.recv_initial_metadata()
        one = (await bob.say("one")).id
        two = (await bob.say("two")).id
        mine = (await ann.say("mine")).id
        await ann.send("", action=Action.READ, target_id=two)
        ack = await ann.recv_kind(Kind.ACK)
        assert (ack.id > mine, ack.target_id) == (True, two)
        read = await ann_too.recv_kind(Kind.READ)
        assert (read.id, read.user, read.room, read.target_id) == (ack.id, "ann", "r", two)
        await bob.send("three")  # after the READ: anyone who had it had it first
        seen_by_bob = await until(bob, Kind.ACK)
        three = seen_by_bob[-1].id
        assert Kind.READ not in [reply.kind for reply in seen_by_bob]
        assert Kind.READ not in [reply.kind for reply in await until(ann_plain, Kind.CHAT, three)]
        assert [reply.kind for reply in await until(ann_too, Kind.CHAT, three)] == [Kind.CHAT]

        listed = await rooms(channel, "ann")
        assert (listed["r"].read_id, listed["r"].unread) == (two, 1)  # bob's three
        listed = await rooms(channel, "bob")
        assert (listed["r"].read_id, listed["r"].unread) == (0, 1)  # ann's one message

        back = await post(channel, "ann", action=Action.READ, target_id=one)
        assert (back.kind, back.id) == (Kind.ACK, 0)  # behind the marker: nothing changes
        again = await post(channel, "ann", action=Action.READ, target_id=three)
        assert again.kind == Kind.ACK and again.id > three
        assert (await ann_too.recv_kind(Kind.READ)).target_id == three
        listed = await rooms(channel, "ann")
        assert (listed["r"].read_id, listed["r"].unread, listed["r"].num_messages) == (three, 0, 4)


async def test_get_messages_shows_a_callers_own_reads_only_and_none_without_the_feature(
    service_on: Serve, settings: Settings, store_url: str
) -> None:
    channel = await service_on(store_url, settings)
    first = (await post(channel, "bob", message="hi")).id
    await post(channel, "ann", action=Action.READ, target_id=first)
    await post(channel, "bob", action=Action.READ, target_id=first)

    async def kinds(user: str, **metadata: str) -> list[tuple[int, str]]:
        replies = stub(channel, user, **metadata).get_messages(MessagesRequest(room="r"))
        return [(reply.kind, reply.user) async for reply in replies]

    assert await kinds("ann", **{FEATURES: "read"}) == [(Kind.CHAT, "bob"), (Kind.READ, "ann")]
    assert await kinds("cy", **{FEATURES: "read,edits"}) == [(Kind.CHAT, "bob")]
    assert await kinds("ann") == [(Kind.CHAT, "bob")]


async def test_a_read_names_a_message_of_its_room_and_keeps_the_rooms_rules(
    channel: Channel,
) -> None:
    first = (await post(channel, "ann", message="hi")).id
    elsewhere = (await post(channel, "ann", "s", message="there")).id
    for target, reason in (
        (0, "needs target_id"),
        (999, "no message 999 in r"),
        (elsewhere, f"no message {elsewhere} in r"),
    ):
        reply = await post(channel, "ann", action=Action.READ, target_id=target)
        assert reply.kind == Kind.ERROR and reason in reply.message, reply
    direct = await post(channel, "ann", "@ann,bob", message="x")
    intruder = await post(channel, "cy", "@ann,bob", action=Action.READ, target_id=direct.id)
    assert intruder.kind == Kind.ERROR and "direct conversation" in intruder.message
    reply = await post(channel, "bob", action=Action.READ, target_id=first)
    assert reply.kind == Kind.ACK
