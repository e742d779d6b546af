"""Conversations, the service served in process as serve() serves it: actions as entries,
features asked for, PostMessage, GetHistory, ListRooms and direct conversations."""

import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.contract import FEATURES, OFFERED, bearer
from chat.server.config import Settings
from gen.grpc.chat import (
    ChatServiceStub,
    HistoryRequest,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessageRequestAction,
    MessagesRequest,
    RoomsRequest,
    StatsRequest,
)
from harness import Chatter
from harness.tokens import mint

Serve = Callable[[str, Settings], Awaitable[Channel]]
Kind, Action = MessageReplyKind, MessageRequestAction
ALL = "edits,reactions,replies,topics"


def stub(channel: Channel, user: str = "ann", **metadata: str) -> ChatServiceStub:
    return ChatServiceStub(channel, timeout=10, metadata={"chat-user": user, **metadata})


async def post(channel: Channel, user: str = "ann", **fields: Any) -> MessageReply:
    return await stub(channel, user).post_message(MessageRequest(**fields))


async def say(channel: Channel, text: str, user: str = "ann", **fields: Any) -> int:
    reply = await post(channel, user, message=text, **fields)
    assert reply.kind == Kind.ACK, reply.message
    return reply.id


async def refusal(channel: Channel, user: str = "ann", **fields: Any) -> str:
    reply = await post(channel, user, **fields)
    assert (reply.kind, reply.id) == (Kind.ERROR, 0), reply
    return reply.message


async def log(channel: Channel, features: str = "", **fields: Any) -> list[tuple[int, str]]:
    metadata = {FEATURES: features} if features else {}
    request = MessagesRequest(**fields)
    return [
        (reply.kind, reply.message)
        async for reply in stub(channel, **metadata).get_messages(request)
    ]


async def test_actions_reach_those_who_asked_for_them_and_old_clients_see_messages_as_now(
    channel: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        old = await Chatter.open(stack, channel, user="old")
        new = await Chatter.open(stack, channel, user="new", features=ALL)
        await new.stream.recv_initial_metadata()
        assert new.stream.initial_metadata is not None
        assert new.stream.initial_metadata[FEATURES] == OFFERED
        first = await say(channel, "one")
        second = await say(channel, "two")
        await say(channel, "one, fixed", action=Action.EDIT, target_id=first)
        await say(channel, "", action=Action.DELETE, target_id=second)
        await say(channel, "👍", user="bob", action=Action.REACT, target_id=first)
        await say(channel, "👍", user="bob", action=Action.UNREACT, target_id=first)
        await say(channel, "the room for tests", action=Action.TOPIC)
        last = await say(channel, "three", reply_to=first)
        seen: list[MessageReply] = []
        while not seen or seen[-1].id != last:
            reply = await new.recv()
            assert reply is not None
            seen.append(reply)
        assert [(r.kind, r.message, r.target_id, r.removed) for r in seen] == [
            (Kind.CHAT, "one", 0, False),
            (Kind.CHAT, "two", 0, False),
            (Kind.EDIT, "one, fixed", first, False),
            (Kind.DELETE, "", second, False),
            (Kind.REACTION, "👍", first, False),
            (Kind.REACTION, "👍", first, True),
            (Kind.TOPIC, "the room for tests", 0, False),
            (Kind.CHAT, "three", 0, False),
        ]
        assert seen[-1].reply_to == first
        old_seen: list[MessageReply] = []
        while not old_seen or old_seen[-1].id != last:
            reply = await old.recv()
            assert reply is not None
            old_seen.append(reply)
        assert {r.kind for r in old_seen} <= {Kind.CHAT, Kind.JOIN, Kind.LEAVE}
        assert [r.message for r in old_seen if r.kind == Kind.CHAT] == ["one", "two", "three"]
    assert await log(channel) == [(Kind.CHAT, "one, fixed"), (Kind.CHAT, "three")]
    assert [kind for kind, _ in await log(channel, ALL)] == [0, 0, 5, 6, 7, 7, 10, 0]
    assert [kind for kind, _ in await log(channel, "reactions")] == [0, 0, 7, 7, 0]
    assert [kind for kind, _ in await log(channel, "sparkles,edits")] == [0, 0, 5, 6, 0]


async def test_a_resumed_stream_replays_what_its_features_let_through(channel: Channel) -> None:
    first = await say(channel, "one")
    await say(channel, "uno", action=Action.EDIT, target_id=first)
    for features, expected in (("", [(0, "uno")]), ("edits", [(0, "one"), (5, "uno")])):
        async with AsyncExitStack() as stack:
            asked = {"features": features} if features else {}
            chatter = await Chatter.open(stack, channel, user="cy", after_id="0", **asked)
            replayed = [await chatter.recv() for _ in expected]
            assert [(r.kind, r.message) for r in replayed if r] == expected


async def test_only_the_author_edits_within_the_window_and_the_text_rules_hold(
    service_on: Serve, settings: Settings
) -> None:
    channel = await service_on("memory://", settings)
    first = await say(channel, "one")
    assert await refusal(channel, "bob", message="x", action=Action.EDIT, target_id=first) == (
        f"only its author may edit message {first}"
    )
    assert await refusal(channel, message="", action=Action.EDIT, target_id=first) == (
        "empty message: an edit needs the new text"
    )
    assert "bytes; the limit is" in await refusal(
        channel, message="x" * 10_000, action=Action.EDIT, target_id=first
    )
    assert await refusal(channel, message="x", action=Action.EDIT, target_id=999) == (
        "no message 999 in general"
    )
    assert await refusal(channel, message="x", action=Action.EDIT) == (
        "an edit, delete, reaction or read needs target_id: the message it is on"
    )
    assert await refusal(channel, message="x", action=Action.EDIT, target_id=first, room="dev") == (
        f"no message {first} in dev"
    )
    assert "unknown action" in await refusal(channel, message="x", action=9, target_id=first)
    await say(channel, "uno", action=Action.EDIT, target_id=first)
    windowed = await service_on("memory://", dataclasses.replace(settings, edit_window=1e-9))
    old = await say(windowed, "one")
    assert await refusal(windowed, message="x", action=Action.EDIT, target_id=old) == (
        f"message {old} can no longer be edited: messages may be edited for 1e-09 seconds"
    )


async def test_deletes_are_the_authors_or_a_moderators_and_end_every_other_action(
    service_on: Serve,
    signed_settings: Settings,
) -> None:
    channel = await service_on("memory://", signed_settings)

    async def act(token: str, **fields: Any) -> MessageReply:
        return await ChatServiceStub(channel, timeout=10, metadata=bearer(token)).post_message(
            MessageRequest(**fields)
        )

    ann, bob, mod = mint("ann"), mint("bob"), mint("mo", mod=["gen*"])
    first = (await act(ann, message="one")).id
    second = (await act(ann, message="two")).id
    refused = await act(bob, action=Action.DELETE, target_id=first)
    assert (refused.kind, refused.message) == (
        Kind.ERROR,
        f"only its author or a moderator may delete message {first}",
    )
    assert (await act(ann, action=Action.DELETE, target_id=first)).kind == Kind.ACK
    assert (await act(mod, action=Action.DELETE, target_id=second)).kind == Kind.ACK
    for action, text in ((Action.EDIT, "x"), (Action.REACT, "👍"), (Action.DELETE, "")):
        gone = await act(ann, message=text, action=action, target_id=first)
        assert (gone.kind, gone.message) == (Kind.ERROR, f"message {first} was deleted")
    topic = await act(ann, message="mine now", action=Action.TOPIC)
    assert (topic.kind, topic.message) == (
        Kind.ERROR,
        "only a moderator of general may set its topic",
    )
    assert (await act(mod, message="welcome", action=Action.TOPIC)).kind == Kind.ACK
    rooms = await ChatServiceStub(channel, metadata=bearer(ann)).list_rooms(RoomsRequest())
    assert [(room.name, room.topic) for room in rooms.rooms] == [("general", "welcome")]
    page = await ChatServiceStub(channel, metadata=bearer(ann)).get_history(
        HistoryRequest(room="general")
    )
    assert [(m.id, m.message, m.deleted) for m in page.messages] == [
        (first, "", True),
        (second, "", True),
    ]


async def test_a_reaction_counts_once_per_user_and_emoji(channel: Channel) -> None:
    first = await say(channel, "one")
    for user in ("bob", "bob", "cy"):
        ack = await post(channel, user, message="👍", action=Action.REACT, target_id=first)
        assert ack.kind == Kind.ACK
    again = await post(channel, "bob", message="👍", action=Action.REACT, target_id=first)
    assert (again.kind, again.id, again.target_id) == (Kind.ACK, 0, first)
    assert await say(channel, "🎉", user="bob", action=Action.UNREACT, target_id=first) == 0
    for emoji in ("", "a b", "x" * 33):
        problem = await refusal(channel, message=emoji, action=Action.REACT, target_id=first)
        assert problem.startswith("reaction ")
    page = await stub(channel).get_history(HistoryRequest(room="general"))
    (message,) = page.messages
    assert [(r.emoji, r.count, r.users) for r in message.reactions] == [("👍", 2, ["bob", "cy"])]
    assert [kind for kind, _ in await log(channel, "reactions")] == [0, 7, 7]


async def test_replies_stay_in_their_room_and_a_thread_pages_alone(channel: Channel) -> None:
    root = await say(channel, "root")
    elsewhere = await say(channel, "elsewhere", room="dev")
    assert await refusal(channel, message="hm", reply_to=elsewhere) == (
        f"no message {elsewhere} in general"
    )
    assert await refusal(channel, message="hm", reply_to=12345) == "no message 12345 in general"
    answers = [await say(channel, f"answer {n}", reply_to=root) for n in range(3)]
    await say(channel, "aside")
    page = await stub(channel).get_history(HistoryRequest(room="general", thread=root))
    assert [m.id for m in page.messages] == [root, *answers]
    assert [m.reply_to for m in page.messages] == [0, root, root, root]
    assert page.messages[0].replies == 3


async def test_history_pages_back_and_forth_and_says_when_there_is_more(
    channel: Channel,
) -> None:
    ids = [await say(channel, f"m{n}") for n in range(12)]
    await say(channel, "m0!", action=Action.EDIT, target_id=ids[0])
    history = stub(channel).get_history
    newest = await history(HistoryRequest(room="general", limit=5))
    assert ([m.id for m in newest.messages], newest.more) == (ids[-5:], True)
    assert newest.epoch
    older = await history(HistoryRequest(room="general", before_id=ids[-5], limit=5))
    assert ([m.id for m in older.messages], older.more) == (ids[2:7], True)
    oldest = await history(HistoryRequest(room="general", before_id=ids[2], limit=5))
    assert ([m.id for m in oldest.messages], oldest.more) == (ids[:2], False)
    assert oldest.messages[0].message == "m0!"
    assert oldest.messages[0].edited_at is not None
    newer = await history(HistoryRequest(room="general", after_id=ids[8], limit=5))
    assert ([m.id for m in newer.messages], newer.more) == (ids[9:], False)
    whole = await history(HistoryRequest(room="general"))
    assert [m.id for m in whole.messages] == ids
    with pytest.raises(GRPCError) as error:
        await history(HistoryRequest(room="general", before_id=3, after_id=1))
    assert error.value.status == Status.INVALID_ARGUMENT
    with pytest.raises(GRPCError) as error:
        await history(HistoryRequest())
    assert (error.value.status, error.value.message) == (
        Status.INVALID_ARGUMENT,
        "GetHistory needs a room",
    )


async def test_rooms_list_what_the_caller_may_see_with_topics_sizes_and_who_is_online(
    channel: Channel,
) -> None:
    await say(channel, "hello", room="dev")
    await say(channel, "dev things", action=Action.TOPIC, room="dev")
    await say(channel, "psst", room="@ann,bob")
    async with AsyncExitStack() as stack:
        await Chatter.open(stack, channel, user="cy", room="quiet")
        await Chatter.open(stack, channel, user="dee", room="dev")
        for user, expected in (("ann", ["@ann,bob", "dev", "quiet"]), ("cy", ["dev", "quiet"])):
            rooms = (await stub(channel, user).list_rooms(RoomsRequest())).rooms
            assert [room.name for room in rooms] == expected
        rooms = (await stub(channel).list_rooms(RoomsRequest())).rooms
        dev, quiet = rooms[1], rooms[2]
        assert (dev.topic, dev.num_messages, dev.online, dev.last_id) == ("dev things", 1, 1, 2)
        assert (quiet.topic, quiet.num_messages, quiet.online, quiet.last_id) == ("", 0, 1, 0)


async def test_stats_count_the_messages_an_old_client_reads_not_the_actions_on_them(
    service_on: Serve, settings: Settings, store_url: str
) -> None:
    channel = await service_on(store_url, settings)

    async def counted() -> tuple[int, int, int, int]:
        whole = await stub(channel).get_stats(StatsRequest())
        room = await stub(channel).get_stats(StatsRequest(room="general"))
        listed = (await stub(channel).list_rooms(RoomsRequest())).rooms
        return whole.num_messages, room.num_messages, room.num_rooms, listed[0].num_messages

    first = await say(channel, "one")
    await say(channel, "👍", user="bob", action=Action.REACT, target_id=first)
    await say(channel, "one, fixed", action=Action.EDIT, target_id=first)
    await say(channel, "the room for tests", action=Action.TOPIC)
    assert await counted() == (1, 1, 1, 1)
    assert len(await log(channel)) == 1
    second = await say(channel, "two")
    await say(channel, "elsewhere", room="other")
    assert await counted() == (3, 2, 1, 2)
    await say(channel, "", action=Action.DELETE, target_id=second)
    await say(channel, "", action=Action.DELETE, target_id=first)
    assert await counted() == (1, 0, 1, 0)  # general has no messages left, and is a room yet
    assert len(await log(channel)) == 1


async def test_a_direct_conversation_is_closed_to_everyone_it_does_not_name(
    channel: Channel,
) -> None:
    dm = "@ann,bob"
    await say(channel, "psst", room=dm)
    await say(channel, "hi all")
    assert await say(channel, "psst back", user="bob", room=dm)
    assert await refusal(channel, "cy", message="me too", room=dm) == (
        f"{dm} is a direct conversation of others: only they may use it"
    )
    for call in (
        stub(channel, "cy").get_history(HistoryRequest(room=dm)),
        stub(channel, "cy").get_stats(StatsRequest(room=dm)),
        _read(stub(channel, "cy").get_messages(MessagesRequest(room=dm))),
    ):
        with pytest.raises(GRPCError) as error:
            await call
        assert error.value.status == Status.PERMISSION_DENIED
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, user="cy", room=dm)
        with pytest.raises(GRPCError) as error:
            await chatter.recv()
        assert error.value.status == Status.PERMISSION_DENIED
    everything = stub(channel, "cy").get_messages(MessagesRequest())
    assert [reply.message async for reply in everything] == ["hi all"]
    bobs = stub(channel, "bob").get_messages(MessagesRequest())
    assert [reply.message async for reply in bobs] == ["psst", "hi all", "psst back"]
    for name in ("@bob,ann", "@ann", "@ann,ann", "@ann,b b"):
        reply = await post(channel, message="x", room=name)
        assert reply.kind == Kind.ERROR and "must be @ and 2-8 user names" in reply.message


async def _read(call: Any) -> list[MessageReply]:
    return [reply async for reply in call]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_an_action_resent_with_its_key_gets_its_first_ack_though_it_changed_the_message(
    service_on: Serve, settings: Settings, tmp_path: Path, store: str
) -> None:
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'chat.db'}"
    channel = await service_on(url, settings)
    first = await say(channel, "one")
    for action, text in ((Action.REACT, "👍"), (Action.UNREACT, "👍"), (Action.DELETE, "")):
        key = f"k-{action}"
        fields: dict[str, Any] = {"message": text, "action": action, "target_id": first, "key": key}
        once, again = await post(channel, **fields), await post(channel, **fields)
        assert (again.kind, again.id, again.sent_at, again.key) == (
            Kind.ACK,
            once.id,
            once.sent_at,
            key,
        )
        assert once.id > first
    assert [kind for kind, _ in await log(channel, ALL)] == [0, 7, 7, 6]
