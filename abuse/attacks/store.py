"""Attacks on what the server keeps and checks: floods of tiny and of large messages into the
memory store, a hundred thousand rooms, a flood that claims a new name each message, and
guessed tokens.

They drive h2 connections of their own, which read every reply and give its flow-control
credit back at once, so the server is never slowed down by the attacker's reading: what holds
the flood back is the server's own limits. Each connection comes from its own loopback address
when asked, so that limits per address meet the attacker and not the probes.
"""

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Iterator

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.exceptions import H2Error

from abuse.attacker import hang_up, request_headers
from abuse.harness import Attack, Target
from chat.contract import GET_STATS, SEND_AND_RECEIVE
from chat.server.http2.base import grpc_message
from gen.grpc.chat import MessageRequest, StatsRequest

ATTACKER_ADDRESS = "127.0.0.2"
"""Where the token guesser and the name-rotating flood connect from: another loopback address
than the probes'."""
TOKEN = "the-right-token"
"""The token of the server the guesser attacks; the probes have it."""
SMALL_BUDGET = 2 * 1024 * 1024
"""The memory store's budget where an attack fills it: small enough that the server's RSS can
come back near its idle figure, as the harness checks (what the store keeps stays kept)."""
ROOMS = 100_000
"""Rooms the many-rooms attack posts to, one message each."""
IN_FLIGHT = 50
"""Guesses open at once on a connection (the server allows more streams than this)."""
ROTATING_CONNECTIONS = 4
"""Connections of the name-rotating flood, each one stream claiming a new name per message."""
RATE_LIMIT = 10
"""Messages a second a user may send, in the attack on flood control (the default)."""


class Flooder:
    """One h2 connection: sends what it is given as fast as flow control allows, reads every
    reply, gives the credit back, and counts the statuses its streams end with."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = H2Connection(H2Configuration(client_side=True))
        self.statuses: Counter[str] = Counter()
        self.open_streams: set[int] = set()
        self.credit = asyncio.Event()
        """Set when the server granted more window or ended a stream."""
        self.alive = True
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, target: Target, source: str | None = None) -> "Flooder":
        reader, writer = await asyncio.open_connection(
            target.host, target.port, local_addr=(source, 0) if source else None
        )
        flooder = cls(reader, writer)
        flooder.h2.initiate_connection()
        await flooder.flush()
        return flooder

    def open(self, path: str, extra: tuple[tuple[str, str], ...] = ()) -> int:
        """Sends a request's headers; its stream id."""
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, request_headers(path, extra))
        self.open_streams.add(stream_id)
        return stream_id

    async def send(self, stream_id: int, chunks: Iterator[bytes], end: bool = False) -> bool:
        """Sends `chunks` on the stream, waiting for window when it runs out; False when the
        connection ended first."""
        for chunk in chunks:
            data = memoryview(chunk)
            while data:
                if not self.alive:
                    return False
                window = min(
                    self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size
                )
                if window <= 0:
                    self.credit.clear()
                    await self.flush()
                    await self.credit.wait()
                    continue
                self.h2.send_data(stream_id, data[:window].tobytes())
                data = data[window:]
                await self.flush()
        if end:
            self.h2.end_stream(stream_id)
            await self.flush()
        return self.alive

    async def flush(self) -> None:
        if self.writer.is_closing():
            self.alive = False
            return
        self.writer.write(self.h2.data_to_send())
        try:
            await self.writer.drain()
        except OSError:
            self.alive = False

    async def _read(self) -> None:
        with contextlib.suppress(OSError, H2Error):
            while data := await self.reader.read(65536):
                for event in self.h2.receive_data(data):
                    self._handle(event)
                self.writer.write(self.h2.data_to_send())
        self.alive = False
        self.credit.set()

    def _handle(self, event: object) -> None:
        if isinstance(event, DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, TrailersReceived | ResponseReceived):
            status = dict(event.headers).get(b"grpc-status")  # a trailers-only reply too
            if status is not None:
                self.statuses[status.decode()] += 1
        elif isinstance(event, StreamEnded | StreamReset):
            self.open_streams.discard(event.stream_id)
            if isinstance(event, StreamReset):
                self.statuses["reset"] += 1
        elif isinstance(event, ConnectionTerminated):
            self.alive = False
        self.credit.set()

    async def close(self) -> None:
        await hang_up(self.writer, self._reading)


def framed(requests: Iterator[MessageRequest], per_chunk: int) -> Iterator[bytes]:
    """The requests as gRPC messages, `per_chunk` to a chunk."""
    while chunk := b"".join(grpc_message(bytes(r)) for r in itertools.islice(requests, per_chunk)):
        yield chunk


async def flood(
    target: Target,
    seconds: float,
    requests: Iterator[MessageRequest],
    source: str | None = None,
) -> None:
    """Posts `requests` on one chat stream until `seconds` pass or they run out, reconnecting
    when the server ends the stream or the connection; from `source` when given."""
    end = time.monotonic() + seconds

    def until_the_end() -> Iterator[MessageRequest]:
        for request in requests:
            if time.monotonic() >= end:
                return
            yield request

    bounded = until_the_end()
    while time.monotonic() < end:
        flooder = await Flooder.connect(target, source)
        try:
            stream_id = flooder.open(SEND_AND_RECEIVE, (("chat-user", "flood"),))
            with contextlib.suppress(H2Error):  # the server ended the stream: a new one
                if await flooder.send(stream_id, framed(bounded, 256)):
                    return  # the requests ran out
        finally:
            await flooder.close()


async def tiny_messages(target: Target, seconds: float) -> None:
    """One connection, one stream: 8-byte messages, as many as flow control lets through."""
    await flood(target, seconds, itertools.repeat(MessageRequest(message="x")))


async def large_texts(target: Target, seconds: float) -> None:
    """Four connections posting 8 KiB texts, each to a room of its own."""
    text = "x" * 8192

    async def one(room: str) -> None:
        await flood(target, seconds, itertools.repeat(MessageRequest(message=text, room=room)))

    await asyncio.gather(*(one(f"big-{n}") for n in range(4)))


async def many_rooms(target: Target, seconds: float) -> None:
    """One stream posting one message to each of 100,000 rooms."""
    rooms = (f"room-{n}" for n in range(ROOMS))
    await flood(target, seconds, (MessageRequest(message="hi", room=room) for room in rooms))


async def rotating_names(target: Target, seconds: float) -> None:
    """ROTATING_CONNECTIONS connections from ATTACKER_ADDRESS, each one stream of tiny
    messages, every message posted as a name not used before."""

    def names(connection: int) -> Iterator[MessageRequest]:
        for number in itertools.count():
            yield MessageRequest(message="x", user=f"flood-{connection}-{number}")

    await asyncio.gather(
        *(
            flood(target, seconds, names(connection), ATTACKER_ADDRESS)
            for connection in range(ROTATING_CONNECTIONS)
        )
    )


async def guess_tokens(target: Target, seconds: float) -> Counter[str]:
    """GetStats with a new wrong token each time, IN_FLIGHT at once, from ATTACKER_ADDRESS;
    the statuses the guesses got."""
    end = time.monotonic() + seconds
    statuses: Counter[str] = Counter()
    request = grpc_message(bytes(StatsRequest()))
    guesses = itertools.count()
    while time.monotonic() < end:
        flooder = await Flooder.connect(target, ATTACKER_ADDRESS)
        try:
            while flooder.alive and time.monotonic() < end:
                while len(flooder.open_streams) < IN_FLIGHT:
                    guess = (("authorization", f"Bearer guess-{next(guesses)}"),)
                    stream_id = flooder.open(GET_STATS, guess)
                    await flooder.send(stream_id, iter([request]), end=True)
                flooder.credit.clear()
                await flooder.credit.wait()
        except H2Error:
            pass  # the server ended the connection: a new one
        finally:
            statuses += flooder.statuses
            await flooder.close()
    return statuses


async def wrong_tokens(target: Target, seconds: float) -> None:
    await guess_tokens(target, seconds)


ATTACKS = [
    Attack(
        "memory-tiny-flood",
        tiny_messages,
        about="one raw connection floods a memory store with 8-byte messages "
        "(--max-memory-bytes 2 MiB)",
        flags=("--max-memory-bytes", str(SMALL_BUDGET)),
    ),
    Attack(
        "memory-8k-flood",
        large_texts,
        about="four connections post 8 KiB texts into a memory store (--max-memory-bytes 2 MiB, "
        "so that RSS can come back near idle: the default 64 MiB is kept, as history is)",
        flags=("--max-memory-bytes", str(SMALL_BUDGET)),
    ),
    Attack(
        "many-rooms",
        many_rooms,
        about="one stream posts once to each of 100,000 rooms (--max-rooms 1000, so that what "
        "the store keeps of them does not hide what RSS does)",
        flags=("--max-rooms", "1000"),
    ),
    Attack(
        "redis-many-rooms",
        many_rooms,
        about="one stream posts once to each of 100,000 rooms of a Redis store past --max-rooms "
        "1000: each refusal costs a count, never a read of every room's name",
        store="redis://{redis}/0",
        flags=("--max-rooms", "1000"),
    ),
    Attack(
        "rotating-names",
        rotating_names,
        about=f"{ROTATING_CONNECTIONS} connections from {ATTACKER_ADDRESS} post tiny messages, "
        f"each as a new user, into a memory store with flood control on ({RATE_LIMIT}/s a user)",
        flags=("--rate-limit", str(RATE_LIMIT)),
    ),
    Attack(
        "wrong-tokens",
        wrong_tokens,
        about=f"wrong shared-token guesses, {IN_FLIGHT} at once, from {ATTACKER_ADDRESS}",
        flags=("--token", TOKEN),
        token=TOKEN,
    ),
]
