"""Web door attacks on raw TCP: request heads sent a byte at a time (slowloris), idle and
keep-alive connections by the hundred, gRPC-Web bodies that stall, and bodies whose
Content-Encoding lies. The held ones keep up to HELD connections open, past the per-address
limit, opening new ones as the server closes old ones.

Their servers run with the web door's clocks at 2 s, so that a short run sees them strike; the
full run meets the same clocks many times over.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from abuse.harness import Attack, AttackRun, Target
from chat.contract import GET_STATS, SEND_AND_RECEIVE
from chat.server.http2.base import grpc_message
from gen.grpc.chat import MessageRequest

HELD = 300
"""Connections an attack keeps open at once: more than a client address may hold (256)."""
TRICKLE_SECONDS = 1.0
"""How often a slowloris sends its next byte."""
CLOCKS = (
    "--web-header-timeout",
    "2",
    "--web-keepalive-timeout",
    "2",
    "--web-body-timeout",
    "2",
)
"""The web door's clocks for these attacks: short enough to strike in a short run."""
HEAD = "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
GRPC_WEB = "Content-Type: application/grpc-web+proto\r\n"

Hold = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
"""What one held connection does once open (the int counts the connections opened so far)."""


async def holding(target: Target, seconds: float, hold: Hold) -> None:
    """Keeps up to HELD connections to the web door, each doing `hold` until the server ends
    it, for `seconds`."""
    end = time.monotonic() + seconds
    held: set[asyncio.Task[None]] = set()
    opened = 0
    try:
        while time.monotonic() < end:
            while len(held) < HELD and time.monotonic() < end:
                try:
                    reader, writer = await asyncio.open_connection(target.host, target.web_port)
                except OSError:  # refused: over the server's limit
                    break
                task = asyncio.create_task(_held(reader, writer, hold, opened))
                opened += 1
                held.add(task)
                task.add_done_callback(held.discard)
            await asyncio.sleep(0.2)  # pacing: the attacker's own loop, not a wait for the server
    finally:
        for task in list(held):
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def _held(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: Hold, number: int
) -> None:
    """`hold`, while what the server sends is read and dropped; over when it closes."""
    draining = asyncio.create_task(_drain(reader))
    try:
        with contextlib.suppress(OSError):
            await hold(reader, writer, number)
        await draining
    finally:
        draining.cancel()
        writer.transport.abort()


async def _drain(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass


async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
    """A request head that never ends: a byte a second."""
    writer.write(HEAD.format(method="GET", path="/").encode())
    while not reader.at_eof():
        writer.write(b"X")
        await writer.drain()
        await asyncio.sleep(TRICKLE_SECONDS)


async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
    """Half the connections send nothing; the others one request for the page, then nothing
    (a keep-alive connection left idle)."""
    if number % 2:
        writer.write(HEAD.format(method="GET", path="/").encode() + b"\r\n")
    await reader.read(0)  # nothing more: the drain reads until the server closes


async def stalled_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
) -> None:
    """A gRPC-Web POST announcing its body and sending a part of it: 2 of GetStats' 5 bytes,
    or 30 KB of a 60 KB chat message."""
    if number % 2:
        path, body = GET_STATS, grpc_message(b"")
    else:
        path, body = SEND_AND_RECEIVE, grpc_message(bytes(MessageRequest(message="x" * 60_000)))
    head = HEAD.format(method="POST", path=path) + GRPC_WEB + f"Content-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body[: len(body) // 2])


async def lying_encoding(target: Target, seconds: float) -> None:
    """gRPC-Web POSTs saying gzip or deflate over bytes that are neither, from 20 connections
    at a time, each answered and closed, as fast as the server answers."""
    end = time.monotonic() + seconds
    body = grpc_message(b"")

    async def lie(number: int) -> None:
        encoding = ("gzip", "deflate")[number % 2]
        head = HEAD.format(method="POST", path=GET_STATS) + GRPC_WEB
        head += f"Content-Encoding: {encoding}\r\nContent-Length: {len(body)}\r\n\r\n"
        while time.monotonic() < end:
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection(target.host, target.web_port)
                try:
                    writer.write(head.encode() + body)
                    await reader.read()  # the answer, then the server closes
                finally:
                    writer.transport.abort()

    await asyncio.gather(*(lie(number) for number in range(20)))


def held(hold: Hold) -> AttackRun:
    async def run(target: Target, seconds: float) -> None:
        await holding(target, seconds, hold)

    return run


ATTACKS = [
    Attack(
        "web-slowloris",
        held(slowloris),
        about=f"up to {HELD} web connections sending a request head a byte a second",
        flags=CLOCKS,
        web=True,
        short_seconds=3.0,
        short_rss_settle=0.10,
    ),
    Attack(
        "web-idle-flood",
        held(idle),
        about=f"up to {HELD} web connections: half silent, half idle after one request",
        flags=CLOCKS,
        web=True,
        short_seconds=3.0,
        short_rss_settle=0.10,
    ),
    Attack(
        "web-stalled-body",
        held(stalled_body),
        about=f"up to {HELD} gRPC-Web POSTs that send half their announced body, then stall",
        flags=CLOCKS,
        web=True,
        short_seconds=3.0,
        short_rss_settle=0.10,
    ),
    Attack(
        "web-lying-encoding",
        lying_encoding,
        about="gRPC-Web POSTs saying gzip or deflate over plain bytes, 20 connections at once",
        web=True,
        short_seconds=3.0,
        short_rss_settle=0.10,
    ),
]
