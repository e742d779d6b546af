"""The load generator: the same grpclib client code drives the reference and the chat server.

Both speak the tutorial's wire protocol, so every workload sends the same bytes to either (a
MessageRequest with only `message` set, empty GetStats and GetMessages requests). Each workload
prepares what it needs, then measures only its own part with a Meter.
"""

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from grpclib.client import Channel, Stream, StreamStreamMethod, UnaryStreamMethod, UnaryUnaryMethod
from grpclib.encoding.proto import ProtoCodec
from grpclib.events import SendRequest, listen

from bench import latency
from bench.meter import Meter, Sample
from chat import contract
from gen.grpc.chat import (
    MessageReply,
    MessageRequest,
    MessagesRequest,
    StatsReply,
    StatsRequest,
)

SERVICE = f"/{contract.SERVICE}/"
CONCURRENCY = 32  # unary calls in flight at once
STREAMS_PER_CHANNEL = 50  # h2 allows a peer 100 open streams per connection by default

Progress = Callable[[int], None]
BidiStream = Stream[MessageRequest, MessageReply]


@dataclass(frozen=True)
class Endpoint:
    """A running server under load: where it listens and which process does its work."""

    host: str
    port: int
    pid: int
    metadata: tuple[tuple[str, str], ...] = ()  # sent with every call (a bearer token)

    def channel(self) -> Channel:
        channel = Channel(self.host, self.port)
        if self.metadata:
            headers = dict(self.metadata)

            async def add_metadata(event: SendRequest) -> None:
                event.metadata.update(headers)

            listen(channel, SendRequest, add_metadata)
        return channel


def _bidi(channel: Channel) -> StreamStreamMethod[MessageRequest, MessageReply]:
    return StreamStreamMethod(
        channel, SERVICE + "SendAndReceiveMessage", MessageRequest, MessageReply
    )


def _get_stats(channel: Channel) -> UnaryUnaryMethod[StatsRequest, StatsReply]:
    return UnaryUnaryMethod(channel, SERVICE + "GetStats", StatsRequest, StatsReply)


async def _reply_to(stream: BidiStream, text: str) -> None:
    """Waits for the server's answer to `text` (the tutorial's reply, our ACK), skipping others."""
    expected = f"Server Responding to {text}"
    while True:
        reply = await stream.recv_message()
        if reply is None:
            raise RuntimeError(f"the stream ended before the reply to {text!r}")
        if reply.message == expected:
            return


async def _chat(
    stream: BidiStream, texts: range, progress: Progress, *, keyed: bool = False
) -> None:
    """Sends each message and awaits its reply; `keyed`: each with its own message key, as
    the resending clients send them (a 32-digit key, as long as theirs)."""
    for i in texts:
        text = f"hello from the benchmark, message {i}"
        key = f"{i:032}" if keyed else ""
        await stream.send_message(MessageRequest(message=text, key=key))
        await _reply_to(stream, text)
        progress(i + 1)


async def _hang_up(stream: BidiStream) -> None:
    """Half-closes and reads what is left, so the call ends with OK on both servers."""
    await stream.end()
    async for _ in stream:
        pass


WARM_UP_MESSAGES = 100


async def warm_up(server: Endpoint, messages: int = WARM_UP_MESSAGES) -> None:
    """A few calls of each kind, so the first measurement does not pay for imports and caches."""
    async with server.channel() as channel:
        async with _bidi(channel).open() as stream:
            await stream.send_request()
            await _chat(stream, range(messages), lambda done: None)
            await _hang_up(stream)
        for _ in range(messages):
            await _get_stats(channel)(StatsRequest())


async def bidi(server: Endpoint, size: int, progress: Progress, *, keyed: bool = False) -> Sample:
    """One SendAndReceiveMessage stream; every reply awaited before the next message; `keyed`:
    every message with a key, which the server looks up and records."""
    meter = Meter(server.pid)
    async with server.channel() as channel, _bidi(channel).open() as stream:
        await stream.send_request()
        meter.start()
        await _chat(stream, range(size), progress, keyed=keyed)
        sample = meter.stop(size)
        await _hang_up(stream)
    return sample


async def history(server: Endpoint, progress: Progress) -> Sample:
    """GetMessages of everything stored (the messages of the bidi workload), read to the end."""
    meter = Meter(server.pid)
    async with server.channel() as channel:
        read = UnaryStreamMethod(channel, SERVICE + "GetMessages", MessagesRequest, MessageReply)
        meter.start()
        count = 0
        async with read.open() as stream:
            await stream.send_message(MessagesRequest(), end=True)
            async for _ in stream:
                count += 1
                progress(count)
        return meter.stop(count)


async def unary(server: Endpoint, size: int, progress: Progress) -> Sample:
    """GetStats, one call after the other."""
    meter = Meter(server.pid)
    async with server.channel() as channel:
        get_stats = _get_stats(channel)
        await get_stats(StatsRequest())
        meter.start()
        for done in range(1, size + 1):
            await get_stats(StatsRequest())
            progress(done)
        return meter.stop(size)


async def unary_concurrent(server: Endpoint, size: int, progress: Progress) -> Sample:
    """GetStats from CONCURRENCY callers at once on one connection, `size` calls in all."""
    meter = Meter(server.pid)
    done = 0

    async def caller(calls: int) -> None:
        nonlocal done
        for _ in range(calls):
            await get_stats(StatsRequest())
            done += 1
            progress(done)

    async with server.channel() as channel:
        get_stats = _get_stats(channel)
        await get_stats(StatsRequest())
        shares = [size // CONCURRENCY + (i < size % CONCURRENCY) for i in range(CONCURRENCY)]
        meter.start()
        async with asyncio.TaskGroup() as group:
            for calls in shares:
                group.create_task(caller(calls))
        return meter.stop(size)


async def _open_stream(
    stack: AsyncExitStack, channel: Channel, metadata: dict[str, str] | None = None
) -> Stream[MessageRequest, Any]:
    """A bidi stream left open until `stack` closes; it has sent its headers, nothing else."""
    stream = _bidi(channel).open(metadata=metadata)
    await stack.enter_async_context(stream)
    stack.push_async_callback(stream.cancel)
    await stream.send_request()
    return stream


async def _confirm_opened(channels: list[Channel]) -> None:
    """A call answered on each connection: the server has seen every stream opened before it."""
    for channel in channels:
        await _get_stats(channel)(StatsRequest())


class _RawReplies(ProtoCodec):
    """Leaves replies as bytes: a fan-out listener only looks for the send time in them, so the
    load generator spends little per delivery and the latency is mostly the server's."""

    def decode(self, data: bytes, message_type: Any) -> Any:
        return data


class _Listener:
    """Counts the chat messages one fan-out listener receives and how late each arrived."""

    def __init__(self, stream: Stream[MessageRequest, Any], changed: asyncio.Event) -> None:
        self.stream = stream
        self.received = 0
        self.latencies_ns: list[int] = []
        self._changed = changed

    async def listen(self, expected: int) -> None:
        while self.received < expected:
            reply = await self.stream.recv_message()
            now = time.perf_counter_ns()
            if reply is None:
                raise RuntimeError("a fan-out listener's stream ended early")
            sent_at = latency.SENT_AT.search(reply)
            if sent_at is None:  # someone joined
                continue
            self.latencies_ns.append(now - int(sent_at[1]))
            self.received += 1
            self._changed.set()


async def fanout(server: Endpoint, size: int, progress: Progress, listeners: int) -> Sample:
    """One sender, `listeners` streams in the same room, each on a connection of its own (as
    every user of a chat has); `size` messages, each ACK awaited.

    Each message is sent once every listener has the one before, so the latency (from just
    before the send to a listener's receipt, on this process's clock) is not a queue in this
    load generator, and no listener ever falls far enough behind to be cut off.
    """
    meter = Meter(server.pid)
    changed = asyncio.Event()
    channels = [Channel(server.host, server.port, codec=_RawReplies()) for _ in range(listeners)]
    async with AsyncExitStack() as stack:
        sender_channel = server.channel()
        for channel in [*channels, sender_channel]:
            stack.callback(channel.close)
        crowd = []
        for i in range(listeners):
            metadata = {"chat-room": "fanout", "chat-user": f"listener{i}"}
            stream = await _open_stream(stack, channels[i], metadata)
            crowd.append(_Listener(stream, changed))
        metadata = {"chat-room": "fanout", "chat-user": "sender"}
        sender = await _open_stream(stack, sender_channel, metadata)
        await _confirm_opened([*channels, sender_channel])

        async def send(number: int, text: str) -> None:
            await sender.send_message(MessageRequest(message=text))
            await _reply_to(sender, text)
            progress(number + 1)

        meter.start()
        await latency.paced(crowd, changed, size, send)
        deliveries = size * listeners
        sample = meter.stop(deliveries)
    latencies = [ns for listener in crowd for ns in listener.latencies_ns]
    return dataclasses.replace(sample, extra=latency.figures(size, listeners, latencies))


async def idle(server: Endpoint, size: int, progress: Progress) -> Sample:
    """`size` SendAndReceiveMessage streams opened and left open: what the server holds per stream.

    The streams sit in the default room and send nothing; RSS is read once every connection has
    answered a call made after its streams opened.
    """
    meter = Meter(server.pid)
    channels = [server.channel() for _ in range(math.ceil(size / STREAMS_PER_CHANNEL))]
    async with AsyncExitStack() as stack:
        for channel in channels:
            stack.callback(channel.close)
        await _confirm_opened(channels)  # connections up before the first reading
        meter.start()
        for i in range(size):
            await _open_stream(stack, channels[i // STREAMS_PER_CHANNEL])
            progress(i + 1)
        await _confirm_opened(channels)
        return meter.stop(size)
