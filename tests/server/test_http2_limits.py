"""The HTTP/2 limits over real TCP with an h2 client as the attacker, on both paths: floods end
in GOAWAY ENHANCE_YOUR_CALM, a stream too many is refused alone, stalled and dead connections are
closed, malformed requests are answered, and every refusal is counted and logged once."""

import asyncio
import gc
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import grpclib.protocol
import grpclib.server
import pytest
from grpclib.client import Channel
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    Event,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.settings import SettingCodes

from abuse.attacker import CHAT, RawClient, grpc_message, request_headers
from chat.server.config import Settings
from chat.server.guard.frames import FrameType, frame
from chat.server.guard.limits import FILES_KEPT, Guard, Limits, Refusal
from chat.server.guard.protocol import GuardedProtocol
from chat.server.reclaim import Reclaimer
from chat.server.service import ChatService
from chat.store.memory import MemoryStore
from gen.grpc.chat import ChatServiceStub, MessageRequest, StatsReply, StatsRequest
from harness import free_port


class Server:
    """A service on real TCP, its guard's limits as a test sets them."""

    def __init__(self, settings: Settings, limits: Limits, files: int | None = None) -> None:
        self.service = ChatService(MemoryStore(), settings)
        self.guard = Guard(limits, files)
        self.server = self.service.transport.server([self.service], self.service.codec, self.guard)
        self.port = free_port()

    async def client(self, record: bool = True) -> RawClient:
        return await RawClient.connect("127.0.0.1", self.port, record=record)

    async def stats(self) -> StatsReply:
        """An honest client's GetStats, on a connection of its own."""
        channel = Channel("127.0.0.1", self.port)
        try:
            return await ChatServiceStub(channel).get_stats(StatsRequest(), timeout=10)
        finally:
            channel.close()

    async def stats_answered(self) -> bool:
        """Whether an honest client's GetStats is answered on a connection of its own."""
        await self.stats()
        return True


Serve = Callable[..., Awaitable[Server]]
"""`serve(files=None, **limits)`: a started server on the path under test."""


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Serve]:
    """Starts servers on the path under test with limits; stops them after the test."""
    async with AsyncExitStack() as stack:

        async def start(files: int | None = None, **limits: float) -> Server:
            server = Server(settings, Limits(**limits), files)  # type: ignore[arg-type]
            await server.server.start("127.0.0.1", server.port)

            async def stop() -> None:
                server.service.shut_down()
                server.server.close()
                await server.server.wait_closed()

            stack.push_async_callback(stop)
            return server

        yield start


def goaway(code: ErrorCodes) -> Callable[[Event], bool]:
    return lambda event: isinstance(event, ConnectionTerminated) and event.error_code == code


def reset(stream_id: int, code: ErrorCodes) -> Callable[[Event], bool]:
    return lambda event: (
        isinstance(event, StreamReset) and event.stream_id == stream_id and event.error_code == code
    )


def trailers(stream_id: int) -> Callable[[Event], bool]:
    return lambda event: (
        isinstance(event, (TrailersReceived, ResponseReceived))
        and (
            event.stream_id == stream_id
            and any(name == b"grpc-status" for name, _ in event.headers)
        )
    )


def grpc_status(event: Event | None) -> int:
    assert isinstance(event, (TrailersReceived, ResponseReceived)), event
    return int(dict(event.headers)[b"grpc-status"])


def live_streams() -> int:
    gc.collect()
    return sum(isinstance(thing, grpclib.protocol.Stream) for thing in gc.get_objects())


async def get_stats(client: RawClient) -> int:
    """The status of a GetStats on `client`'s connection, answered after all it sent before."""
    stream_id = client.h2.get_next_available_stream_id()
    client.h2.send_headers(stream_id, request_headers())
    client.h2.send_data(stream_id, grpc_message(b""), end_stream=True)
    await client.flush()
    return grpc_status(await client.wait_for(trailers(stream_id)))


async def test_streams_opened_and_reset_at_once_start_no_call_and_are_not_kept(
    serve: Serve,
) -> None:
    server = await serve(max_resets=10_000)
    client = await server.client()
    # The first such stream: on grpclib's path the guard asks for header blocks without a
    # table then, which the client's h2 agrees to before the answer to the GetStats comes.
    stream_id = client.h2.get_next_available_stream_id()
    client.h2.send_headers(stream_id, request_headers())
    client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
    assert await get_stats(client) == 0
    before = live_streams()
    for _ in range(20):
        for _ in range(100):
            stream_id = client.h2.get_next_available_stream_id()
            client.h2.send_headers(stream_id, request_headers())
            client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        await client.flush()
    assert await get_stats(client) == 0  # answered after every reset before it was read
    assert client.alive
    assert live_streams() - before < 50  # 2,000 were opened and reset
    await client.close()


@pytest.mark.parametrize(
    ("limit", "flood", "reason"),
    [
        ("max_pings", lambda h2: h2.ping(b"12345678"), Refusal.PINGS),
        ("max_settings", lambda h2: h2.update_settings({4: 65535}), Refusal.SETTINGS),
        ("max_resets", None, Refusal.RESETS),
    ],
)
async def test_a_flood_of_cheap_frames_ends_in_goaway_enhance_your_calm(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    limit: str,
    flood: Callable[[H2Connection], None] | None,
    reason: Refusal,
) -> None:
    server = await serve(**{limit: 20})
    client = await server.client()
    for _ in range(100):
        if flood is None:
            stream_id = client.h2.get_next_available_stream_id()
            client.h2.send_headers(stream_id, request_headers())
            client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        else:
            flood(client.h2)
    await client.flush()
    assert await client.wait_for(goaway(ErrorCodes.ENHANCE_YOUR_CALM)) is not None
    await asyncio.wait_for(client.closed.wait(), 10)
    assert server.guard.refusals.counts[reason] == 1
    assert caplog.text.count("ENHANCE_YOUR_CALM") == 1
    assert await server.stats_answered()
    await client.close()


async def test_pings_within_the_budget_are_answered(serve: Serve) -> None:
    server = await serve(max_pings=20)
    client = await server.client()
    for _ in range(10):
        client.h2.ping(b"12345678")
    await client.flush()
    stream_id = client.h2.get_next_available_stream_id()
    client.h2.send_headers(stream_id, request_headers())
    client.h2.send_data(stream_id, grpc_message(b""), end_stream=True)
    await client.flush()
    assert grpc_status(await client.wait_for(trailers(stream_id))) == 0
    assert not server.guard.refusals.counts
    await client.close()


async def five_chats_and_one_refused(server: Server) -> tuple[RawClient, list[int]]:
    """A client with five chat streams open on a server that allows five, whose sixth stream
    was refused with REFUSED_STREAM; the client may open more past the limit."""
    client = await server.client()
    await client.wait_for(lambda event: type(event).__name__ == "SettingsAcknowledged")
    assert client.h2.remote_settings.max_concurrent_streams == 5  # the client is told
    chats = []
    for _ in range(5):
        stream_id = client.h2.get_next_available_stream_id()
        client.h2.send_headers(stream_id, request_headers(CHAT, [("chat-user", "ann")]))
        chats.append(stream_id)
    # The client's h2 keeps to the server's limit: it is told of a higher one to go past it.
    client.h2.remote_settings.update({SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
    client.h2.remote_settings.acknowledge()
    extra = client.h2.get_next_available_stream_id()
    client.h2.send_headers(extra, request_headers())
    await client.flush()
    assert await client.wait_for(reset(extra, ErrorCodes.REFUSED_STREAM)) is not None
    return client, chats


async def test_a_stream_past_the_limit_is_refused_and_the_others_live_on(serve: Serve) -> None:
    server = await serve(max_streams=5)
    client, chats = await five_chats_and_one_refused(server)
    # The five chats are still there: one ends and answers with its status.
    client.h2.end_stream(chats[0])
    await client.flush()
    assert grpc_status(await client.wait_for(trailers(chats[0]))) == 0
    assert client.alive
    assert server.guard.refusals.counts[Refusal.STREAMS] == 1
    await client.close()


async def test_streams_refused_past_the_limit_start_no_call_and_are_not_kept(
    serve: Serve,
) -> None:
    server = await serve(max_streams=5, max_resets=10_000)
    client, chats = await five_chats_and_one_refused(server)
    before = live_streams()
    for _ in range(5):
        for _ in range(100):
            client.h2.send_headers(client.h2.get_next_available_stream_id(), request_headers())
        await client.flush()
    last = client.h2.highest_outbound_stream_id
    assert await client.wait_for(reset(last, ErrorCodes.REFUSED_STREAM)) is not None
    assert live_streams() - before < 50  # 500 were refused
    client.h2.end_stream(chats[0])
    await client.flush()
    assert grpc_status(await client.wait_for(trailers(chats[0]))) == 0
    assert client.alive
    await client.close()


def _header_block_too_big(client: RawClient) -> None:
    client.h2.send_headers(1, request_headers(extra=[("x-big", "a" * 16_000)] * 8))


def _frame_inside_a_header_block(client: RawClient) -> None:
    headers = frame(FrameType.HEADERS, 0, 1, b"\x83")  # no END_HEADERS: a CONTINUATION is due
    client.write(headers + frame(FrameType.PING, 0, 0, b"12345678"))


@pytest.mark.parametrize(
    ("send", "code"),
    [
        (_header_block_too_big, ErrorCodes.ENHANCE_YOUR_CALM),
        (_frame_inside_a_header_block, ErrorCodes.PROTOCOL_ERROR),
    ],
    ids=["header-block-over-64-KiB", "frame-inside-a-header-block"],
)
async def test_a_protocol_error_ends_in_h2s_goaway(
    serve: Serve, send: Callable[[RawClient], None], code: ErrorCodes
) -> None:
    """h2's own GOAWAY, with its code, on grpclib's path too (grpclib closes the connection
    without sending it)."""
    server = await serve()
    client = await server.client()
    send(client)
    await client.flush()
    assert await client.wait_for(goaway(code)) is not None
    await asyncio.wait_for(client.closed.wait(), 10)
    assert server.guard.refusals.counts[Refusal.PROTOCOL_ERROR] == 1
    await client.close()


@pytest.mark.parametrize(
    ("headers", "answer"),
    [
        ([(":scheme", "http"), (":path", "/grpc.chat.ChatService/GetStats")], None),
        ([*request_headers(), ("x-name", "caf\xe9")], None),
        ([*request_headers(), ("x-bin", "Y")], 3),
        ([*request_headers(), ("grpc-timeout", "0n")], 4),
    ],
    ids=["no-method", "non-ascii", "bad-base64", "spent-timeout"],
)
async def test_malformed_requests_are_answered_without_a_traceback(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    headers: list[tuple[str, str]],
    answer: int | None,
) -> None:
    server = await serve()
    client = await server.client()
    for _ in range(3):
        stream_id = client.h2.get_next_available_stream_id()
        encoded = [(name.encode(), value.encode("latin-1")) for name, value in headers]
        client.h2.send_headers(stream_id, encoded, end_stream=True)
        await client.flush()
        if answer is None:
            found = await client.wait_for(reset(stream_id, ErrorCodes.PROTOCOL_ERROR))
            assert found is not None
        else:
            assert grpc_status(await client.wait_for(trailers(stream_id))) == answer
    assert client.alive
    assert "Traceback" not in caplog.text
    assert caplog.text.count("malformed request") == 1
    assert server.guard.refusals.counts[Refusal.MALFORMED] == 3
    await client.close()


async def test_connections_past_the_per_address_limit_are_refused(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(max_connections_per_address=2)
    first, second = await server.client(), await server.client()
    third = await server.client()
    await asyncio.wait_for(third.closed.wait(), 10)
    assert first.alive and second.alive
    await first.close()
    await asyncio.wait_for(_until(lambda: server.guard.connections == 1), 10)
    assert await server.stats_answered()
    assert server.guard.refusals.counts[Refusal.CONNECTIONS_PER_ADDRESS] == 1
    await second.close()
    await third.close()


async def test_connections_stop_short_of_the_file_limit_and_say_so(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(files=FILES_KEPT + 1)
    first, second = await server.client(), await server.client()
    await asyncio.wait_for(second.closed.wait(), 10)
    assert first.alive
    assert server.guard.refusals.counts == {Refusal.FILE_LIMIT: 1}
    assert "near the file limit" in caplog.text
    await first.close()
    await second.close()


async def test_refused_connections_leave_no_handler_behind(serve: Serve) -> None:
    """grpclib's server keeps each connection's handler until the handler says it closed; a
    refused connection's never did, and a flood of them grew the server for good."""
    server = await serve(max_connections_per_address=1)
    held = await server.client()
    for _ in range(40):
        refused = await server.client()
        await asyncio.wait_for(refused.closed.wait(), 10)
        await refused.close()
    assert server.guard.refusals.counts[Refusal.CONNECTIONS_PER_ADDRESS] == 40
    gc.collect()
    handlers = sum(isinstance(thing, grpclib.server.Handler) for thing in gc.get_objects())
    assert handlers <= 12  # the held one, and up to ten closed ones between grpclib's sweeps
    assert held.alive
    await held.close()


@pytest.mark.parametrize("closed_by", ["client", "server"])
async def test_a_closed_connection_is_freed_at_once(
    serve: Serve, closed_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a full collection: an idle server may not run one for hours, and a flood's
    hundreds of closed connections would wait for it."""
    server = await serve(handshake_timeout=0.5 if closed_by == "server" else 10.0)
    client = await server.client(record=False) if closed_by == "client" else None
    if client is None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await asyncio.wait_for(_until(lambda: server.guard.connections == 1), 10)
    gc.collect()  # earlier tests' garbage
    gc.disable()
    try:
        (protocol,) = [
            thing
            for thing in gc.get_objects()
            if isinstance(thing, GuardedProtocol) and thing.watch is not None
        ]
        freed = weakref.ref(protocol)
        del protocol
        if client is not None:
            await client.close()
        else:
            await asyncio.wait_for(reader.read(), 10)  # to EOF: no preface came, it was closed
            writer.close()
        await asyncio.wait_for(_until(lambda: freed() is None), 10)
    finally:
        gc.enable()
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


async def test_memory_is_reclaimed_once_a_wave_of_closes_is_over() -> None:
    reclaimer = Reclaimer(wave=3, quiet=0.2)
    reclaimer.ended()
    reclaimer.ended()
    assert reclaimer.ended_since == 2
    reclaimer.ended()
    await asyncio.wait_for(_until(lambda: reclaimer.reclaims == 1), 10)
    assert reclaimer.ended_since == 0


async def _until(condition: Callable[[], bool]) -> None:
    """Waits for `condition` on the server's counts, which no event announces: it looks again
    each time the loop has had a turn (the caller's deadline ends it)."""
    while not condition():  # noqa: ASYNC110 (a count, not an event, is awaited)
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "sent",
    [b"", b"PRI * HTTP/2.0\r\n", None],
    ids=["nothing", "half-a-preface", "half-a-frame"],
)
async def test_stalled_connections_are_closed(serve: Serve, sent: bytes | None) -> None:
    server = await serve(handshake_timeout=0.5, header_timeout=0.5)
    if sent is None:
        client = await server.client()
        client.write(b"\x00\x01\x00\x01\x04\x00\x00\x00\x01")  # a HEADERS frame's header only
        await client.flush()
        await asyncio.wait_for(client.closed.wait(), 10)
        await client.close()
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(sent)
        assert await asyncio.wait_for(reader.read(), 10) is not None  # to EOF: closed
        writer.close()
    await asyncio.wait_for(_until(lambda: server.guard.connections == 0), 10)


async def test_a_dead_peer_is_told_from_a_quiet_one(serve: Serve) -> None:
    server = await serve(keepalive_seconds=0.3, keepalive_timeout=0.5)
    quiet = await server.client()  # answers PINGs, as h2 clients do
    quiet.h2.send_headers(1, request_headers(CHAT, [("chat-user", "quiet")]))
    await quiet.flush()
    dead = socket.create_connection(("127.0.0.1", server.port))  # never read: no PING answered
    h2 = H2Connection(H2Configuration(client_side=True))
    h2.initiate_connection()
    h2.send_headers(1, request_headers(CHAT, [("chat-user", "dead")]))
    dead.sendall(h2.data_to_send())
    await asyncio.wait_for(_until(lambda: server.guard.connections == 2), 10)
    await asyncio.wait_for(_until(lambda: server.guard.connections == 1), 10)
    assert server.guard.refusals.counts == {Refusal.KEEPALIVE_TIMEOUT: 1}
    assert quiet.alive
    dead.close()
    await quiet.close()


async def test_a_message_body_that_never_comes_ends_its_call(serve: Serve) -> None:
    server = await serve(body_timeout=0.5)
    client = await server.client()
    client.h2.send_headers(1, request_headers(CHAT, [("chat-user", "slow")]))
    client.h2.send_data(1, b"\0" + (1000).to_bytes(4, "big") + b"x" * 10)
    await client.flush()
    assert grpc_status(await client.wait_for(trailers(1))) == 4  # DEADLINE_EXCEEDED
    assert await client.wait_for(reset(1, ErrorCodes.NO_ERROR)) is not None  # send no more
    assert server.guard.refusals.counts == {Refusal.BODY_TIMEOUT: 1}
    assert server.guard.reserved == 0
    assert await get_stats(client) == 0  # the connection goes on
    await client.close()


async def test_a_message_cut_anywhere_is_read_whole(serve: Serve) -> None:
    """The guard follows messages across frames, padding and reads: an honest client whose
    messages are cut at every byte is not refused, and its messages are all stored."""
    server = await serve(body_timeout=5)
    client = await server.client()
    client.h2.send_headers(1, request_headers(CHAT, [("chat-user", "cut")]))
    messages = b"".join(grpc_message(bytes(MessageRequest(message=f"m{n}"))) for n in range(3))
    for start in range(0, len(messages), 4):
        client.h2.send_data(1, messages[start : start + 4], pad_length=start % 3 or None)
        await client.flush()
    client.h2.end_stream(1)
    await client.flush()
    assert grpc_status(await client.wait_for(trailers(1))) == 0
    assert not server.guard.refusals.counts
    assert server.guard.reserved == 0
    assert (await server.stats()).num_messages == 3
    await client.close()


async def test_unfinished_messages_count_against_the_unread_bytes_budget(
    serve: Serve,
) -> None:
    server = await serve(max_buffered_bytes=100_000, body_timeout=2)
    client = await server.client()
    for stream_id in (1, 3):
        client.h2.send_headers(stream_id, request_headers(CHAT, [("chat-user", f"u{stream_id}")]))
        client.h2.send_data(stream_id, b"\0" + (60_000).to_bytes(4, "big") + b"x" * 10)
        await client.flush()
    assert grpc_status(await client.wait_for(trailers(3))) == 8  # RESOURCE_EXHAUSTED
    assert grpc_status(await client.wait_for(trailers(1))) == 4  # its body never came
    assert server.guard.refusals.counts == {Refusal.BUFFERED_BYTES: 1, Refusal.BODY_TIMEOUT: 1}
    assert server.guard.reserved == 0
    await client.close()


async def test_a_connection_holding_too_many_unread_bytes_ends_in_goaway(serve: Serve) -> None:
    """Counted from the frame headers before the server reads any of it."""
    server = await serve(max_buffered_bytes=10_000)
    client = await server.client()
    client.h2.send_headers(1, request_headers(CHAT, [("chat-user", "hoarder")]))
    client.h2.send_data(1, b"\0" + (19_995).to_bytes(4, "big") + b"x" * 10_000)
    client.h2.send_data(1, b"x" * 9_995)
    await client.flush()
    assert await client.wait_for(goaway(ErrorCodes.ENHANCE_YOUR_CALM)) is not None
    assert server.guard.refusals.counts[Refusal.BUFFERED_BYTES] >= 1
    await asyncio.wait_for(_until(lambda: server.guard.connections == 0), 10)
    assert server.guard.buffered == 0
    assert await server.stats_answered()
    await client.close()


async def test_the_flow_control_windows_are_the_limits(serve: Serve) -> None:
    server = await serve(connection_window=100_000, stream_window=70_000)
    client = await server.client()
    window = SettingCodes.INITIAL_WINDOW_SIZE
    found = await client.wait_for(
        lambda event: (
            isinstance(event, RemoteSettingsChanged)
            and window in event.changed_settings
            and event.changed_settings[window].new_value == 70_000
        )
    )
    assert found is not None
    await client.close()


async def test_stream_ends_are_seen(serve: Serve) -> None:
    """The helpers above see a GetStats end."""
    server = await serve()
    client = await server.client()
    client.h2.send_headers(1, request_headers())
    client.h2.send_data(1, grpc_message(b""), end_stream=True)
    await client.flush()
    assert grpc_status(await client.wait_for(trailers(1))) == 0
    assert await client.wait_for(lambda e: isinstance(e, StreamEnded)) is not None
    await client.close()
