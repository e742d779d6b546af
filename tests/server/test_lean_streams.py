"""The fast transport's streams against grpclib's own: the same fields, the same buffer reads,
the same event and queue behaviour, for a fraction of the memory."""

import asyncio
import collections
import tracemalloc
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Cardinality
from grpclib.protocol import Buffer, Connection, Stream
from h2.config import H2Configuration
from h2.connection import H2Connection
from hypothesis import given, settings
from hypothesis import strategies as st

from chat import contract
from chat.server.config import Settings
from chat.server.http2.direct_impl import DirectTransport
from chat.server.http2.streams_impl import (
    SHARED_HEADERS,
    Fifo,
    LeanBuffer,
    LeanConnection,
    Pending,
    Signal,
    shared_headers,
)
from chat.server.service import ChatService
from chat.store.memory import MemoryStore
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    StatsRequest,
)
from harness import free_port

BIDI = contract.SEND_AND_RECEIVE


class NoTransport(asyncio.Transport):
    """Takes writes and drops them: the streams here send nothing that matters."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def connections() -> tuple[Connection, LeanConnection]:
    def one(kind: type[Connection]) -> Any:
        h2 = H2Connection(H2Configuration(client_side=False))
        h2.initiate_connection()
        return kind(h2, NoTransport(), config=Configuration())

    return one(Connection), one(LeanConnection)


async def test_a_lean_stream_has_every_field_of_grpclibs_and_no_other() -> None:
    grpclib_connection, lean_connection = connections()
    theirs = grpclib_connection.create_stream(stream_id=1)
    ours = lean_connection.create_stream(stream_id=1)
    assert type(ours) is not Stream
    assert vars(ours).keys() == vars(theirs).keys()
    assert vars(ours.buffer).keys() == vars(theirs.buffer).keys()
    assert (ours.id, ours.headers, ours.trailers, ours.wrapper) == (1, None, None, None)
    assert lean_connection.streams_started == grpclib_connection.streams_started == 1
    assert lean_connection.last_stream_created == ours.created
    client_side = lean_connection.create_stream()  # grpclib's clients open streams this way
    assert vars(client_side).keys() == vars(grpclib_connection.create_stream()).keys()


async def test_a_lean_stream_takes_a_fraction_of_the_memory_of_grpclibs() -> None:
    grpclib_connection, lean_connection = connections()

    def cost(connection: Connection) -> int:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            streams = [connection.create_stream(stream_id=2 * i + 1) for i in range(100)]
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(streams) == 100
        return grown // 100

    theirs, ours = cost(grpclib_connection), cost(lean_connection)
    assert ours * 5 < theirs, (ours, theirs)


Reads = list[tuple[str, int]]


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(min_value=0, max_value=9)),
            st.tuples(st.just("read"), st.integers(min_value=0, max_value=12)),
        ),
        max_size=20,
    ),
    end=st.booleans(),
)
def test_a_lean_buffer_reads_what_grpclibs_reads(steps: Reads, end: bool) -> None:
    """Chunks added, reads of any size (each read only once enough has come, or the end),
    the end of the stream: the same bytes, the same errors, the same acknowledgements."""
    assert run_buffer(Buffer, steps, end) == run_buffer(LeanBuffer, steps, end)


def run_buffer(kind: Callable[[partial[None]], Buffer], steps: Reads, end: bool) -> list[object]:
    async def run() -> list[object]:
        seen: list[object] = []
        buffer = kind(partial(seen.append))
        added = taken = 0
        counter = iter(range(10**6))
        for step, size in steps:
            if step == "add":
                buffer.add(bytes([next(counter) % 256 for _ in range(size)]), size + 1)
                added += size
            elif size <= added - taken:
                seen.append(await buffer.read(size))
                taken += size
        if end:
            buffer.eof()
            try:
                seen.append(await buffer.read(added - taken + 1))
                seen.append(await buffer.read(1))
            except AssertionError as error:
                seen.append(f"AssertionError: {error}")
        seen.append(buffer.unacked_size())
        return seen

    return asyncio.run(run())


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=30), max_size=30),
)
def test_a_lean_buffer_tells_when_a_whole_message_waits(sizes: list[int], cuts: list[int]) -> None:
    """Messages arriving in chunks cut anywhere, each read once it is whole: after every
    chunk and every read, `holds_message` says whether the next one is all here."""
    data = b"".join(b"\0" + size.to_bytes(4, "big") + bytes(range(size)) for size in sizes)

    async def run() -> None:
        buffer = LeanBuffer(partial(lambda size: None))
        arrived = read = next_message = 0
        for cut in [*cuts, len(data)]:
            chunk = data[arrived : arrived + cut]
            if chunk:
                buffer.add(chunk, len(chunk))
                arrived += len(chunk)
            while True:
                whole = next_message < len(sizes) and arrived - read >= 5 + sizes[next_message]
                assert buffer.holds_message() is whole
                if not whole:
                    break
                size = sizes[next_message]
                assert await buffer.read(5 + size) == data[read : read + 5 + size]
                read += 5 + size
                next_message += 1
        assert next_message == len(sizes)

    asyncio.run(run())


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.sampled_from(["append", "popleft", "first", "replace"]), max_size=400))
def test_a_fifo_behaves_as_a_deque_does(steps: list[str]) -> None:
    """Long runs included, where it drops the items it handed out as it goes."""
    fifo: Fifo[int] = Fifo()
    deque: collections.deque[int] = collections.deque()
    for number, step in enumerate(steps):
        if step == "append":
            fifo.append(number)
            deque.append(number)
        elif not deque:
            with pytest.raises(IndexError):
                fifo.popleft() if step == "popleft" else fifo[0]
        elif step == "popleft":
            assert fifo.popleft() == deque.popleft()
        elif step == "first":
            assert fifo[0] == deque[0]
        else:
            fifo[0] = deque[0] = -number
        assert len(fifo) == len(deque)
    assert [fifo.popleft() for _ in range(len(fifo))] == list(deque)


def test_a_fifo_hands_out_a_long_run_without_keeping_it() -> None:
    """What was handed out is dropped as the run goes, not kept until the fifo empties."""
    tracemalloc.start()
    try:
        fifo: Fifo[int] = Fifo()
        for number in range(100_000):
            fifo.append(number + 1_000)
        full = tracemalloc.get_traced_memory()[0]
        total = sum(fifo.popleft() for _ in range(99_990))
        left = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert total == sum(range(1_000, 100_990)) and len(fifo) == 10
    assert left < full / 10, (left, full)


async def test_a_signal_wakes_its_waiters_as_an_event_does() -> None:
    async def script(event: Any) -> list[str]:
        log: list[str] = []

        async def waiter(name: str) -> None:
            await event.wait()
            log.append(name)

        tasks = [asyncio.create_task(waiter(name)) for name in "abc"]
        await asyncio.sleep(0)
        tasks[1].cancel()
        log.append(f"set before: {event.is_set()}")
        event.set()
        event.clear()  # a waiter woken by the set wakes still
        await asyncio.gather(*tasks, return_exceptions=True)
        log.append(f"cancelled: {tasks[1].cancelled()}, set after: {event.is_set()}")
        event.set()
        await event.wait()  # set: returns at once
        log.append("waited")
        return log

    expected = await script(asyncio.Event())
    assert await script(Signal()) == expected
    assert expected[:2] == ["set before: False", "a"]


async def test_pending_hands_out_items_as_a_queue_does() -> None:
    async def script(queue: Any) -> list[object]:
        log: list[object] = []

        async def getter(name: str) -> None:
            log.append((name, await queue.get()))

        first, second, third = (asyncio.create_task(getter(name)) for name in "abc")
        await asyncio.sleep(0)
        queue.put_nowait(1)
        first.cancel()  # woken for 1, cancelled before it ran: 1 goes to the next getter
        await asyncio.sleep(0)
        queue.put_nowait(2)
        await asyncio.gather(first, second, third, return_exceptions=True)
        queue.put_nowait(3)
        queue.put_nowait(4)
        log += [queue.qsize(), queue.empty(), queue.get_nowait(), await queue.get(), queue.empty()]
        with pytest.raises(asyncio.QueueEmpty):
            queue.get_nowait()
        return log

    expected = await script(asyncio.Queue())
    assert await script(Pending()) == expected
    assert expected[:2] == [("b", 1), ("c", 2)]


async def test_a_lean_buffer_tells_once_when_something_arrives() -> None:
    told: list[str] = []
    buffer = LeanBuffer(partial(lambda size: None))
    buffer.when_readable(lambda: told.append("first bytes"))
    assert told == []
    buffer.add(b"\0\0", 2)
    buffer.add(b"\0", 1)
    assert told == ["first bytes"]
    buffer.when_readable(lambda: told.append("already there"))
    assert told == ["first bytes", "already there"]

    ended = LeanBuffer(partial(lambda size: None))
    ended.when_readable(lambda: told.append("the end"))
    ended.eof()
    assert told[-1] == "the end"

    forgotten = LeanBuffer(partial(lambda size: None))
    cancel = forgotten.when_readable(lambda: told.append("never"))
    cancel()
    forgotten.add(b"\0", 1)
    forgotten.eof()
    assert "never" not in told


async def test_an_idle_chat_stream_holds_no_receiving_task_until_it_sends() -> None:
    """On the fast transport over TCP: an idle SendAndReceiveMessage stream is its call's task
    and its sending task; the receiving one starts with its first request, which is answered
    as before, and its half-close ends the call with OK."""
    service = ChatService(MemoryStore(), Settings(store="memory://", http2="direct", rate_limit=0))
    assert isinstance(service.transport, DirectTransport)
    server = service.transport.server([service], service.codec)
    port = free_port()
    await server.start("127.0.0.1", port)
    channel = Channel("127.0.0.1", port)
    stub = ChatServiceStub(channel)
    try:
        await stub.get_stats(StatsRequest())  # the connection is up before counting
        before = len(asyncio.all_tasks())
        async with AsyncExitStack() as stack:
            streams = []
            for _ in range(5):
                stream = channel.request(
                    BIDI, Cardinality.STREAM_STREAM, MessageRequest, MessageReply
                )
                await stack.enter_async_context(stream)
                await stream.send_request()
                await stream.recv_initial_metadata()
                streams.append(stream)
            assert (await stub.get_stats(StatsRequest())).num_connected == 5
            assert len(asyncio.all_tasks()) - before == 2 * 5
            talker = streams[0]
            await talker.send_message(MessageRequest(message="hello"))
            reply = await talker.recv_message()
            assert reply is not None and reply.kind is MessageReplyKind.ACK
            assert len(asyncio.all_tasks()) - before == 2 * 5 + 1
            await talker.end()
            assert await talker.recv_message() is None
            await talker.recv_trailing_metadata()  # OK: grpclib raises for any other status
            for stream in streams[1:]:
                await stream.cancel()
    finally:
        channel.close()
        service.shut_down()
        server.close()
        await server.wait_closed()


def test_common_request_headers_are_shared_and_private_ones_are_not() -> None:
    def request(user: str) -> list[tuple[str, str]]:
        def fresh(text: str) -> str:
            return "".join(list(text))  # a new string each time, as a request's are decoded

        common = [(":method", "POST"), (":path", BIDI), ("te", "trailers"), ("user-agent", "g/1")]
        return [
            *((fresh(name), fresh(value)) for name, value in common),
            (fresh("chat-user"), fresh(user)),
            (fresh("authorization"), fresh("Bearer secret")),
        ]

    first, second = shared_headers(request("ann")), shared_headers(request("ann"))
    assert first == second == request("ann")
    for one, other in zip(first, second, strict=True):
        assert (one is other) == (one[0] in SHARED_HEADERS)
    assert sum(header[0] in SHARED_HEADERS for header in first) == 4
