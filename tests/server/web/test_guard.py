"""What one client may cost the web door: requests it cannot read are answered and logged in
one line, never a traceback."""

import asyncio
import dataclasses
import gc
import logging
import select
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from abuse.attacker import RawClient
from chat import contract
from chat.server.config import Settings
from chat.server.guard.limits import FILES_KEPT, Refusal
from chat.server.metrics import Metrics
from chat.server.service import ChatService
from chat.server.web.app import start
from chat.server.web.app import start as start_web
from chat.server.web.cors import Origins
from chat.server.web.grpc_web import GrpcWebStream
from chat.server.web.guard import WebLimits
from chat.store.memory import MemoryStore
from gen.grpc.chat import MessageRequest
from harness import (
    REPLY_TIMEOUT,
    ServerProcess,
    free_port,
    grpc_web_body,
    grpc_web_reply,
    http_exchange,
)

PROTO = {"Content-Type": "application/grpc-web+proto"}
FAST = Settings(store="memory://", encoding="handwritten", http2="direct", rate_limit=0)
"""The service of the doors that count connections on the gRPC port too."""
CLOSED = aiohttp.WSMsgType.CLOSED
TEXT = aiohttp.WSMsgType.TEXT
PROTO_LINE = b"Content-Type: application/grpc-web+proto\r\n"
Start = Callable[..., ServerProcess]
GET_STATS = f"POST {contract.GET_STATS} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
"""The start of a raw gRPC-Web request."""
SEND_HEAD = f"POST {contract.SEND_AND_RECEIVE} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_its_content_encoding_does_not_decode_gets_invalid_argument_and_no_traceback(
    web_url: str, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    caplog.set_level(logging.INFO)
    headers = {**PROTO, "Content-Encoding": encoding}
    for _ in range(3):
        url = web_url + contract.GET_STATS
        async with http.post(url, data=grpc_web_body(b""), headers=headers) as response:
            assert response.status == 200
            messages, trailers = grpc_web_reply(await response.read())
        assert messages == []
        assert trailers["grpc-status"] == "3"
        assert unquote(trailers["grpc-message"]) == (
            f"the request body cannot be read: Can not decode content-encoding: {encoding}"
        )
    assert "Traceback" not in caplog.text
    assert not [record for record in caplog.records if record.exc_info]
    calls = [r.getMessage() for r in caplog.records if contract.GET_STATS in r.getMessage()]
    assert len(calls) == 3 and all("INVALID_ARGUMENT" in call for call in calls)


@pytest.mark.parametrize(
    ("request_bytes", "says"),
    [
        pytest.param(
            GET_STATS + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"Invalid character in chunk size",
            id="a bad chunk",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
            b"Got more than 8190 bytes",
            id="a 100 KB header",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
            b"Too many headers",
            id="200 headers",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\x00b\r\n\r\n",
            b"Invalid header value char",
            id="a NUL in a header",
        ),
        pytest.param(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
            b"HTTPS traffic on an HTTP port",
            id="TLS",
        ),
        pytest.param(
            GET_STATS + b"Content-Encoding: br\r\nContent-Length: 5\r\n\r\n" + bytes(5),
            b"Can not decode content-encoding: brotli",
            id="an encoding aiohttp lacks",
        ),
    ],
)
async def test_a_request_aiohttp_cannot_read_gets_400_and_one_log_line_without_a_traceback(
    web_url: str,
    service: ChatService,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
    says: bytes,
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(3):
        answer = await http_exchange(web_url, request_bytes)
        assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n"), answer[:100]
        assert says in answer
    assert "Traceback" not in caplog.text
    [line] = [r for r in caplog.records if r.name == "chat.server.web"]
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("127.0.0.1: bad request, answered 400: ")
    registry: CollectorRegistry = Metrics(service).registry
    assert registry.get_sample_value("chat_web_refusals_total", {"reason": "bad_request"}) == 3


async def test_header_bytes_that_are_not_utf8_are_answered_without_a_traceback(
    web_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    preflight = f"OPTIONS {contract.GET_STATS} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    answer = await http_exchange(web_url, preflight + b"Origin: \xff\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert answer.endswith(b"origin '\\udcff' may not call this server\n")
    assert "Traceback" not in caplog.text


async def test_a_token_that_is_not_utf8_is_unauthenticated_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    service = ChatService(MemoryStore(), Settings(store="memory://", token="s3cret"))
    port = free_port()
    runner = await start(service, "127.0.0.1", port, Origins(()))
    try:
        token = b"Authorization: Bearer \xff\xfe\r\nContent-Length: 5\r\nConnection: close\r\n"
        request = GET_STATS + b"Content-Type: application/grpc-web+proto\r\n" + token + b"\r\n"
        answer = await http_exchange(f"http://127.0.0.1:{port}", request + bytes(5))
    finally:
        await runner.cleanup()
    _, trailers = grpc_web_reply(_chunked_body(answer))
    assert trailers["grpc-status"] == "16"
    assert "the token is not UTF-8" in unquote(trailers["grpc-message"])
    assert "Traceback" not in caplog.text


def _chunked_body(answer: bytes) -> bytes:
    """The body of a raw HTTP/1.1 answer in chunked transfer encoding."""
    body, rest = b"", answer.partition(b"\r\n\r\n")[2]
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        body, rest = body + rest[: int(size, 16)], rest[int(size, 16) + 2 :]
    return body


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(b"\xc2\x83\x00\x00\x00\x00abc", 1002, id="a reserved bit"),
        pytest.param(b"\x83\x83\x00\x00\x00\x00abc", 1002, id="an unknown opcode"),
        pytest.param(b"\x80\x83\x00\x00\x00\x00abc", 1002, id="a continuation of nothing"),
        pytest.param(b"\x09\x83\x00\x00\x00\x00abc", 1002, id="a fragmented ping"),
        pytest.param(b"\x82\xff" + (2**63 - 1).to_bytes(8, "big"), 1009, id="2**63 bytes"),
        pytest.param(b"\x81\x82\x00\x00\x00\x00\xff\xfe", 1007, id="text that is not UTF-8"),
    ],
)
async def test_a_websocket_frame_that_breaks_the_protocol_closes_the_socket_without_a_traceback(
    web_url: str, caplog: pytest.LogCaptureFixture, frame: bytes, code: int
) -> None:
    caplog.set_level(logging.INFO)
    host, port = web_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        upgrade = (
            f"GET {contract.SEND_AND_RECEIVE} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        metadata = b"\x81\x90\x00\x00\x00\x00chat-user: ann\r\n"
        writer.write(upgrade.encode() + metadata + frame)
        async with asyncio.timeout(REPLY_TIMEOUT):
            await reader.readuntil(b"\r\n\r\n")
            while (head := await reader.readexactly(2))[0] != 0x88:  # skip to the close frame
                await reader.readexactly(head[1])
            closed = await reader.readexactly(head[1])
    finally:
        writer.close()
    assert int.from_bytes(closed[:2], "big") == code
    assert "Traceback" not in caplog.text


class Door:
    """A service's web door and gRPC port (the fast path, which counts connections) on real
    TCP, sharing its guard, with limits as a test sets them."""

    def __init__(self, settings: Settings, limits: WebLimits) -> None:
        self.service = ChatService(MemoryStore(), settings)
        self.guard = self.service.limits
        self.limits = limits
        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def refused(self, reason: Refusal) -> float | None:
        registry: CollectorRegistry = Metrics(self.service).registry
        return registry.get_sample_value("chat_web_refusals_total", {"reason": reason.value})


OpenDoor = Callable[..., Awaitable[Door]]
"""`door(settings=..., **limits)`: a started door."""


@pytest.fixture
async def door() -> AsyncIterator[OpenDoor]:
    """Starts doors with web limits (and service settings) as a test asks; stops them after."""
    async with AsyncExitStack() as stack:

        async def start(settings: Settings = FAST, **limits: float) -> Door:
            door = Door(settings, WebLimits(**limits))
            service = door.service
            grpc = service.transport.server([service], service.codec, service.limits)
            await grpc.start("127.0.0.1", door.grpc_port)
            web = await start_web(service, "127.0.0.1", door.port, Origins(()), limits=door.limits)

            async def stop() -> None:
                await web.cleanup()
                grpc.close()
                await grpc.wait_closed()

            stack.push_async_callback(stop)
            return door

        yield start


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed the connection (reset, when bytes of ours were
    still on their way); fails the test after a while."""
    received = b""
    async with asyncio.timeout(REPLY_TIMEOUT):
        with suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                received += chunk
    return received


async def test_a_request_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout(
    door: OpenDoor, caplog: pytest.LogCaptureFixture
) -> None:
    server = await door(header_timeout=0.5, keepalive_timeout=30)
    reader, writer = await server.connect()
    trickle = asyncio.create_task(_trickle(writer, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
    try:
        assert await _closed(reader) == b""
    finally:
        trickle.cancel()
        writer.close()
    assert server.refused(Refusal.HEADER_TIMEOUT) == 1
    assert "a request's head not whole in 0.5s" in caplog.text
    answer = await http_exchange(
        server.url, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 OK")


async def _trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Sends `data` a byte every 0.1 s, as a slowloris does (every 5 s)."""
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("requests", [0, 1])
async def test_a_connection_idle_before_or_between_requests_is_closed_at_the_keepalive_timeout(
    door: OpenDoor, requests: int
) -> None:
    server = await door(keepalive_timeout=0.5)
    reader, writer = await server.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * requests)
    answer = await _closed(reader)
    writer.close()
    assert answer.count(b"HTTP/1.1 200 OK") == requests
    assert server.guard.connections == 0


async def test_a_body_that_stalls_ends_its_call_with_deadline_exceeded(
    door: OpenDoor, caplog: pytest.LogCaptureFixture
) -> None:
    server = await door(body_timeout=0.5)
    head = GET_STATS + b"Content-Type: application/grpc-web+proto\r\nContent-Length: 5\r\n\r\n"
    answer = await http_exchange(server.url, head + b"\x00\x00")
    _, trailers = grpc_web_reply(_chunked_body(answer))
    assert trailers["grpc-status"] == "4"
    assert unquote(trailers["grpc-message"]) == "the request body stalled: nothing came for 0.5s"
    assert b"Connection: close" in answer
    assert server.refused(Refusal.BODY_TIMEOUT) == 1
    assert "a request body stalled" in caplog.text


async def test_a_streamed_body_may_rest_between_messages_past_the_body_timeout(
    door: OpenDoor,
) -> None:
    server = await door(body_timeout=0.3)
    reader, writer = await server.connect()
    head = (
        f"POST {contract.SEND_AND_RECEIVE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/grpc-web+proto\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode() + _chunk(grpc_web_body(bytes(MessageRequest(message="one")))))
    async with asyncio.timeout(REPLY_TIMEOUT):
        await reader.readuntil(b"Server Responding to one")
    await asyncio.sleep(1.0)  # the rest under test: three body timeouts without a byte
    writer.write(_chunk(grpc_web_body(bytes(MessageRequest(message="two")))) + _chunk(b""))
    answer = await _closed(reader)
    writer.close()
    assert b"Server Responding to two" in answer and b"grpc-status: 0\r\n" in answer
    assert server.refused(Refusal.BODY_TIMEOUT) == 0


def _chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body (the last chunk when empty)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def test_connections_to_both_doors_count_against_one_per_address_limit(
    door: OpenDoor, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(FAST, h2_max_connections_per_address=2)
    server = await door(settings)
    grpc = await RawClient.connect("127.0.0.1", server.grpc_port)
    _, web_writer = await server.connect()
    await asyncio.wait_for(_until(lambda: server.guard.connections == 2), REPLY_TIMEOUT)
    refused_reader, refused_writer = await server.connect()
    assert await _closed(refused_reader) == b""
    refused_writer.close()
    refused_grpc = await RawClient.connect("127.0.0.1", server.grpc_port)
    await asyncio.wait_for(refused_grpc.closed.wait(), REPLY_TIMEOUT)
    await refused_grpc.close()
    assert server.refused(Refusal.CONNECTIONS_PER_ADDRESS) == 1
    assert server.guard.refusals.counts[Refusal.CONNECTIONS_PER_ADDRESS] == 1
    assert "connection refused: 2 connections open from this address" in caplog.text
    web_writer.close()
    await asyncio.wait_for(_until(lambda: server.guard.connections == 1), REPLY_TIMEOUT)
    answer = await http_exchange(
        server.url, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 OK")
    await grpc.close()


async def _until(condition: Callable[[], bool]) -> None:
    """Waits for `condition` on the guard's counts, which no event announces: it looks again
    each time the loop has had a turn (the caller's deadline ends it)."""
    while not condition():  # noqa: ASYNC110 (a count, not an event, is awaited)
        await asyncio.sleep(0.01)


async def test_a_quiet_websocket_that_answers_pings_lives_on_past_many_heartbeats(
    door: OpenDoor, http: aiohttp.ClientSession
) -> None:
    server = await door(ws_heartbeat=0.1, ws_ping_timeout=0.2)
    url = server.url.replace("http", "ws") + contract.SEND_AND_RECEIVE
    async with http.ws_connect(url) as socket:  # aiohttp answers pings while it reads
        await socket.ping()  # the server answers one before the metadata frame too
        await socket.send_str("chat-user: ann\r\n")
        metadata = await socket.receive(timeout=REPLY_TIMEOUT)
        assert metadata.type is TEXT, metadata
        reply = asyncio.create_task(socket.receive(timeout=REPLY_TIMEOUT))
        await asyncio.sleep(1.0)  # the quiet under test: ten heartbeats
        await socket.send_bytes(bytes(MessageRequest(message="still here")))
        message = await reply
        assert message.type is aiohttp.WSMsgType.BINARY, message
    assert server.refused(Refusal.KEEPALIVE_TIMEOUT) == 0


async def test_a_websocket_that_leaves_a_ping_unanswered_is_closed_and_its_call_cancelled(
    door: OpenDoor, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await door(ws_heartbeat=0.2, ws_ping_timeout=0.2)
    url = server.url.replace("http", "ws") + contract.SEND_AND_RECEIVE
    async with http.ws_connect(url, autoping=False) as socket:  # reads, never answers a ping
        await socket.send_str("chat-user: ann\r\n")
        while (message := await socket.receive(timeout=REPLY_TIMEOUT)).type is not CLOSED:
            assert message.type in (TEXT, aiohttp.WSMsgType.PING), message
    assert server.refused(Refusal.KEEPALIVE_TIMEOUT) == 1
    assert "WebSocket closed: no answer to a ping in 0.2s" in caplog.text
    await asyncio.wait_for(_until(lambda: "CANCELLED" in caplog.text), REPLY_TIMEOUT)


async def test_a_websocket_frame_trickled_byte_by_byte_is_cut_off_by_an_unanswered_ping(
    door: OpenDoor, caplog: pytest.LogCaptureFixture
) -> None:
    """A trickle keeps bytes coming, but never a whole frame, nor the answer to a ping."""
    server = await door(ws_heartbeat=0.3, ws_ping_timeout=0.3)
    reader, writer = await server.connect()
    upgrade = (
        f"GET {contract.SEND_AND_RECEIVE} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    writer.write(upgrade.encode() + b"\x81\x90\x00\x00\x00\x00chat-user: ann\r\n")
    frame = b"\x82\xfe\x01\x00\x00\x00\x00\x00" + b"a" * 256  # 256 bytes, one at a time
    trickle = asyncio.create_task(_trickle(writer, frame))
    try:
        answer = await _closed(reader)
    finally:
        trickle.cancel()
        writer.close()
    assert b"\x88" not in answer.partition(b"\r\n\r\n")[2]  # closed, with no close frame
    assert server.refused(Refusal.KEEPALIVE_TIMEOUT) == 1
    assert "WebSocket closed: no answer to a ping in 0.3s" in caplog.text


def test_near_the_file_limit_new_connections_are_refused_in_one_line_and_open_ones_work(
    server_process: Start,
) -> None:
    many = ("--h2-max-connections-per-address", "10000")
    server = server_process("memory://", *many, web=True, files=FILES_KEPT + 40)
    held = [
        socket.create_connection(("127.0.0.1", server.web_port), timeout=REPLY_TIMEOUT)
        for _ in range(60)  # where the file budget leaves 40
    ]
    try:
        refused = _closed_by_server(held, 20)
        assert len(refused) == 20
        kept = next(sock for sock in held if sock not in refused)
        kept.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(15) == b"HTTP/1.1 200 OK"
    finally:
        for sock in held:
            sock.close()
    log = server.log()
    [line] = [line for line in log.splitlines() if "chat.server.web" in line]
    assert "connection refused: 40 connections open, near the file limit of 104" in line
    assert "Traceback" not in log
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:  # the server sees the closes in its own time
        with socket.create_connection(("127.0.0.1", server.web_port)) as fresh:
            if not _closed_by_server([fresh], 1, seconds=0.2):
                return
    raise AssertionError("connections stayed refused after the others closed")


def _closed_by_server(
    held: list[socket.socket], count: int, seconds: float = REPLY_TIMEOUT
) -> list[socket.socket]:
    """The connections the server closed once `count` have been (an idle one it keeps stays
    open), or all it closed within `seconds`."""
    closed: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    while len(closed) < count and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([s for s in held if s not in closed], [], [], left)
        for sock in readable:
            with suppress(ConnectionResetError):
                sock.recv(1)
            closed.append(sock)
    return closed


@pytest.mark.parametrize(
    ("request_bytes", "hang_up"),
    [
        pytest.param(GET_STATS + b"Content-Length: 5\r\n\r\n\x00\x00", False, id="stalled"),
        pytest.param(SEND_HEAD + b"Content-Length: 9\r\n\r\n\x00\x00", False, id="stalled chat"),
        pytest.param(SEND_HEAD + b"Content-Length: 9\r\n\r\n\x00\x00", True, id="hung up"),
        pytest.param(
            GET_STATS + b"Content-Encoding: gzip\r\nContent-Length: 5\r\n\r\n" + bytes(5),
            False,
            id="lying encoding",
        ),
    ],
)
async def test_a_call_ended_by_its_body_is_freed_without_a_full_collection(
    door: OpenDoor, request_bytes: bytes, hang_up: bool
) -> None:
    """An idle server may not run a full collection for hours: a flood of such calls stayed in
    memory, bodies and all, while their errors' tracebacks held them in cycles."""
    server = await door(body_timeout=0.3)
    gc.collect()  # earlier tests' garbage
    gc.disable()
    try:
        reader, writer = await server.connect()
        writer.write(request_bytes.replace(b"\r\n\r\n", b"\r\n" + PROTO_LINE + b"\r\n", 1))
        if hang_up:
            await asyncio.wait_for(_until(lambda: _alive(GrpcWebStream) == 1), REPLY_TIMEOUT)
            writer.transport.abort()
        else:
            await _closed(reader)
            writer.close()
        await asyncio.wait_for(_until(lambda: server.guard.connections == 0), REPLY_TIMEOUT)
        await asyncio.wait_for(_until(lambda: _alive(GrpcWebStream) == 0), REPLY_TIMEOUT)
        assert _alive(web.Request) == 0
    finally:
        gc.enable()


def _alive(kind: type) -> int:
    """Objects of `kind` not yet freed, garbage in cycles included."""
    return sum(isinstance(thing, kind) for thing in gc.get_objects())


async def test_a_closed_websocket_is_freed_without_a_full_collection(
    door: OpenDoor, http: aiohttp.ClientSession
) -> None:
    """aiohttp's own heartbeat ties each socket into a reference cycle; 2,000 sockets stayed
    in memory until a full collection ran."""
    server = await door()
    url = server.url.replace("http", "ws") + contract.SEND_AND_RECEIVE
    gc.collect()  # earlier tests' garbage
    gc.disable()
    try:
        async with http.ws_connect(url) as socket:
            await socket.send_str("chat-user: ann\r\n")
            await socket.send_bytes(bytes(MessageRequest(message="hi")))
            while (await socket.receive(timeout=REPLY_TIMEOUT)).type is TEXT:
                pass  # the call's metadata, then its ACK
        await asyncio.wait_for(_until(lambda: server.guard.connections == 0), REPLY_TIMEOUT)
        await asyncio.wait_for(_until(lambda: _alive(web.WebSocketResponse) == 0), REPLY_TIMEOUT)
        assert _alive(web.Request) == 0
    finally:
        gc.enable()
