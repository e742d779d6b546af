"""Live rooms, the service served in process as serve() serves it: broadcast, presence,
ordering, the seam between history and live."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from grpclib.client import Channel

from chat.model import Stored
from chat.server.config import Settings
from chat.server.service import ChatService
from chat.store import open_store
from gen.grpc.chat import ChatServiceStub, MessageReplyKind, MessagesRequest
from harness import Chatter, seen_online, serving

CHAT, JOIN, LEAVE = MessageReplyKind.CHAT, MessageReplyKind.JOIN, MessageReplyKind.LEAVE


PAIRS = 20
"""Pairs of users whose streams open all at once in the presence tests."""


async def test_twenty_pairs_entering_together_each_end_up_seeing_every_other(
    channel: Channel,
) -> None:
    """Each stream's view (the snapshot once it is in the room, then the JOINs and LEAVEs)
    misses no one, however the openings and the snapshots interleave."""
    users = {f"u{n}" for n in range(2 * PAIRS)}
    stub = ChatServiceStub(channel)
    async with AsyncExitStack() as stack:

        async def enter(user: str) -> set[str]:
            chatter = await Chatter.open(stack, channel, user=user, room="lobby")
            return await seen_online(chatter, stub, "lobby", users)

        views = await asyncio.gather(*(enter(user) for user in sorted(users)))
    assert all(view == users for view in views)


async def test_a_message_reaches_every_other_stream_in_its_room_and_only_there(
    channel: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann", room="red")
        bob = await Chatter.open(stack, channel, user="bob", room="red")
        cid = await Chatter.open(stack, channel, user="cid", room="blue")
        assert (await ann.recv_kind(JOIN)).user == "bob"
        ack = await ann.say("hi red")
        got = await bob.recv_kind(CHAT)
        assert (got.id, got.user, got.room, got.message) == (ack.id, "ann", "red", "hi red")
        blue_ack = await cid.say("hi blue")
        # The next thing ann and bob see is red's next message, not blue's.
        later = await bob.say("still red")
        assert (await ann.recv_kind(CHAT)).id == later.id
        assert blue_ack.id < later.id


async def test_a_stream_hears_a_room_it_posts_into(channel: Channel) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann", room="red")
        bob = await Chatter.open(stack, channel, user="bob", room="blue")
        await ann.say("visiting", room="blue")
        assert (await bob.recv_kind(CHAT)).message == "visiting"
        answer = await bob.say("welcome")
        assert (await ann.recv_kind(CHAT)).id == answer.id


async def test_join_and_leave_follow_a_users_first_and_last_stream(channel: Channel) -> None:
    async with AsyncExitStack() as outer:
        watcher = await Chatter.open(outer, channel, user="watcher")
        async with AsyncExitStack() as stack:
            await Chatter.open(stack, channel, user="ann")
            joined = await watcher.recv()
            assert joined is not None and (joined.kind, joined.user) == (JOIN, "ann")
            second = await Chatter.open(stack, channel, user="ann")
            await second.say("from the second stream")  # no JOIN for ann's second stream
            assert (await watcher.recv_kind(CHAT)).message == "from the second stream"
        left = await watcher.recv()
        assert left is not None and (left.kind, left.user) == (LEAVE, "ann")


async def test_every_listener_sees_each_rooms_ids_in_order_without_gaps(channel: Channel) -> None:
    senders, each = 5, 40
    async with AsyncExitStack() as stack:
        listeners = [await Chatter.open(stack, channel, user=f"l{n}") for n in range(3)]
        posters = [await Chatter.open(stack, channel, user=f"p{n}") for n in range(senders)]
        for listener in listeners:
            for _ in posters:
                await listener.recv_kind(JOIN)

        async def post(chatter: Chatter) -> None:
            for number in range(each):
                await chatter.say(str(number))

        await asyncio.gather(*map(post, posters))
        for listener in listeners:
            ids = [(await listener.recv_kind(CHAT)).id for _ in range(senders * each)]
            assert ids == list(range(1, senders * each + 1))


async def test_follow_shows_history_then_live_with_no_gap_or_duplicate_at_the_seam(
    channel: Channel,
) -> None:
    total = 600
    stub = ChatServiceStub(channel)
    async with AsyncExitStack() as stack:
        poster = await Chatter.open(stack, channel, user="poster", room="seam")
        for number in range(total // 2):
            await poster.send(str(number))
        seen: list[int] = []

        async def follow() -> None:
            async for reply in stub.get_messages(MessagesRequest(room="seam", follow=True)):
                seen.append(reply.id)
                if len(seen) == total:
                    return

        follower = asyncio.create_task(follow())
        for number in range(total // 2, total):  # stored while the history is being read
            await poster.send(str(number))
        async with asyncio.timeout(10):
            await follower
    assert seen == list(range(1, total + 1))


async def test_resuming_a_stream_after_an_id_replays_what_was_missed(channel: Channel) -> None:
    async with AsyncExitStack() as stack:
        poster = await Chatter.open(stack, channel, user="poster")
        acks = [await poster.say(str(n)) for n in range(5)]
        back = await Chatter.open(stack, channel, user="back", after_id=str(acks[1].id))
        replayed = [(await back.recv_kind(CHAT)).id for _ in range(3)]
        assert replayed == [a.id for a in acks[2:]]
        live = await poster.say("live")
        assert (await back.recv_kind(CHAT)).id == live.id


@pytest.fixture(params=["sqlite", "redis"])
async def durable_channel(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings
) -> AsyncIterator[Channel]:
    """The service, served in process, on a store that commits in batches (SQLite) or that
    tells its listeners later than the writer hears back (Redis, through its stream follower)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chat.db'}"
    else:
        url = request.getfixturevalue("redis_server").url
    store = await open_store(url)
    service = ChatService(store, dataclasses.replace(settings, store=url))
    try:
        async with serving(service) as channel:
            yield channel
    finally:
        await store.close()


async def test_a_senders_ack_takes_its_place_among_the_rooms_messages(
    durable_channel: Channel,
) -> None:
    """A stream that resumes after the newest id it has seen must have seen everything before
    it: its own ACK may never come after a later message of the room."""
    senders, each = 6, 30
    async with AsyncExitStack() as stack:
        chatters = [
            await Chatter.open(stack, durable_channel, user=f"u{n}", room="busy")
            for n in range(senders)
        ]

        async def post(chatter: Chatter) -> list[int]:
            shown: list[int] = []
            for number in range(each):
                await chatter.send(str(number))
                while (reply := await chatter.recv()) is not None:
                    if reply.kind in (CHAT, MessageReplyKind.ACK):
                        shown.append(reply.id)
                    if reply.kind == MessageReplyKind.ACK:
                        break
            return shown

        for shown in await asyncio.gather(*map(post, chatters)):
            assert shown == sorted(shown), "an ACK came after a later message"


async def test_a_message_posted_during_the_replay_reaches_its_sender_once(
    durable_channel: Channel,
) -> None:
    backlog = 3000
    async with AsyncExitStack() as stack:
        poster = await Chatter.open(stack, durable_channel, user="poster")
        for number in range(backlog):
            await poster.send(str(number))
        last = 0
        while last < backlog:
            last = (await poster.recv_kind(MessageReplyKind.ACK)).id
        back = await Chatter.open(stack, durable_channel, user="back", after_id="1")
        await back.send("mine")  # sent while the server replays 2,999 messages
        shown: list[int] = []
        while (reply := await back.recv()) is not None:
            shown.append(reply.id)
            if reply.kind == MessageReplyKind.ACK:
                break
    assert shown == list(range(2, backlog + 2)), "the sender's own message came twice"


async def test_resuming_after_id_0_replays_the_whole_room(channel: Channel) -> None:
    """A client that lost its stream before it was shown anything resumes with nothing missed."""
    async with AsyncExitStack() as stack:
        poster = await Chatter.open(stack, channel, user="poster")
        acks = [await poster.say(str(n)) for n in range(3)]
        back = await Chatter.open(stack, channel, user="back", after_id="0")
        replayed = [(await back.recv_kind(CHAT)).id for _ in range(3)]
        assert replayed == [a.id for a in acks]


async def test_a_resumed_stream_is_not_sent_again_what_a_lagging_replica_delivers_late(
    channel: Channel, service: ChatService
) -> None:
    """A Redis replica catching up after an outage hands its rooms messages the resuming
    client saw elsewhere; the stream must go on from its `after_id`, not repeat them."""
    async with AsyncExitStack() as stack:
        writer = await Chatter.open(stack, channel, user="ann")
        acks = [await writer.say(f"m{n}") for n in range(3)]
        back = await Chatter.open(stack, channel, user="back", after_id=str(acks[-1].id))
        await back.say("here")  # requests are read after the replay: it is done (and empty)
        late = Stored(acks[1].id, "general", "ann", "m1", datetime.now(UTC))
        service.rooms.stored(late)  # what a lagging follower would deliver
        newest = await writer.say("after")
        assert (await back.recv_kind(CHAT)).id == newest.id
