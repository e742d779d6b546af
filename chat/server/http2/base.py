"""The HTTP/2 seam: how a call's requests come in and its replies go out on the connection.

The service, its calls and its rooms hold one `Transport` and never know which: grpclib's
documented stream API (the reference) or frames written and read directly (the fast path).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from typing import Any

import grpclib.server
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.server.encoding.base import EncodingCodec

ServerStream = grpclib.server.Stream[Any, Any]
"""A call's grpclib stream: its request and reply types are ours to know, not grpclib's."""


class Transport(ABC):
    """Requests in, encoded replies out, for one server's calls."""

    name: str
    """The `--http2` choice that selects it."""

    @abstractmethod
    def server(self, handlers: Collection[Any], codec: EncodingCodec) -> grpclib.server.Server:
        """The grpclib Server that runs `handlers` over this transport."""

    @abstractmethod
    async def receive(self, stream: ServerStream, codec: EncodingCodec) -> Any | None:
        """The next request, or None when the client has half-closed; GRPCError for a message
        that is compressed, over the codec's limit, cut short or not valid."""

    @abstractmethod
    async def send(self, stream: ServerStream, replies: list[bytes]) -> None:
        """Sends encoded replies of a streaming call, in order, waiting for flow control."""

    @abstractmethod
    def send_now(self, stream: ServerStream, replies: list[bytes]) -> bool:
        """Sends the replies without waiting, when nothing has to wait; False: nothing was
        sent, and `send` is the way."""

    @abstractmethod
    def writer(self, stream: ServerStream) -> Callable[[bytes], bool] | None:
        """A function that writes one gRPC message (`grpc_message`) to the stream at once,
        False when it would have to wait; None when this transport never writes at once."""

    @abstractmethod
    def finish_unary_now(
        self, stream: ServerStream, reply: bytes, metadata: Mapping[str, str]
    ) -> bool:
        """Sends a unary call's response headers (with `metadata`), its reply and its OK status
        at once, when nothing has to wait; False: nothing was sent, and the documented
        `send_initial_metadata`, `send_message` and `send_trailing_metadata` are the way."""


def grpc_message(reply: bytes) -> bytes:
    """An encoded reply as a gRPC message: its flag byte (not compressed) and length first."""
    return b"\0" + len(reply).to_bytes(4, "big") + reply


def cut_short() -> GRPCError:
    """The status of a stream that ended inside a message (grpclib asserts on it)."""
    return GRPCError(Status.INVALID_ARGUMENT, "the stream ended inside a message")


def compressed() -> GRPCError:
    """The status of a compressed message: no compression is negotiated."""
    return GRPCError(Status.UNIMPLEMENTED, "compressed messages are not supported")
