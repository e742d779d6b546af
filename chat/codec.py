"""Bytes to messages at the grpclib boundary: strict parsing, a size limit, pre-encoded replies.

grpclib buffers whatever length a peer announces and reports a parse error as UNKNOWN with a
traceback; here an oversized message is refused from its 5-byte prefix, before its body is read,
and bytes that are not a valid message are INVALID_ARGUMENT.
"""

from typing import Any, TypeVar, cast

from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
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
    """The next request, or None at end of stream; refuses one over `limit` bytes unread.

    Read from grpclib's stream buffer, which offers no hook between the length prefix and the
    body; it raises AssertionError for a stream that ends part way, INVALID_ARGUMENT here (it
    would be INTERNAL).
    """
    buffer = stream._stream.buffer
    try:
        prefix = await buffer.read(5)
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
        body = await buffer.read(size) if size else b""
    except AssertionError:
        raise GRPCError(Status.INVALID_ARGUMENT, "the stream ended inside a message") from None
    return cast(Request, codec.decode(body, stream._recv_type))
