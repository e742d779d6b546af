"""The floor: what writing one delivery costs with nothing but a socket write.

A plain uvloop TCP server that writes, for each message a sender sends, the same bytes a chat
server would (one HTTP/2 DATA frame holding one gRPC message, a MessageReply) to every listener's
socket, and a reply to the sender. No HTTP/2, no gRPC, no queues: a delivery costs what the write
itself costs. `python -m bench.floor --port P`; the load side is `fanout` below.

The wire of this server (not HTTP/2): a client's first byte says what it is, `L` (listener) or
`S` (sender), and is answered with `+`; a sender then sends messages as a 4-byte length and the
text; every delivery and reply is a frame as described above.
"""

import argparse
import asyncio
import dataclasses
import struct
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import cast

import uvloop

from bench import latency
from bench.meter import Meter, Sample
from chat.contract import Kind
from chat.server.encoding.handwritten_impl import encode_reply

FRAME = struct.Struct(">BHBBL")
"""An HTTP/2 frame header: length (high byte, low 16 bits), type, flags, stream id."""
LISTENER, SENDER, READY = b"L", b"S", b"+"


def framed(kind: int, text: str) -> bytes:
    """A MessageReply as one gRPC message in one HTTP/2 DATA frame on stream 1."""
    reply = encode_reply(kind, text, "floor", "fanout", 1, datetime.now(UTC))
    message = b"\0" + len(reply).to_bytes(4, "big") + reply
    size = len(message)
    return FRAME.pack(size >> 16, size & 0xFFFF, 0, 0, 1) + message


class Floor(asyncio.Protocol):
    """One connection: a listener is written to; a sender's messages are delivered to all."""

    def __init__(self, listeners: set[asyncio.Transport]) -> None:
        self.listeners = listeners

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.role = b""
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if not self.role:
            self.role, data = data[:1], data[1:]
            if self.role == LISTENER:
                self.listeners.add(self.transport)
            self.transport.write(READY)
        self.buffer += data
        while len(self.buffer) >= 4:
            size = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) < 4 + size:
                return
            text = self.buffer[4 : 4 + size].decode()
            self.buffer = self.buffer[4 + size :]
            delivery = framed(Kind.CHAT, text)
            for listener in self.listeners:
                listener.write(delivery)
            self.transport.write(framed(Kind.ACK, text))

    def connection_lost(self, error: Exception | None) -> None:
        self.listeners.discard(self.transport)


async def serve(host: str, port: int) -> None:
    """Serves until cancelled (SIGTERM ends the process)."""
    listeners: set[asyncio.Transport] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Floor(listeners), host, port)
    async with server:
        await server.serve_forever()


class _Reader:
    """Reads frames from one connection: how many deliveries arrived, and how late each was."""

    def __init__(self, reader: asyncio.StreamReader, changed: asyncio.Event) -> None:
        self.reader = reader
        self.received = 0
        self.latencies_ns: list[int] = []
        self._changed = changed

    async def frame(self) -> bytes:
        header = await self.reader.readexactly(FRAME.size)
        high, low, _, _, _ = FRAME.unpack(header)
        return await self.reader.readexactly(high << 16 | low)

    async def listen(self, expected: int) -> None:
        while self.received < expected:
            payload = await self.frame()
            now = time.perf_counter_ns()
            sent_at = latency.SENT_AT.search(payload)
            assert sent_at is not None, payload
            self.latencies_ns.append(now - int(sent_at[1]))
            self.received += 1
            self._changed.set()


async def fanout(host: str, port: int, pid: int, size: int, listeners: int) -> Sample:
    """The fan-out workload of bench.load against the floor: one sender, `listeners` sockets,
    each message sent once every listener has the one before, its reply awaited."""
    meter = Meter(pid)
    changed = asyncio.Event()
    async with AsyncExitStack() as stack:
        crowd = []
        for _ in range(listeners):
            reader, writer = await asyncio.open_connection(host, port)
            stack.callback(writer.close)
            writer.write(LISTENER)
            assert await reader.readexactly(1) == READY
            crowd.append(_Reader(reader, changed))
        reader, writer = await asyncio.open_connection(host, port)
        stack.callback(writer.close)
        writer.write(SENDER)
        assert await reader.readexactly(1) == READY
        sender = _Reader(reader, asyncio.Event())

        async def send(number: int, text: str) -> None:
            data = text.encode()
            writer.write(len(data).to_bytes(4, "big") + data)
            await sender.frame()

        meter.start()
        await latency.paced(crowd, changed, size, send)
        sample = meter.stop(size * listeners)
    latencies = [ns for listener in crowd for ns in listener.latencies_ns]
    return dataclasses.replace(sample, extra=latency.figures(size, listeners, latencies))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
