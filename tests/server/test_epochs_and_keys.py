"""Nothing lost, nothing twice: the history's epoch on every call, and message keys that make a
resend an ACK of the first post instead of a second message."""

from contextlib import AsyncExitStack
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from chat import contract
from chat.errors import ConfigError
from chat.server import config
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessagesRequest,
    StatsReply,
    StatsRequest,
)
from harness import Chatter


async def history(channel: Channel, **metadata: str) -> list[int]:
    stream = channel.request(
        contract.GET_MESSAGES,
        Cardinality.UNARY_STREAM,
        MessagesRequest,
        MessageReply,
        metadata=metadata,
    )
    async with stream:
        await stream.send_message(MessagesRequest(after_id=2), end=True)
        return [reply.id async for reply in stream]


async def test_every_call_carries_the_history_epoch_in_its_response_headers(
    channel: Channel,
) -> None:
    stats = channel.request(contract.GET_STATS, Cardinality.UNARY_UNARY, StatsRequest, StatsReply)
    async with stats:
        await stats.send_message(StatsRequest(), end=True)
        await stats.recv_initial_metadata()
        reply = await stats.recv_message()
    assert stats.initial_metadata is not None and reply is not None
    epoch = stats.initial_metadata[contract.EPOCH]
    assert epoch == reply.epoch and len(epoch) == 16

    messages = channel.request(
        contract.GET_MESSAGES, Cardinality.UNARY_STREAM, MessagesRequest, MessageReply
    )
    async with messages:
        await messages.send_message(MessagesRequest(), end=True)
        await messages.recv_initial_metadata()
        assert [reply async for reply in messages] == []  # an empty history: headers still
    assert messages.initial_metadata is not None
    assert messages.initial_metadata[contract.EPOCH] == epoch

    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel)
        await chatter.stream.recv_initial_metadata()
        assert chatter.stream.initial_metadata is not None
        assert chatter.stream.initial_metadata[contract.EPOCH] == epoch


async def test_a_key_sent_twice_is_stored_once_and_both_acks_carry_its_id(
    channel: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        listener = await Chatter.open(stack, channel, user="bob")
        ann = await Chatter.open(stack, channel, user="ann")
        first = await ann.say("hello", key="k1")
        again = await ann.say("hello", key="k1")
        later = await ann.say("later", key="k2")
        assert (first.id, first.sent_at, first.key) == (again.id, again.sent_at, "k1")
        assert again.message == contract.ACK_PREFIX + "hello"
        assert later.id == first.id + 1 and later.key == "k2"
        seen = [(await listener.recv_kind(MessageReplyKind.CHAT)).id for _ in range(2)]
        assert seen == [first.id, later.id]  # the repeat was not delivered again
    stats = await ChatServiceStub(channel).get_stats(StatsRequest())
    assert stats.num_messages == 2


async def test_one_key_on_two_streams_of_a_user_is_one_message_with_one_id(
    channel: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        streams = [await Chatter.open(stack, channel, user="ann") for _ in range(2)]
        for stream in streams:
            await stream.send("once", key="same")
        acks = [await stream.recv_kind(MessageReplyKind.ACK) for stream in streams]
        other = await Chatter.open(stack, channel, user="bob")
        theirs = await other.say("once", key="same")  # keys are per user
    assert acks[0].id == acks[1].id and theirs.id == acks[0].id + 1
    stats = await ChatServiceStub(channel).get_stats(StatsRequest())
    assert stats.num_messages == 2


async def test_a_key_over_128_bytes_is_refused_with_an_error_and_not_stored(
    channel: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann")
        await ann.send("hi", key="é" * 65)
        error = await ann.recv()
        ok = await ann.say("hi", key="k" * 128)
    assert error is not None and error.kind == MessageReplyKind.ERROR
    assert error.message == "key is 130 bytes; the limit is 128 bytes of UTF-8"
    assert error.key == "é" * 65  # which message it refuses
    assert ok.id == 1


async def test_a_resume_in_the_same_epoch_skips_what_was_seen_and_another_epoch_replays_all(
    channel: Channel,
) -> None:
    epoch = (await ChatServiceStub(channel).get_stats(StatsRequest())).epoch
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann")
        for text in ("one", "two", "three"):
            await ann.say(text)

    async def replayed(**metadata: str) -> list[int]:
        async with AsyncExitStack() as stack:
            chatter = await Chatter.open(stack, channel, after_id="2", **metadata)
            ids: list[int] = []
            while not ids or ids[-1] < 3:
                ids.append((await chatter.recv_kind(MessageReplyKind.CHAT)).id)
            return ids

    assert await replayed(epoch=epoch) == [3]
    assert await replayed() == [3]  # a client that knows no epoch: as before
    assert await replayed(epoch="0123456789abcdef") == [1, 2, 3]
    assert await history(channel, **{contract.EPOCH: epoch}) == [3]
    assert await history(channel, **{contract.EPOCH: "0123456789abcdef"}) == [1, 2, 3]


@pytest.mark.parametrize("epoch", ["not an epoch", "x" * 65])
async def test_a_chat_epoch_that_is_no_epoch_is_invalid_argument(
    channel: Channel, epoch: str
) -> None:
    metadata: dict[str, Any] = {contract.EPOCH: epoch}
    with pytest.raises(GRPCError) as error:
        await history(channel, **metadata)
    assert error.value.status is Status.INVALID_ARGUMENT
    assert "is not an epoch" in (error.value.message or "")
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, after_id="0", epoch=epoch)
        with pytest.raises(GRPCError) as error:
            await chatter.recv()
    assert error.value.status is Status.INVALID_ARGUMENT


def test_the_dedupe_window_is_a_day_unless_the_flag_or_chat_dedupe_window_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert config.load([]).dedupe_window == 24 * 3600
    assert config.load(["--dedupe-window", "60"]).dedupe_window == 60
    monkeypatch.setenv("CHAT_DEDUPE_WINDOW", "120")
    assert config.load([]).dedupe_window == 120
    for nonsense in ("-1", "inf", "nan"):
        with pytest.raises(ConfigError, match="--dedupe-window: "):
            config.load(["--dedupe-window", nonsense])
    monkeypatch.setenv("CHAT_DEDUPE_WINDOW", "a day")
    with pytest.raises(ConfigError, match="CHAT_DEDUPE_WINDOW: 'a day' is not a number"):
        config.load([])
