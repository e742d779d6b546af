"""The reference transport: grpclib's documented Server and Stream API, and the guard.

Requests come from `Stream.recv_message`, replies go out one `send_message` each, and calls end
with `send_trailing_metadata`. A message over the size limit is refused once grpclib has read
it (its API offers no hook between a message's length prefix and its body). Each connection is
held to the guard's limits (`GuardedServer`), as on the direct transport.
"""

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

from grpclib.config import Configuration
from grpclib.server import Server
from h2.config import H2Configuration
from h2.connection import H2Connection

from chat.server.encoding.base import EncodingCodec
from chat.server.guard.limits import Guard, Limits
from chat.server.guard.protocol import GuardedProtocol
from chat.server.http2.base import CallStream, Sender, Transport, compressed, cut_short
from chat.server.reclaim import Reclaimer

H2_MAX_STREAMS = H2Connection(
    H2Configuration(client_side=False)
).local_settings.max_concurrent_streams
"""The open streams h2 admits on a connection before it ends the whole connection (its own
setting, which grpclib keeps): the guard refuses streams before that."""


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
        """Every connection behind the guard; the flow-control windows through grpclib's
        documented configuration. Streams open at once stop one short of h2's own limit, which
        grpclib's API cannot raise (the guard has to hand h2 a refused stream's headers)."""
        guard = guard or Guard()
        max_streams = min(guard.limits.max_streams, H2_MAX_STREAMS - 1)
        return GuardedServer(
            handlers, codec, guard, max_streams, reclaimer or Reclaimer(), drops_stillborn=True
        )

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


class GuardedServer(Server):
    """grpclib's Server with each connection behind the guard (`GuardedProtocol`).

    grpclib's documented API has no hook for a connection's protocol, so this overrides the one
    private name of grpclib used outside `direct_impl`: `Server._protocol_factory`, which
    `Server.start` hands to the event loop. The gate in `chat.server.http2` probes it for both
    transports: without it no server starts, rather than one without its limits.
    """

    def __init__(
        self,
        handlers: Collection[Any],
        codec: EncodingCodec,
        guard: Guard,
        max_streams: int,
        reclaimer: Reclaimer,
        drops_stillborn: bool,
    ) -> None:
        super().__init__(handlers, codec=codec, config=window_config(guard.limits))
        self.guard = guard
        self.max_streams = max_streams
        """Streams a connection may have open at once: what the guard lets through."""
        self.reclaimer = reclaimer
        """Told of each connection closed: the memory of a wave of them is given back."""
        self.drops_stillborn = drops_stillborn
        """Whether the guard keeps streams opened and reset at once from the protocol behind it
        (see `GuardedProtocol`): grpclib's would start a call for each and keep it."""

    def _protocol_factory(self) -> GuardedProtocol:  # type: ignore[override]
        return GuardedProtocol(
            self.connection_protocol(),
            self.guard,
            self.max_streams,
            self.reclaimer.ended,
            self.drops_stillborn,
        )

    def connection_protocol(self) -> asyncio.Protocol:
        """A new connection's HTTP/2 protocol, the one behind the guard: grpclib's."""
        return super()._protocol_factory()


def window_config(limits: Limits) -> Configuration:
    """grpclib's documented flow-control windows, from the limits."""
    return Configuration(
        http2_connection_window_size=limits.connection_window,
        http2_stream_window_size=limits.stream_window,
    )
