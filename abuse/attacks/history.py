"""Histories asked for and never read: a client opens GetMessages on a long history, gives no
flow-control credit, and hangs up, a hundred calls at a time, on the gRPC port and on the web
door.

Each call may hold what it has read and encoded ahead of the client's window; once it ends, all
of that must be freed, so the server's memory comes back to where it was however often it
happens. The history lives in SQLite (on disk) and is stored before the server is measured
idle, so what the store keeps does not hide what the calls leave behind.
"""

import asyncio
import contextlib
import itertools
import time

from abuse.attacker import RawClient, request_headers
from abuse.attacks.store import Flooder, framed
from abuse.harness import Attack, Target
from chat.contract import GET_MESSAGES, SEND_AND_RECEIVE
from chat.server.http2.base import grpc_message
from gen.grpc.chat import MessageRequest, MessagesRequest

HISTORY = 2_000
"""Messages in the history each call asks for."""
TEXT = "h" * 4000
"""Each message's text: 4 KB, so a history of 8 MB."""
CALLS = 100
"""Calls opened at once in a round, each on its own connection, then all hung up."""
HELD_SECONDS = 1.0
"""How long a round's calls stay open, unread, before they hang up."""
WEB_REQUEST = (
    b"POST " + GET_MESSAGES.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/grpc-web+proto\r\nContent-Length: 5\r\n\r\n"
    + grpc_message(bytes(MessagesRequest()))
)
"""A gRPC-Web GetMessages of the whole history, as a raw HTTP/1.1 request."""


async def fill_history(target: Target, seconds: float) -> None:
    """Stores HISTORY messages of TEXT (however long it takes): one stream sends them,
    half-closes, and is done when the server has ACKed them all and ended the call."""
    flooder = await Flooder.connect(target)
    try:
        stream_id = flooder.open(SEND_AND_RECEIVE, (("chat-user", "filler"),))
        requests = itertools.repeat(MessageRequest(message=TEXT), HISTORY)
        await flooder.send(stream_id, framed(requests, 16), end=True)
        while flooder.alive and stream_id in flooder.open_streams:
            flooder.credit.clear()
            await flooder.credit.wait()
    finally:
        await flooder.close()


async def unread_grpc(target: Target) -> None:
    """A round on the gRPC port: CALLS history calls, never read, then hung up."""
    clients = []
    try:
        for _ in range(CALLS):
            client = await RawClient.connect(target.host, target.port)
            clients.append(client)
            stream_id = client.h2.get_next_available_stream_id()
            client.h2.send_headers(stream_id, request_headers(GET_MESSAGES))
            client.h2.send_data(stream_id, grpc_message(bytes(MessagesRequest())), end_stream=True)
            await client.flush()
        await asyncio.sleep(HELD_SECONDS)
    finally:
        for client in clients:
            await client.close()


async def unread_web(target: Target) -> None:
    """A round on the web door: CALLS gRPC-Web history calls whose responses are never read,
    then the connections dropped."""
    writers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(CALLS):
            _, writer = await asyncio.open_connection(target.host, target.web_port)
            writers.append(writer)
            writer.write(WEB_REQUEST)
            await writer.drain()
        await asyncio.sleep(HELD_SECONDS)
    finally:
        for writer in writers:
            writer.transport.abort()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def histories_never_read(target: Target, seconds: float) -> None:
    """Rounds on the gRPC port (and the web door, when the server has one) until `seconds`
    pass; at least one round each."""
    end = time.monotonic() + seconds
    while True:
        await unread_grpc(target)
        if target.web_port:
            await unread_web(target)
        if time.monotonic() >= end:
            return


ATTACKS = [
    Attack(
        "history-never-read",
        histories_never_read,
        about=f"{HISTORY:,} messages of 4 KB in SQLite; rounds of {CALLS} GetMessages calls on "
        "the gRPC port and the web door that never read their replies, then hang up",
        store="sqlite:///{workdir}/chat.db",
        web=True,
        prepare=fill_history,
        short_seconds=3.0,
        short_rss_settle=0.6,
    ),
]
