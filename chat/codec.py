"""Bytes to messages at the grpclib boundary: strict parsing, a size limit, pre-encoded replies.

grpclib buffers whatever length a peer announces and reports a parse error as UNKNOWN with a
traceback; here an oversized message is refused from its 5-byte prefix, before its body is read,
and bytes that are not a valid message are INVALID_ARGUMENT.
"""

from typing import Any, TypeVar, cast

from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.protocol import Stream as H2Stream
from grpclib.server import Stream

from chat import wire
from gen.grpc.chat import MessageRequest, StatsRequest

Request = TypeVar("Request")


class ChatCodec(ProtoCodec):
    """ProtoCodec that sends bytes as already encoded and maps parse errors to a status."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if type(message) is bytes:
            return message
        return super().encode(message, message_type)

    def decode(self, data: bytes, message_type: Any) -> Any:
        try:
            if message_type is MessageRequest:  # every chat message: the hand-written parser
                return wire.parse_request(data)
            if message_type is StatsRequest:
                return wire.parse_request(data, wire.STATS_REQUEST)
            return message_type.FromString(data)
        except Exception:
            name = message_type.__name__
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"the bytes received are not a valid {name}"
            ) from None


async def receive(stream: Stream[Request, Any], codec: ChatCodec, limit: int) -> Request | None:
    """The next request, or None at end of stream; refuses one over `limit` bytes unread."""
    h2_stream = stream._stream  # grpclib offers no hook between the length prefix and the body
    prefix = await _read(h2_stream, 5, "the stream ended inside a message prefix")
    if not prefix:
        return None
    if prefix[0]:
        raise GRPCError(Status.UNIMPLEMENTED, "compressed messages are not supported")
    size = int.from_bytes(prefix[1:5], "big")
    if size > limit:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"a message of {size} bytes is over the server's limit of {limit} bytes",
        )
    body = await _read(h2_stream, size, "the stream ended inside a message") if size else b""
    return cast(Request, codec.decode(body, stream._recv_type))


async def _read(h2_stream: H2Stream, size: int, cut_short: str) -> bytes:
    """`size` bytes of the request stream, or b"" at its end; INVALID_ARGUMENT when it ends
    part way (grpclib's buffer raises AssertionError for that, which would be INTERNAL)."""
    try:
        return await h2_stream.recv_data(size)
    except AssertionError:
        raise GRPCError(Status.INVALID_ARGUMENT, cut_short) from None
