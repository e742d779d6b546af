"""The reference transport: grpclib's documented Server and Stream API, and the guard.

Requests come from `Stream.recv_message`, replies go out one `send_message` each, and calls end
with `send_trailing_metadata`. A message over the size limit is refused once grpclib has read
it (its API offers no hook between a message's length prefix and its body). Each connection is
held to the guard's limits (`GuardedServer`), as on the direct transport, and what grpclib
leaves undone at the door is done here for both (`CheckedProtocol`): a request whose headers it
cannot read is answered, and a protocol error ends in h2's GOAWAY.

This module is grpclib's seam: the names of grpclib it uses beyond the documented API (the
server's protocol factory, `grpclib.protocol`'s protocol and handler) are probed by the gate
in `chat.server.http2`.
"""

from collections.abc import Callable, Collection, Mapping
from typing import Any, cast

from grpclib.config import Configuration
from grpclib.protocol import AbstractHandler, H2Protocol, Stream
from grpclib.server import Server
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import Event
from h2.exceptions import ProtocolError

from chat.server.encoding.base import EncodingCodec
from chat.server.guard.limits import Guard, Limits, Refusal
from chat.server.guard.protocol import GuardedProtocol
from chat.server.http2.base import CallStream, Sender, Transport, compressed, cut_short
from chat.server.http2.malformed import Malformed, check_request
from chat.server.reclaim import Reclaimer

H2_MAX_STREAMS = H2Connection(
    H2Configuration(client_side=False)
).local_settings.max_concurrent_streams
"""The open streams h2 admits on a connection before it ends the whole connection (its own
setting, which grpclib keeps): the guard refuses streams before that."""

H2_CONFIG = H2Configuration(
    client_side=False,
    header_encoding=None,  # bytes: a non-ASCII header is refused here, not by a crash
    validate_inbound_headers=False,
    validate_outbound_headers=False,
    normalize_inbound_headers=False,
    normalize_outbound_headers=False,
)
"""h2's settings on both transports: grpclib's own, but headers left as bytes (grpclib 0.4
has h2 decode them as ASCII, and a byte that is not ends the connection with a traceback)."""


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


class CheckedProtocol(H2Protocol):
    """grpclib's protocol of one connection, with what grpclib 0.4 leaves undone done.

    A request whose headers grpclib cannot read (no `:method`, a header byte that is not ASCII,
    a `-bin` value that is not base64, a `grpc-timeout` already spent) is answered by the guard
    in front (`GuardedProtocol.refuse_request`): grpclib would log a traceback and never answer
    it. A protocol error ends in the GOAWAY h2 queued for it: grpclib closes the connection
    without sending it.
    """

    def __init__(
        self,
        handler: AbstractHandler,
        config: Configuration,
        h2_config: H2Configuration,
        guarded: GuardedProtocol,
    ) -> None:
        self.guarded = guarded
        super().__init__(self.checked(handler), config, h2_config)

    def checked(self, handler: AbstractHandler) -> "CheckedHandler":
        """grpclib's handler of the connection, behind the check of each request's headers."""
        return CheckedHandler(handler, self.guarded)

    def data_received(self, data: bytes) -> None:
        events = self.events(data)
        if events is None:
            return
        for event in events:
            self.processor.process(event)
        self.connection.flush()

    def events(self, data: bytes) -> list[Event] | None:
        """What h2 reads in `data`, its answers sent; None after a protocol error, when its
        GOAWAY has been sent and the connection closes."""
        connection = self.connection
        try:
            events = connection.feed(data)
        except ProtocolError as error:
            self.guarded.refuse(Refusal.PROTOCOL_ERROR, f"protocol error, GOAWAY: {error}")
            connection.flush()  # h2 has queued its GOAWAY
            self.processor.close("Protocol error")
            return None
        connection.flush()
        return events


class CheckedHandler(AbstractHandler):
    """grpclib's handler of one connection, a request's headers checked before its call
    starts (`check_request`); one refused is answered by the guard `guarded`."""

    def __init__(self, handler: AbstractHandler, guarded: GuardedProtocol) -> None:
        self.handler = handler
        self.guarded = guarded

    def accept(
        self, stream: Stream, headers: list[tuple[str, str]], release: Callable[[], None]
    ) -> None:
        checked = check_request(cast(list[tuple[bytes, bytes]], headers))  # bytes: H2_CONFIG
        if isinstance(checked, Malformed):
            assert stream.id is not None
            self.guarded.refuse_request(stream.id, checked.reason, checked.status)
            release()
            return
        self.start(stream, checked, release)

    def start(
        self, stream: Stream, headers: list[tuple[str, str]], release: Callable[[], None]
    ) -> None:
        """Starts the call of a request whose headers were read."""
        self.handler.accept(stream, headers, release)

    def cancel(self, stream: Stream) -> None:
        self.handler.cancel(stream)

    def close(self) -> None:
        self.handler.close()


class GuardedServer(Server):
    """grpclib's Server with each connection behind the guard (`GuardedProtocol`), served by a
    `CheckedProtocol` (its subclass `LeanProtocol` on the direct transport).

    grpclib's documented API has no hook for a connection's protocol, so this overrides the one
    private name of grpclib's server used here: `Server._protocol_factory`, which `Server.start`
    hands to the event loop. The gate in `chat.server.http2` probes it for both transports:
    without it no server starts, rather than one without its limits.
    """

    protocol_class: type[CheckedProtocol] = CheckedProtocol
    """The protocol behind the guard: a subclass's may read frames its own way."""

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
            self.connection_protocol,
            self.guard,
            self.max_streams,
            self.reclaimer.ended,
            self.drops_stillborn,
        )

    def connection_protocol(self, guarded: GuardedProtocol) -> CheckedProtocol:
        """A new connection's HTTP/2 protocol (`protocol_class`), the one behind the guard
        `guarded`, with the handler grpclib's server made for it."""
        made = super()._protocol_factory()
        return self.protocol_class(made.handler, made.config, H2_CONFIG, guarded)


def window_config(limits: Limits) -> Configuration:
    """grpclib's documented flow-control windows, from the limits."""
    return Configuration(
        http2_connection_window_size=limits.connection_window,
        http2_stream_window_size=limits.stream_window,
    )
