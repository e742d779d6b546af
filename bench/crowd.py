"""The crowd: a large room at a steady pace, where what matters is how late deliveries arrive.

One sender posts at a fixed rate (open loop: each message leaves on the clock, whatever the
listeners are doing) to a room of many listeners, each on a connection of its own. The server's
CPU per delivery and the delivery latency (send to receipt, one clock) are what it reports.

The listeners are plain sockets that speak just enough HTTP/2: h2 writes a stream's opening bytes
(with flow-control windows wide enough for the whole run, so no listener ever has to grant more),
and the replies are read as bare frames, a send time found in each DATA frame's bytes. A grpclib
client per listener would cost the load generator far more per delivery than the server spends, and
the latency would be the load generator's.
"""

import asyncio
import dataclasses
import time
from contextlib import AsyncExitStack
from typing import cast

from grpclib.client import Stream, StreamStreamMethod
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes

from bench import latency
from bench.load import SERVICE, Endpoint, Progress
from bench.meter import Meter, Sample
from gen.grpc.chat import MessageReply, MessageRequest

DATA, SETTINGS, PING = 0x0, 0x4, 0x6
ACK = 0x1
WIDE_WINDOW = 2**31 - 1
"""HTTP/2's largest flow-control window: no WINDOW_UPDATE is ever needed during a run."""
READY = b"crowd ready"
"""The text every listener must have before the paced run starts: all are in the room."""
SETTLE_TIMEOUT = 120.0
"""How long the last delivery may take after the last send before the run is called failed."""


def opening(host: str, port: int, room: str, user: str) -> bytes:
    """A connection's first bytes: the preface, wide windows, and one SendAndReceiveMessage
    stream's headers (it sends nothing else)."""
    connection = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    connection.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: WIDE_WINDOW})
    connection.increment_flow_control_window(WIDE_WINDOW - 65_535)
    connection.send_headers(
        1,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", SERVICE + "SendAndReceiveMessage"),
            (":authority", f"{host}:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("chat-room", room),
            ("chat-user", user),
        ],
    )
    return connection.data_to_send()


class RawListener(asyncio.Protocol):
    """One listener's connection, read as bare HTTP/2 frames: each DATA frame is searched for
    send times; SETTINGS and PING are acknowledged, as a peer must."""

    def __init__(self, request: bytes, crowd: "Crowd") -> None:
        self._request = request
        self._crowd = crowd
        self._buffer = b""
        self.ready = asyncio.get_running_loop().create_future()
        self.received = 0
        self.latencies_ns: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        buffer = self._buffer + data if self._buffer else data
        position, end = 0, len(buffer)
        while end - position >= 9:
            size = int.from_bytes(buffer[position : position + 3], "big")
            kind, flags = buffer[position + 3], buffer[position + 4]
            if end - position - 9 < size:
                break
            payload = buffer[position + 9 : position + 9 + size]
            position += 9 + size
            if kind == DATA:
                self._deliveries(payload, now)
            elif kind == SETTINGS and not flags & ACK:
                self.transport.write(b"\0\0\0" + bytes([SETTINGS, ACK]) + b"\0\0\0\0")
            elif kind == PING and not flags & ACK:
                self.transport.write(b"\0\0\x08" + bytes([PING, ACK]) + b"\0\0\0\0" + payload)
        self._buffer = buffer[position:]

    def _deliveries(self, payload: bytes, now: int) -> None:
        found = latency.SENT_AT.findall(payload)
        if found:
            self.received += len(found)
            self.latencies_ns += [now - int(sent_at) for sent_at in found]
            self._crowd.delivered(len(found))
        elif READY in payload and not self.ready.done():
            self.ready.set_result(None)

    def connection_lost(self, error: Exception | None) -> None:
        self._crowd.lost(self)


class Crowd:
    """Every listener's count together: done once each has `expected` messages."""

    def __init__(self, listeners: int, expected: int) -> None:
        self.remaining = listeners * expected
        self.done = asyncio.Event()
        self.cut_off = 0

    def delivered(self, count: int) -> None:
        self.remaining -= count
        if self.remaining <= 0:
            self.done.set()

    def lost(self, listener: RawListener) -> None:
        """A listener the server closed before the run ended (cut off as a slow consumer)."""
        if not self.done.is_set():
            self.cut_off += 1
            if not listener.ready.done():
                listener.ready.set_exception(RuntimeError("a crowd listener was closed early"))


async def crowd(
    server: Endpoint, listeners: int, rate: float, seconds: float, progress: Progress
) -> Sample:
    """`listeners` listeners in one room (one user, so opening them sends no JOINs), and one
    sender posting `rate` messages a second for `seconds`, each ACK read as it comes."""
    size = max(1, round(rate * seconds))  # as Sizes.crowd_messages
    meter = Meter(server.pid)
    loop = asyncio.get_running_loop()
    room = "crowd"
    everyone = Crowd(listeners, size)
    async with AsyncExitStack() as stack:
        crowd_: list[RawListener] = []
        request = opening(server.host, server.port, room, "crowd")
        for _ in range(listeners):
            transport, listener = await loop.create_connection(
                lambda: RawListener(request, everyone), server.host, server.port
            )
            stack.callback(transport.close)
            crowd_.append(listener)
        channel = server.channel()
        stack.callback(channel.close)
        method = StreamStreamMethod(
            channel, SERVICE + "SendAndReceiveMessage", MessageRequest, MessageReply
        )
        sender = method.open(metadata={"chat-room": room, "chat-user": "sender"})
        await stack.enter_async_context(sender)
        stack.push_async_callback(sender.cancel)
        await sender.send_request()
        await sender.send_message(MessageRequest(message=READY.decode()))
        async with asyncio.timeout(SETTLE_TIMEOUT):
            await asyncio.gather(*(listener.ready for listener in crowd_))
            await _read_replies(sender, 1, READY.decode())
        acknowledged = loop.create_task(_read_replies(sender, size, "fanout "))
        meter.start()
        start = time.perf_counter()
        for number in range(size):
            delay = start + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the pace itself, not a wait for anything
            text = latency.fanout_text(number, time.perf_counter_ns())
            await sender.send_message(MessageRequest(message=text))
            progress(number + 1)
        async with asyncio.timeout(SETTLE_TIMEOUT):
            await everyone.done.wait()
        sample = meter.stop(size * listeners)
        await acknowledged
    latencies = [ns for listener in crowd_ for ns in listener.latencies_ns]
    extra = latency.figures(size, listeners, latencies)
    return dataclasses.replace(sample, extra={**extra, "rate": rate, "cut_off": everyone.cut_off})


async def _read_replies(
    sender: Stream[MessageRequest, MessageReply], count: int, text: str
) -> None:
    """Reads the sender's replies until `count` answers to texts starting `text` have come."""
    answer = f"Server Responding to {text}"
    while count:
        reply = await sender.recv_message()
        if reply is None:
            raise RuntimeError("the crowd's sender was closed early")
        count -= reply.message.startswith(answer)
