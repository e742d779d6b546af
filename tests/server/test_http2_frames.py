"""Frames over real TCP, on both paths: whatever way the bytes arrive, the service sees the same
messages; replies wait for the client's flow-control window; unary answers close their streams."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
from grpclib.client import Channel, UnaryStreamMethod, UnaryUnaryMethod
from grpclib.config import Configuration
from grpclib.const import Status
from h2.settings import SettingCodes
from hypothesis import given, settings
from hypothesis import strategies as st

from chat import contract
from chat.server.config import Settings
from chat.server.http2.base import grpc_message as framed
from chat.server.service import ChatService
from chat.store import Store, open_store
from chat.store.memory import MemoryStore
from gen.grpc.chat import (
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessagesRequest,
    StatsReply,
    StatsRequest,
)
from harness import Chatter, ServerProcess, free_port, path_flags

BIDI, HISTORY, STATS = contract.SEND_AND_RECEIVE, contract.GET_MESSAGES, contract.GET_STATS


@pytest.fixture
async def port(settings: Settings) -> AsyncIterator[int]:
    """The port of a server on the path under test with the memory store, on loopback."""
    async with serving(settings, MemoryStore()) as port:
        yield port


@pytest.fixture(params=["memory", "sqlite"])
async def any_store_port(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[int]:
    """As `port`, with the memory store and with SQLite, whose writes wait for a commit: a
    stream's requests are then stored together only when they are read together."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'chat.db'}"
    store = await open_store(url)
    try:
        async with serving(settings, store) as port:
            yield port
    finally:
        await store.close()


@asynccontextmanager
async def serving(settings: Settings, store: Store) -> AsyncIterator[int]:
    service = ChatService(store, settings)
    server = service.transport.server([service], service.codec)
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        yield port
    finally:
        service.shut_down()
        server.close()
        await server.wait_closed()


class RawClient:
    """An HTTP/2 client written with h2 alone, so a test decides how its bytes are cut."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding="ascii")
        self.h2 = h2.connection.H2Connection(config)
        self.reader, self.writer = reader, writer
        self.received = b""
        self.ended = False
        self.trailers: dict[str, str] = {}
        self.data_frames = 0

    @classmethod
    async def open(
        cls, port: int, window: int | None = None, room: str | None = None
    ) -> "RawClient":
        """A SendAndReceiveMessage stream; `window`: the flow-control window it grants;
        `room`: its chat-room (the default room without)."""
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        client.h2.initiate_connection()
        if window is not None:
            client.h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: window})
        await client.read_until(h2.events.RemoteSettingsChanged)  # the server's, to be ACKed
        client.h2.send_headers(
            1,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", BIDI),
                (":authority", "127.0.0.1"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("chat-user", "raw"),
                *([("chat-room", room)] if room else []),
            ],
        )
        await client.write(client.h2.data_to_send())
        # The server has read all of that: the frames a test sends next arrive on their own.
        await client.read_until(h2.events.SettingsAcknowledged)
        return client

    async def read_until(self, kind: type[h2.events.Event]) -> None:
        while not any(
            isinstance(event, kind) for event in self.h2.receive_data(await self.reader.read(65536))
        ):
            pass

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def frames(
        self, texts: list[str], pad_length: int | None = None, rooms: Iterable[str] = ()
    ) -> bytes:
        """DATA frames, one message each, as h2 would put them on the wire (not sent yet);
        `rooms`: the room of each message (the stream's own without)."""
        for text, room in itertools.zip_longest(texts, itertools.islice(rooms, len(texts))):
            self.h2.send_data(1, grpc_message(text, room or ""), pad_length=pad_length)
        return self.h2.data_to_send()

    def requests(self, requests: list[MessageRequest | bytes]) -> bytes:
        """DATA frames, one request each (bytes: a gRPC message as it is), not sent yet."""
        for request in requests:
            if isinstance(request, MessageRequest):
                request = framed(bytes(request))
            self.h2.send_data(1, request)
        return self.h2.data_to_send()

    async def replies(self, count: int) -> list[MessageReply]:
        """The next `count` replies (fewer if the stream ends), acknowledging what was read."""
        replies: list[MessageReply] = []
        while len(replies) < count and not self.ended:
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            if not data:
                break
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.data_frames += 1
                    self.received += event.data
                    self.h2.acknowledge_received_data(event.flow_controlled_length, 1)
                if isinstance(event, h2.events.TrailersReceived):
                    self.trailers = {str(name): str(value) for name, value in event.headers}
                self.ended |= isinstance(event, h2.events.StreamEnded)
            await self.write(self.h2.data_to_send())
            while len(self.received) >= 5:
                size = int.from_bytes(self.received[1:5], "big")
                if len(self.received) < 5 + size:
                    break
                replies.append(MessageReply().parse(self.received[5 : 5 + size]))
                self.received = self.received[5 + size :]
        return replies

    def close(self) -> None:
        self.writer.close()


async def read_history(channel: Channel) -> list[str]:
    read = UnaryStreamMethod(channel, HISTORY, MessagesRequest, MessageReply)
    return [reply.message for reply in await read(MessagesRequest())]


def grpc_message(text: str, room: str = "") -> bytes:
    return framed(bytes(MessageRequest(message=text, room=room)))


def ack_texts(replies: list[MessageReply]) -> list[str]:
    return [reply.message for reply in replies if reply.kind == MessageReplyKind.ACK]


@pytest.mark.parametrize("cut", [1, 7, 9, 10, 61, 1000, 1_000_000])
async def test_frames_cut_anywhere_or_joined_reach_the_service_in_order(
    port: int, cut: int
) -> None:
    client = await RawClient.open(port)
    try:
        texts = [f"message {number}" for number in range(40)]
        data = client.frames(texts)
        for start in range(0, len(data), cut):
            await client.write(data[start : start + cut])
        replies = await client.replies(len(texts))
        assert ack_texts(replies) == [f"Server Responding to {text}" for text in texts]
        assert [reply.id for reply in replies] == list(range(1, 41))
    finally:
        client.close()


async def test_padded_frames_other_frames_and_the_end_of_stream_go_through_h2(
    port: int,
) -> None:
    client = await RawClient.open(port)
    try:
        client.h2.ping(b"12345678")
        mixed = client.frames(["after a ping"])  # a PING and a DATA frame in one write
        padded = client.frames(["padded"], pad_length=3)
        await client.write(mixed + padded)
        assert ack_texts(await client.replies(2)) == [
            "Server Responding to after a ping",
            "Server Responding to padded",
        ]
        client.h2.send_data(1, grpc_message("last"), end_stream=True)
        await client.write(client.h2.data_to_send())
        replies = await client.replies(2)
        assert ack_texts(replies) == ["Server Responding to last"]
        assert client.ended  # the half-close reached the service: it ended the call
    finally:
        client.close()


async def test_live_messages_wait_for_a_small_client_window_and_arrive_whole(
    port: int,
) -> None:
    listener = await RawClient.open(port, window=1000)
    try:
        await listener.write(listener.frames(["here"]))
        assert ack_texts(await listener.replies(1)) == ["Server Responding to here"]
        async with AsyncExitStack() as stack:
            channel = Channel("127.0.0.1", port)
            stack.callback(channel.close)
            poster = await Chatter.open(stack, channel, user="ann")
            for number in range(100):  # about 6 KiB: the server stops at 1000 until read
                await poster.say(f"live message {number:03}")
        replies = await listener.replies(101)  # ann's JOIN, then her messages
        chats = [reply.message for reply in replies if reply.kind == MessageReplyKind.CHAT]
        assert chats == [f"live message {number:03}" for number in range(100)]
    finally:
        listener.close()


async def test_a_backlog_reaches_listeners_whole_in_order_and_in_few_writes(
    any_store_port: int, path: str
) -> None:
    """A sender's backlog (here: 200 messages in one TCP write) reaches every listener in
    order; on the fast path, which stores what arrived together, in one write per listener
    for many messages, not one per message."""
    port = any_store_port
    listeners = [await RawClient.open(port) for _ in range(3)]
    sender = await RawClient.open(port)
    try:
        for listener in listeners:  # in the room and live: its own message is ACKed
            await listener.write(listener.frames(["here"]))
            while "Server Responding to here" not in ack_texts(await listener.replies(1)):
                pass
        texts = [f"backlog {number:03}" for number in range(200)]
        await sender.write(sender.frames(texts))
        acks: list[str] = []  # the listeners' "here"s may come first
        while len(acks) < len(texts) and not sender.ended:
            acks += ack_texts(await sender.replies(1))
        assert acks == [f"Server Responding to {text}" for text in texts]
        for listener in listeners:
            frames_before = listener.data_frames
            chats: list[str] = []
            while len(chats) < len(texts) and not listener.ended:
                replies = await listener.replies(1)
                chats += [reply.message for reply in replies if reply.message.startswith("backlog")]
            assert chats == texts
            if path == "fast":
                assert listener.data_frames - frames_before <= 10
    finally:
        for client in [*listeners, sender]:
            client.close()


async def test_a_backlog_across_rooms_reaches_each_listener_with_its_rooms_messages_only(
    port: int,
) -> None:
    """A backlog alternating between two rooms: each room's listeners hold as many messages
    as the other's in every turn, and get their own room's, whole and in order."""
    listeners = {
        "left": [await RawClient.open(port, room="left") for _ in range(2)],
        "right": [await RawClient.open(port, room="right")],
    }
    sender = await RawClient.open(port)
    clients = [*listeners["left"], *listeners["right"], sender]
    try:
        for client in clients:  # in the room and live
            await client.write(client.frames(["here"]))
            while "Server Responding to here" not in ack_texts(await client.replies(1)):
                pass
        sent = {room: [f"{room} {number:03}" for number in range(100)] for room in listeners}
        await sender.write(
            sender.frames(
                [text for pair in zip(sent["left"], sent["right"], strict=True) for text in pair],
                rooms=itertools.cycle(["left", "right"]),
            )
        )
        for room, members in listeners.items():
            for listener in members:
                chats: list[str] = []
                while len(chats) < len(sent[room]) and not listener.ended:
                    replies = await listener.replies(1)
                    chats += [reply.message for reply in replies if reply.message != "here"]
                assert chats == sent[room]
    finally:
        for client in clients:
            client.close()


async def test_requests_that_arrive_together_are_answered_in_their_order(
    any_store_port: int,
) -> None:
    """Requests in one TCP write, which the fast path stores together: an ACK or an ERROR for
    each, in the order of the requests, and a key sent again ACKed with its first id."""
    client = await RawClient.open(any_store_port)
    try:
        await client.write(
            client.requests(
                [
                    MessageRequest(message="one"),
                    MessageRequest(message="two", key="k1"),
                    MessageRequest(message="three", room="no room!"),
                    MessageRequest(message="four"),
                    MessageRequest(message="two", key="k1"),
                    MessageRequest(message="five"),
                    MessageRequest(message=""),
                    MessageRequest(message="six", key="k2"),
                    MessageRequest(message="seven"),
                ]
            )
        )
        replies = await client.replies(9)
        assert [(reply.kind, reply.id) for reply in replies] == [
            (MessageReplyKind.ACK, 1),
            (MessageReplyKind.ACK, 2),
            (MessageReplyKind.ERROR, 0),
            (MessageReplyKind.ACK, 3),
            (MessageReplyKind.ACK, 2),
            (MessageReplyKind.ACK, 4),
            (MessageReplyKind.ERROR, 0),
            (MessageReplyKind.ACK, 5),
            (MessageReplyKind.ACK, 6),
        ]
        assert "no room!" in replies[2].message and "empty" in replies[6].message
        async with Channel("127.0.0.1", any_store_port) as channel:
            history = await read_history(channel)
            assert history == ["one", "two", "four", "five", "six", "seven"]
    finally:
        client.close()


async def test_a_bad_request_among_good_ones_ends_the_call_once_those_before_it_are_acked(
    any_store_port: int,
) -> None:
    client = await RawClient.open(any_store_port)
    try:
        compressed = b"\1\0\0\0\1x"
        good = [MessageRequest(message="one"), MessageRequest(message="two")]
        await client.write(client.requests([*good, compressed, MessageRequest(message="never")]))
        replies = await client.replies(3)
        assert ack_texts(replies) == ["Server Responding to one", "Server Responding to two"]
        assert client.ended and client.trailers["grpc-status"] == str(Status.UNIMPLEMENTED.value)
        async with Channel("127.0.0.1", any_store_port) as channel:
            assert await read_history(channel) == ["one", "two"]
    finally:
        client.close()


async def test_a_history_over_the_client_window_arrives_whole(
    port: int,
) -> None:
    client = await RawClient.open(port)
    texts = [f"{number:04} " + "x" * 250 for number in range(300)]
    for start in range(0, len(texts), 100):  # within the server's window, which reopens
        await client.write(client.frames(texts[start : start + 100]))
        assert len(ack_texts(await client.replies(100))) == 100
    client.close()
    # The smallest window HTTP/2 allows: the history (about 85 KiB) needs window updates.
    config = Configuration(http2_connection_window_size=65535, http2_stream_window_size=65535)
    async with Channel("127.0.0.1", port, config=config) as channel:
        history = await read_history(channel)
    assert history == texts


async def test_unary_answers_close_their_streams_so_a_connection_serves_many(port: int) -> None:
    async with Channel("127.0.0.1", port) as channel:
        get_stats = UnaryUnaryMethod(channel, STATS, StatsRequest, StatsReply)
        # Three times the 100 streams a connection may have open at once.
        for _ in range(300):
            reply = await get_stats(StatsRequest())
            assert reply.uptime_seconds > 0
        replies = await asyncio.gather(*(get_stats(StatsRequest()) for _ in range(50)))
        assert len(replies) == 50


@st.composite
def frame_mixes(draw: st.DrawFn) -> tuple[list[tuple[str, str, int]], bool, list[int]]:
    """Steps a client may take on one stream, whether it half-closes, and where its bytes are
    cut: ("message", text, pad length or -1), ("split", text, where), ("ping"), ("window")."""
    steps: list[tuple[str, str, int]] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["message", "message", "split", "ping", "window"]))
        text = draw(st.text(min_size=1, max_size=40))
        if kind == "message":
            steps.append((kind, text, draw(st.sampled_from([-1, -1, 0, 5]))))
        elif kind == "split":
            steps.append((kind, text, draw(st.integers(1, len(grpc_message(text)) - 1))))
        else:
            steps.append((kind, "", 0))
    cuts = draw(st.lists(st.integers(1, 120), min_size=1, max_size=40))
    return steps, draw(st.booleans()), cuts


async def run_mix(port: int, steps: list[tuple[str, str, int]], end: bool, cuts: list[int]) -> None:
    client = await RawClient.open(port)
    try:
        texts = []
        for kind, text, detail in steps:
            if kind == "message":
                client.h2.send_data(
                    1, grpc_message(text), pad_length=None if detail < 0 else detail
                )
            elif kind == "split":  # one gRPC message across two DATA frames
                message = grpc_message(text)
                client.h2.send_data(1, message[:detail])
                client.h2.send_data(1, message[detail:])
            elif kind == "ping":
                client.h2.ping(b"01234567")
            else:
                client.h2.increment_flow_control_window(1000)
            if kind in ("message", "split"):
                texts.append(text)
        if end:
            client.h2.end_stream(1)
        data = client.h2.data_to_send()
        position = 0
        for cut in itertools.cycle(cuts):
            if position >= len(data):
                break
            await client.write(data[position : position + cut])
            position += cut
        replies = await client.replies(len(texts) + 1 if end else len(texts))
        assert ack_texts(replies) == [f"Server Responding to {text}" for text in texts]
        assert client.ended is end
    finally:
        client.close()


def test_any_mix_of_frames_cut_anywhere_is_read_as_h2_would(tmp_path: Path, path: str) -> None:
    flags = (*path_flags(path), "--rate-limit", "0")  # hundreds of examples in a second
    server = ServerProcess(tmp_path / "server.log", "memory://", *flags).start()
    loop = asyncio.new_event_loop()
    try:

        @settings(max_examples=300, deadline=None, database=None)
        @given(mix=frame_mixes())
        def one(mix: tuple[list[tuple[str, str, int]], bool, list[int]]) -> None:
            loop.run_until_complete(asyncio.wait_for(run_mix(server.port, *mix), 30))

        one()
        assert "Traceback" not in server.log()
    finally:
        loop.close()
        server.stop()
