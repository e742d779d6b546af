"""The HTTP/2 seam: how a call's requests come in and its replies go out on the connection.

The service, its calls and its rooms hold one `Transport` and never know which: grpclib's
documented stream API (the reference) or frames written and read directly (the fast path).
"""

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from typing import Any, Generic, Protocol, TypeVar

import grpclib.server
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.server.encoding.base import EncodingCodec
from chat.server.guard.limits import Guard
from chat.server.reclaim import Reclaimer

ServerStream = grpclib.server.Stream[Any, Any]
"""A call's grpclib stream: its request and reply types are ours to know, not grpclib's."""


class Peer(Protocol):
    """Where a call comes from, as grpclib's `Peer` tells it."""

    def addr(self) -> tuple[str, int] | None: ...


class CallStream(Protocol):
    """What a call's life and the reference transport use of a stream: the part of grpclib's
    documented server `Stream` API that the chat service needs. grpclib's streams have it, and
    so do the web door's (gRPC-Web and WebSocket), which run the same handlers."""

    @property
    def metadata(self) -> Mapping[str, str | bytes] | None: ...
    @property
    def peer(self) -> Peer: ...
    async def recv_message(self) -> Any | None: ...
    async def send_initial_metadata(self, *, metadata: Mapping[str, str] | None = None) -> None: ...
    async def send_message(self, message: Any) -> None: ...
    async def send_trailing_metadata(
        self, *, status: Status = Status.OK, status_message: str | None = None
    ) -> None: ...


Sink = Callable[[bytes, int], bool]
"""Writes gRPC messages (`grpc_message`s joined, and how many) to a stream at once; False when
it would have to wait. The rooms call a listener's sink from whichever task stored the
message, so it checks everything a write needs first: a stream whose connection broke answers
False and leaves the message to its queue (its own task finds the connection gone), and
delivery to the others goes on. Nothing is caught: a programming error fails the call."""


class Sender(Protocol):
    """What a sink needs of its call: the lock whoever writes its replies holds, and their
    count."""

    sending: asyncio.Lock
    sent: int


StreamType = TypeVar("StreamType", contravariant=True)
"""The streams a transport can drive: any `CallStream`, or only grpclib's own."""


class Transport(ABC, Generic[StreamType]):
    """Requests in, encoded replies out, for one server's calls."""

    name: str
    """The `--http2` choice that selects it."""

    @abstractmethod
    def server(
        self,
        handlers: Collection[Any],
        codec: EncodingCodec,
        guard: Guard | None = None,
        reclaimer: Reclaimer | None = None,
    ) -> grpclib.server.Server:
        """The grpclib Server that runs `handlers` over this transport, held to what `guard`
        limits as far as the transport can (the defaults without one), telling `reclaimer` of
        each connection it closes where it can tell."""

    @abstractmethod
    async def receive(self, stream: StreamType, codec: EncodingCodec) -> Any | None:
        """The next request, or None when the client has half-closed; GRPCError for a message
        that is compressed, over the codec's limit, cut short or not valid."""

    @abstractmethod
    async def send(self, stream: StreamType, replies: list[bytes]) -> None:
        """Sends encoded replies of a streaming call, in order, waiting for flow control."""

    @abstractmethod
    def sink(self, stream: StreamType, call: Sender) -> Sink | None:
        """The `Sink` of a live listener's stream: it writes when no one holds the call's
        `sending` lock and the connection can take the bytes now, and counts them in `sent`;
        None when this transport never writes at once."""

    def when_readable(self, stream: StreamType, ready: Callable[[], None]) -> Callable[[], None]:
        """Calls `ready` once, when the stream has received something `receive` would read
        (request bytes or the client's half-close), so a stream that sends nothing needs no
        task waiting in `receive`; returns a function that cancels the call. This default calls
        it at once: `receive` does the waiting."""
        ready()
        return nothing

    def request_waiting(self, stream: StreamType) -> bool:
        """Whether a whole request has arrived, so `receive` would return it without waiting:
        the stream then stores what its client sent together, for the rooms to write as one.
        This default says no: requests are read and stored one at a time."""
        return False

    @abstractmethod
    def finish_unary_now(
        self, stream: StreamType, reply: bytes, metadata: Mapping[str, str]
    ) -> bool:
        """Sends a unary call's response headers (with `metadata`), its reply and its OK status
        at once, when nothing has to wait; False: nothing was sent, and the documented
        `send_initial_metadata`, `send_message` and `send_trailing_metadata` are the way."""


def nothing() -> None:
    """What cancels a `when_readable` that has already called back."""


def grpc_message(reply: bytes) -> bytes:
    """An encoded reply as a gRPC message: its flag byte (not compressed) and length first."""
    return b"\0" + len(reply).to_bytes(4, "big") + reply


def grpc_messages(replies: list[bytes]) -> bytes:
    """Encoded replies as gRPC messages, joined: one write's worth."""
    return b"".join([grpc_message(reply) for reply in replies])


def cut_short() -> GRPCError:
    """The status of a stream that ended inside a message (grpclib asserts on it)."""
    return GRPCError(Status.INVALID_ARGUMENT, "the stream ended inside a message")


def compressed() -> GRPCError:
    """The status of a compressed message: no compression is negotiated."""
    return GRPCError(Status.UNIMPLEMENTED, "compressed messages are not supported")
