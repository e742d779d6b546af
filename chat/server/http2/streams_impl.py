"""The fast transport's streams: grpclib's, with nothing made before a stream needs it.

grpclib gives every stream three `asyncio.Event`s and a buffer holding an `asyncio.Queue` and a
deque: nine deques, about 770 bytes each even when empty, some 7 KiB of a stream's 22 KiB. An
idle listener never uses them: it waits for requests that do not come, and its replies go out
without waiting. Here the same stream, buffer and events keep a list of waiters or chunks only
while there is something to keep, and behave as grpclib's do otherwise (tests hold them to it).

Like `direct_impl`, this module reads and writes grpclib's private state; the gate in
`chat.server.http2` probes every name used here and checks the installed versions first.
"""

import asyncio
import functools
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import Generic, TypeVar, cast

from grpclib.protocol import AckedData, Buffer, Connection, Stream, UnackedData
from grpclib.utils import Wrapper
from h2.connection import H2Connection

from chat.server.http2.base import nothing

T = TypeVar("T")

TextHeader = tuple[str, str]
SHARED_HEADERS: frozenset[str] = frozenset(
    {":method", ":scheme", ":path", ":authority", "content-type", "te", "user-agent"}
)
"""Request headers whose values repeat from stream to stream, and tell nothing private: never
a token, a user's name or a room's."""


class Signal:
    """What grpclib's streams use of an `asyncio.Event` (set, clear, is_set, wait), with the
    same wake-up order; its list of waiters exists only while a task waits."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            for waiter in self._waiters or ():
                if not waiter.done():
                    waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            self._waiters.remove(waiter)
            if not self._waiters:
                self._waiters = None


class Fifo(Generic[T]):
    """What grpclib's buffer uses of a deque (append, popleft, the first item read and replaced),
    each in constant time as a deque does, but holding no storage while empty: a deque keeps a
    block of 512 bytes even then."""

    __slots__ = ("_head", "_items")

    COMPACT = 64
    """Taken items the list keeps before it drops them (once they are half of it)."""

    def __init__(self) -> None:
        self._items: list[T] | None = None  # None exactly when empty
        self._head = 0  # the first item not yet taken

    def __bool__(self) -> bool:
        return self._items is not None

    def __len__(self) -> int:
        return len(self._items) - self._head if self._items is not None else 0

    def __iter__(self) -> Iterator[T]:
        return itertools.islice(self._items or (), self._head, None)

    def __getitem__(self, index: int) -> T:
        items = self._items
        if items is None or index:
            raise IndexError("only the first item of a fifo is reachable")
        return items[self._head]

    def __setitem__(self, index: int, item: T) -> None:
        items = self._items
        if items is None or index:
            raise IndexError("only the first item of a fifo is reachable")
        items[self._head] = item

    def append(self, item: T) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)

    def popleft(self) -> T:
        items = self._items
        if items is None:
            raise IndexError("pop from an empty fifo")
        head = self._head
        item = items[head]
        head += 1
        if head == len(items):
            self._items = None
            self._head = 0
        elif head >= self.COMPACT and 2 * head >= len(items):
            del items[:head]
            self._head = 0
        else:
            self._head = head
        return item


class Pending(Fifo[T]):
    """What grpclib's buffer uses of an unbounded `asyncio.Queue` (put_nowait, get, get_nowait,
    empty, qsize), with the same order and cancellation rules; its items and waiters hold
    storage only while there is something in them."""

    __slots__ = ("_getters",)

    def __init__(self) -> None:
        super().__init__()
        self._getters: list[asyncio.Future[None]] | None = None

    def empty(self) -> bool:
        return self._items is None

    def qsize(self) -> int:
        return len(self)

    def put_nowait(self, item: T) -> None:
        self.append(item)
        if self._getters is not None:
            self._wake_next()

    def get_nowait(self) -> T:
        if self._items is None:
            raise asyncio.QueueEmpty
        return self.popleft()

    async def get(self) -> T:
        while self._items is None:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                self._forget(getter)
                if self._items is not None and not getter.cancelled():
                    self._wake_next()  # woken for an item this getter cannot take now
                raise
        return self.get_nowait()

    def _wake_next(self) -> None:
        """Wakes the longest waiting getter that still waits (a buffer has one reader)."""
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not getters:
            self._getters = None

    def _forget(self, getter: asyncio.Future[None]) -> None:
        if self._getters is not None and getter in self._getters:
            self._getters.remove(getter)
            if not self._getters:
                self._getters = None


class LeanBuffer(Buffer):
    """grpclib's buffer of a stream's received data, over `Pending` and a `Fifo`; it can tell
    when something arrives (`when_readable`)."""

    _ready: Callable[[], None] | None = None

    def __init__(self, ack_callback: partial[None]) -> None:
        self._ack_callback = ack_callback
        self._eof = False
        self._unacked = cast("asyncio.Queue[UnackedData]", Pending())
        self._acked = cast("deque[AckedData]", Fifo())
        self._acked_size = 0

    def when_readable(self, ready: Callable[[], None]) -> Callable[[], None]:
        """Calls `ready` once there is something to read: now, or when the first bytes or the
        end arrive. Returns what cancels that."""
        if self._eof or self._acked_size or not self._unacked.empty():
            ready()
            return nothing
        self._ready = ready
        return self._forget_ready

    def add(self, data: bytes, ack_size: int) -> None:
        super().add(data, ack_size)
        if self._ready is not None:
            self._readable()

    def eof(self) -> None:
        super().eof()
        if self._ready is not None:
            self._readable()

    def _readable(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready()

    def _forget_ready(self) -> None:
        self._ready = None

    def holds_message(self) -> bool:
        """Whether a whole gRPC message (its 5-byte prefix and the body it announces) is here:
        reading it would not wait."""
        if not self._acked_size and self._unacked.empty():
            return False
        acked = (chunk for chunk, _ in self._acked)
        unacked = (item.data for item in cast(Pending[UnackedData], self._unacked))
        prefix = b""
        received = 0
        for chunk in itertools.chain(acked, unacked):
            if len(prefix) < 5:
                prefix += bytes(chunk[: 5 - len(prefix)])
            received += len(chunk)
            if len(prefix) == 5 and received >= 5 + int.from_bytes(prefix[1:], "big"):
                return True
        return False


class LeanStream(Stream):
    """grpclib's stream, its events `Signal`s and its buffer a `LeanBuffer`: the same fields,
    made as grpclib's own constructor makes them."""

    def __init__(
        self,
        connection: Connection,
        h2_connection: H2Connection,
        transport: asyncio.Transport,
        *,
        stream_id: int | None = None,
        wrapper: Wrapper | None = None,
    ) -> None:
        self.connection = connection
        self._h2_connection = h2_connection
        self._transport = transport
        self.wrapper = wrapper
        if stream_id is not None:
            self.init_stream(stream_id, connection)
        self.window_updated = cast(asyncio.Event, Signal())
        self.headers = None
        self.headers_received = cast(asyncio.Event, Signal())
        self.trailers = None
        self.trailers_received = cast(asyncio.Event, Signal())

    def init_stream(self, stream_id: int, connection: Connection) -> None:
        self.id = stream_id
        self.buffer = LeanBuffer(partial(connection.ack, stream_id))
        connection.streams_started += 1
        self.created = connection.last_stream_created = time.monotonic()


class LeanConnection(Connection):
    """grpclib's connection, opening `LeanStream`s."""

    writable = True
    """Whether the transport takes writes now: grpclib's `write_ready` as a plain attribute,
    which the rooms read for every delivery."""

    def pause_writing(self) -> None:
        super().pause_writing()
        self.writable = False

    def resume_writing(self) -> None:
        super().resume_writing()
        self.writable = True

    def create_stream(
        self, *, stream_id: int | None = None, wrapper: Wrapper | None = None
    ) -> Stream:
        return LeanStream(
            self, self._connection, self._transport, stream_id=stream_id, wrapper=wrapper
        )


def shared_headers(headers: list[TextHeader]) -> list[TextHeader]:
    """The headers (as text, checked), each of `SHARED_HEADERS` replaced by an equal one seen
    before. grpclib's
    request handler holds a call's headers for as long as it is open: seven new tuples and
    fourteen new strings per stream, about 1.3 KB, where one copy of each would do."""
    return [_seen(header) if header[0] in SHARED_HEADERS else header for header in headers]


@functools.lru_cache(maxsize=256, typed=True)
def _seen(header: TextHeader) -> TextHeader:
    """The first of the headers equal to `header` (and of its type) among the last 256."""
    return header
