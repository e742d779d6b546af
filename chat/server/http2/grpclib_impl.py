"""The reference transport: grpclib's documented Server and Stream API, nothing else.

Requests come from `Stream.recv_message`, replies go out one `send_message` each, and calls end
with `send_trailing_metadata`. A message over the size limit is refused once grpclib has read
it (its API offers no hook between a message's length prefix and its body).
"""

from collections.abc import Collection, Mapping
from typing import Any

from grpclib.config import Configuration
from grpclib.server import Server

from chat.server.encoding.base import EncodingCodec
from chat.server.http2.base import CallStream, Sender, Transport, compressed, cut_short
from chat.server.http2.guard import Guard, Limits
from chat.server.reclaim import Reclaimer


class GrpclibTransport(Transport[CallStream]):
    """Every byte through grpclib, as its documentation describes; it drives any stream with
    that API, the web door's included."""

    name = "grpclib"

    def server(
        self,
        handlers: Collection[Any],
        codec: EncodingCodec,
        guard: Guard | None = None,
        reclaimer: Reclaimer | None = None,
    ) -> Server:
        """Of the guard's limits, the flow-control windows: what grpclib's documented
        configuration offers (it tells nobody of a closed connection)."""
        limits = guard.limits if guard else Limits()
        return Server(handlers, codec=codec, config=window_config(limits))

    async def receive(self, stream: CallStream, codec: EncodingCodec) -> Any | None:
        try:
            return await stream.recv_message()
        except NotImplementedError:  # grpclib 0.4: "Compression not implemented"
            raise compressed() from None
        except AssertionError:  # grpclib 0.4 asserts a message arrived whole
            raise cut_short() from None

    async def send(self, stream: CallStream, replies: list[bytes]) -> None:
        for reply in replies:
            await stream.send_message(reply)

    def sink(self, stream: CallStream, call: Sender) -> None:
        return None

    def finish_unary_now(
        self, stream: CallStream, reply: bytes, metadata: Mapping[str, str]
    ) -> bool:
        return False


def window_config(limits: Limits) -> Configuration:
    """grpclib's documented flow-control windows, from the limits."""
    return Configuration(
        http2_connection_window_size=limits.connection_window,
        http2_stream_window_size=limits.stream_window,
    )
