"""Calls driven over grpclib and gRPC-Web bytes, and a service served in process exactly as
`serve()` serves it."""

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat.client.status import raise_status
from chat.contract import SEND_AND_RECEIVE, bearer
from chat.server.app import grpc_server
from chat.server.health import HealthChecks
from chat.server.service import ChatService
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    StatsRequest,
)
from harness.paths import ROOT
from harness.processes import ServerProcess, free_port

REPLY_TIMEOUT = 10.0
"""Seconds a test waits for a reply before it fails instead of hanging."""


@asynccontextmanager
async def serving(service: ChatService) -> AsyncIterator[Channel]:
    """`service` on a loopback port, served by the server `serve()` builds for it (its
    transport's own, with health, reflection and its limits), and a grpclib Channel to it;
    both closed at the end."""
    server = grpc_server(service, HealthChecks(service.store, service))
    port = free_port()
    await server.start("127.0.0.1", port)
    channel = Channel("127.0.0.1", port)
    try:
        yield channel
    finally:
        channel.close()
        server.close()
        await server.wait_closed()


class Chatter:
    """One SendAndReceiveMessage stream; `recv` fails the test instead of hanging.

    Leaving the exit stack hangs up (RST_STREAM) a stream that has not ended by itself.
    """

    def __init__(self, stream: Stream[Any, MessageReply]) -> None:
        self.stream = stream
        self.ended = False
        self.error: Exception | None = None

    @classmethod
    async def open(
        cls, stack: AsyncExitStack, channel: Channel, token: str = "", **metadata: str
    ) -> "Chatter":
        """Opens a stream with `chat-*` metadata (user="ann": chat-user), and `token` as the
        bearer token when given."""
        md = {f"chat-{key.replace('_', '-')}": value for key, value in metadata.items()}
        md.update(bearer(token) if token else {})
        stream = channel.request(
            SEND_AND_RECEIVE, Cardinality.STREAM_STREAM, MessageRequest, MessageReply, metadata=md
        )
        await stream.__aenter__()
        chatter = cls(stream)
        stack.push_async_callback(chatter.hang_up)
        await stream.send_request()
        return chatter

    async def hang_up(self) -> None:
        if not self.ended:
            self.ended = True
            await self.stream.cancel()
        error = self.error
        with contextlib.suppress(GRPCError):  # the status the test has already seen
            await self.stream.__aexit__(type(error) if error else None, error, None)

    async def send(self, text: str, **fields: Any) -> None:
        await self.stream.send_message(MessageRequest(message=text, **fields))

    async def recv(self) -> MessageReply | None:
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                reply = await self.stream.recv_message()
            if reply is None:
                self.ended = True
                raise_status(self.stream)
        except StreamTerminatedError as error:  # reset after the trailers: they say why
            self.ended, self.error = True, error
            raise_status(self.stream)
            raise
        except Exception as error:
            self.ended, self.error = True, error
            raise
        return reply

    async def recv_kind(self, kind: int) -> MessageReply:
        """The next reply of `kind`, skipping the others but ERROR."""
        while True:
            reply = await self.recv()
            assert reply is not None, f"stream ended while waiting for {kind!r}"
            if reply.kind == kind:
                return reply
            assert reply.kind != MessageReplyKind.ERROR, reply

    async def say(self, text: str, **fields: str) -> MessageReply:
        """Sends and waits for the ACK."""
        await self.send(text, **fields)
        return await self.recv_kind(MessageReplyKind.ACK)


async def seen_online(
    chatter: Chatter, stub: ChatServiceStub, room: str, everyone: set[str]
) -> set[str]:
    """Who a stream sees online in `room`, kept as a client keeps it: the snapshot asked once
    the stream is in its room (its response headers came), then every JOIN and LEAVE after;
    returned once it holds `everyone`, or the test fails after REPLY_TIMEOUT."""
    await chatter.stream.recv_initial_metadata()
    online = set((await stub.get_stats(StatsRequest(room=room))).online)
    async with asyncio.timeout(REPLY_TIMEOUT):
        while not everyone <= online:
            reply = await chatter.recv()
            assert reply is not None, f"the stream ended seeing only {sorted(online)}"
            if reply.kind == MessageReplyKind.JOIN:
                online.add(reply.user)
            elif reply.kind == MessageReplyKind.LEAVE:
                online.discard(reply.user)
    return online


class RawRequests(ProtoCodec):
    """A client codec that sends bytes as they are: for requests no generated class would
    write (cut, oversized, mutated)."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if type(message) is bytes:
            return message
        return super().encode(message, message_type)


def grpc_web_body(*messages: bytes) -> bytes:
    """Requests in gRPC-Web's framing (flag byte, big-endian length), written here and not by
    the server's code, so that tests check the server against the protocol."""
    return b"".join(b"\x00" + len(message).to_bytes(4, "big") + message for message in messages)


def grpc_web_reply(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """A gRPC-Web response body: its messages, and the trailers of its last frame (0x80)."""
    messages: list[bytes] = []
    trailers: dict[str, str] = {}
    while body:
        flags, size = body[0], int.from_bytes(body[1:5], "big")
        payload, body = body[5 : 5 + size], body[5 + size :]
        assert len(payload) == size, "a frame is cut short"
        if flags == 0x80:
            assert not body, "the trailer frame is not the last"
            for line in payload.decode("ascii").split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    trailers[key.strip()] = value.strip()
        else:
            assert flags == 0, f"frame flags {flags:#x}"
            messages.append(payload)
    return messages, trailers


async def http_exchange(url: str, request: bytes, seconds: float = REPLY_TIMEOUT) -> bytes:
    """Sends `request` as it is (bytes no HTTP client would write) to the host and port of
    `url` and returns everything the server answers until it closes the connection."""
    host, _, port = url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port.partition("/")[0]))
    try:
        writer.write(request)
        async with asyncio.timeout(seconds):
            return await reader.read()
    finally:
        writer.close()


class PipedClient:
    """`python -m chat.client chat` reading lines from a pipe and printing every reply."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, server: ServerProcess, user: str, room: str) -> "PipedClient":
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "chat.client", "--server", server.address, "chat"),
            *("--user", user, "--room", room),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return cls(proc)

    async def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{text}\n".encode())
        await self.proc.stdin.drain()

    async def printed(self, wanted: str) -> str:
        """The next printed line that ends with `wanted`."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(REPLY_TIMEOUT):
            while True:
                printed = (await self.proc.stdout.readline()).decode()
                assert printed, f"the client ended before printing {wanted!r}"
                if printed.rstrip("\n").endswith(wanted):
                    return printed

    async def finish(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return await asyncio.wait_for(self.proc.wait(), REPLY_TIMEOUT)
