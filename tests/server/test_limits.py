"""Bad input, limits and vanishing clients, over TCP against a real server process."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import grpc
import pytest
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat import contract
from chat.client import split_address
from chat.client.status import raise_status
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessagesRequest,
    StatsReply,
    StatsRequest,
)
from harness import Chatter, RawRequests, ServerProcess

Start = Callable[..., ServerProcess]
SERVICE = f"/{contract.SERVICE}/"
METHODS = [
    ("GetStats", Cardinality.UNARY_UNARY, StatsRequest, StatsReply),
    ("GetMessages", Cardinality.UNARY_STREAM, MessagesRequest, MessageReply),
    ("SendAndReceiveMessage", Cardinality.STREAM_STREAM, MessageRequest, MessageReply),
]


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[ServerProcess], Channel]]:
    """Opens channels (with a codec that sends raw bytes as they are); closes them all."""
    channels: list[Channel] = []

    def open_channel(server: ServerProcess) -> Channel:
        host, port = split_address(server.address)
        channels.append(Channel(host, port, codec=RawRequests()))
        return channels[-1]

    yield open_channel
    for channel in channels:
        channel.close()


async def call_raw(
    channel: Channel, method: tuple[str, Cardinality, type, type], data: bytes
) -> None:
    name, cardinality, request, reply = method
    stream: Stream[Any, Any] = channel.request(
        SERVICE + name, cardinality, request, reply, timeout=10
    )
    async with stream:
        await stream.send_message(data, end=True)
        try:
            while await stream.recv_message() is not None:
                pass
        except StreamTerminatedError:
            raise_status(stream)
            raise


@pytest.mark.parametrize("method", METHODS, ids=[m[0] for m in METHODS])
@pytest.mark.parametrize(
    "data",
    [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xc3\x28", b"\x08\x01"],
    ids=["garbage", "truncated", "invalid-utf8", "wrong-wire-type"],
)
async def test_bytes_that_are_not_a_message_are_invalid_argument_and_nothing_is_stored(
    server_process: Start,
    connect: Callable[[ServerProcess], Channel],
    method: tuple[str, Cardinality, type, type],
    data: bytes,
) -> None:
    server = server_process()
    channel = connect(server)
    with pytest.raises(GRPCError) as error:
        await call_raw(channel, method, data)
    assert error.value.status is Status.INVALID_ARGUMENT
    assert "not a valid" in (error.value.message or "")
    assert (await ChatServiceStub(channel).get_stats(StatsRequest())).num_messages == 0
    assert "Traceback" not in server.log()


async def test_a_message_over_the_size_limit_is_refused_unread(
    server_process: Start, connect: Callable[[ServerProcess], Channel]
) -> None:
    server = server_process("memory://", "--max-message-bytes", "1000")
    channel = connect(server)
    with pytest.raises(GRPCError) as error:
        await call_raw(channel, METHODS[2], bytes(MessageRequest(message="x" * 5000)))
    assert error.value.status is Status.RESOURCE_EXHAUSTED
    assert "limit of 1000 bytes" in (error.value.message or "")


async def test_a_32_mib_announcement_is_refused_before_its_body(
    server_process: Start, connect: Callable[[ServerProcess], Channel]
) -> None:
    server = server_process()
    channel = connect(server)
    big = bytes(MessageRequest(message="x" * (32 * 1024 * 1024)))
    with pytest.raises(GRPCError) as error:
        await call_raw(channel, METHODS[2], big)
    assert error.value.status is Status.RESOURCE_EXHAUSTED
    assert server.rss_kib() < 200 * 1024


async def test_rule_breaking_messages_get_an_error_reply_and_the_stream_stays_open(
    server_process: Start, connect: Callable[[ServerProcess], Channel]
) -> None:
    server = server_process("memory://", "--max-text-bytes", "20")
    channel = connect(server)
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel)
        cases = {
            "": "empty message",
            "é" * 11: "message is 22 bytes; the limit is 20 bytes",
        }
        for text, reason in cases.items():
            await chatter.send(text)
            assert reason in (await chatter.recv_kind(MessageReplyKind.ERROR)).message
        for fields in ({"room": "bad room"}, {"user": "x" * 65}):
            await chatter.send("hello", **fields)
            error = await chatter.recv_kind(MessageReplyKind.ERROR)
            assert "must be 1-64 characters" in error.message
        assert (await chatter.say("fine")).id == 1
    assert (await ChatServiceStub(channel).get_stats(StatsRequest())).num_messages == 1


async def test_bad_names_in_metadata_are_invalid_argument(
    server_process: Start, connect: Callable[[ServerProcess], Channel]
) -> None:
    channel = connect(server_process())
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, room="no/slashes")
        with pytest.raises(GRPCError) as error:
            await chatter.recv()
    assert error.value.status is Status.INVALID_ARGUMENT
    assert "room name" in (error.value.message or "")


def test_an_unknown_method_is_unimplemented(server_process: Start) -> None:
    server = server_process()
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as error:
        channel.unary_unary(SERVICE + "Nope")(b"", timeout=10)
    assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_a_listener_that_never_reads_is_cut_off_while_the_room_goes_on(
    server_process: Start, connect: Callable[[ServerProcess], Channel]
) -> None:
    server = server_process()
    listener_channel, sender_channel = connect(server), connect(server)
    total = 30_000
    async with AsyncExitStack() as stack:
        listener = await Chatter.open(stack, listener_channel, user="sleeper")
        sender = await Chatter.open(stack, sender_channel, user="sender")
        before = server.rss_kib()

        async def send_all() -> None:
            for number in range(total):
                await sender.send(f"message {number:05} " + "x" * 100)
            await sender.stream.end()

        sending = asyncio.create_task(send_all())
        acks = 0
        while (reply := await sender.recv()) is not None:
            acks += reply.kind == MessageReplyKind.ACK
        await sending
        assert acks == total
        growth_mib = (server.rss_kib() - before) / 1024
        assert growth_mib < 40, f"server RSS grew {growth_mib:.0f} MiB for one sleeping listener"
        with pytest.raises(GRPCError) as error:
            while await listener.recv() is not None:
                pass
    assert error.value.status is Status.RESOURCE_EXHAUSTED
    assert "resume with GetMessages after_id=" in (error.value.message or "")


async def test_clients_that_vanish_mid_stream_leave_nothing_behind(
    server_process: Start, connect: Callable[[ServerProcess], Channel]
) -> None:
    server = server_process()
    channels = [connect(server) for _ in range(100)]
    async with AsyncExitStack() as stack:
        chatters = [await Chatter.open(stack, c, user=f"u{n}") for n, c in enumerate(channels)]
        await asyncio.gather(*(c.say("here") for c in chatters))
        stats = ChatServiceStub(connect(server))
        assert (await stats.get_stats(StatsRequest())).num_connected == 100
        for number, (chatter, channel) in enumerate(zip(chatters, channels, strict=True)):
            if number % 2:
                channel.close()  # the TCP connection drops
            else:
                await chatter.stream.cancel()  # RST_STREAM
            chatter.ended = True
        follower = ChatServiceStub(connect(server))
        async with asyncio.timeout(10):  # a following reader that hangs up too
            async for _ in follower.get_messages(MessagesRequest(follow=True)):
                break
        async with asyncio.timeout(10):  # the server notices each hang-up on its own time
            while (await stats.get_stats(StatsRequest())).num_connected:
                pass
    assert "Traceback" not in server.log()
