"""Every call's life around its handler: refused while stopping, timed, logged, ended with a status.

The status trailers are sent here, before the call counts as finished, so a stopping server can
wait until every open call has told its client how it ended (grpclib's own Server.close() would
cancel them silently). grpclib's SendTrailingMetadata event never fires for cancelled calls, so
calls are counted where they start and end instead.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import h2.exceptions
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat.errors import drop_tracebacks, to_grpc_error
from chat.server.auth import Auth
from chat.server.encoding.base import EncodingCodec
from chat.server.http2.base import CallStream, Sink, Transport
from chat.server.identity import Identity
from chat.server.logs import CALL_LINE
from chat.server.reclaim import Reclaimer
from chat.server.refusals import Refusals, Refused
from chat.server.throttle import AuthFailures

log = logging.getLogger("chat.calls")

TRAILERS_TIMEOUT = 5.0
"""Seconds to wait for a peer's connection to take the status; a stuck peer gets nothing."""
REFUSAL_GRACE = 1.0
"""Seconds a call refused before it asked for a request waits for the client's first one (or its
half-close) before the status goes out. grpcio's client, whose first write is still under way
when the status comes, reports INTERNAL ("Internal error from Core") or UNAVAILABLE instead of
the status; a client that sends nothing gets its status this much later. (0.2 s was too short
for a grpcio client with 200 calls opening at once on a loaded machine: 1 in 400 lost its
status.)"""

Request = TypeVar("Request")


class Call(Generic[Request]):
    """One RPC as a handler sees it: requests in (size-limited), encoded replies out, counts."""

    def __init__(self, stream: CallStream, codec: EncodingCodec, transport: Transport[Any]) -> None:
        self.stream = stream
        self.sending = asyncio.Lock()  # held by whoever writes replies: one writer at a time
        self.received = 0
        self.reading = False
        """Whether the handler has asked for a request: a call refused after that is not
        refused at its open (a body that stalled is not waited for again)."""
        self.sent = 0
        self.reply: bytes | None = None
        self.reply_metadata: dict[str, str] = {}
        self.codec = codec
        self.identity: Identity | None = None
        """Who the call's signed token says it is; None without one (every room is open)."""
        self._transport = transport

    @property
    def address(self) -> str:
        """The client's address without its port: what limits per client count by."""
        return client_address(self.stream)

    @property
    def connection(self) -> str:
        """The client's address and port: its connection, or the web door's socket, while it
        is open ('-' when unknown)."""
        return _peer(self.stream)

    def metadata(self, key: str, default: str) -> str:
        """A request metadata value, or `default` when absent or empty."""
        value = self.stream.metadata.get(key) if self.stream.metadata else None
        return value if isinstance(value, str) and value else default

    async def recv(self) -> Request | None:
        """The next request, or None when the client has half-closed."""
        self.reading = True
        request = await self._transport.receive(self.stream, self.codec)
        if request is not None:
            self.received += 1
        return request

    def request_waiting(self) -> bool:
        """Whether `recv` would return a request now (see `Transport.request_waiting`)."""
        return self._transport.request_waiting(self.stream)

    def when_readable(self, ready: Callable[[], None]) -> Callable[[], None]:
        """Calls `ready` once the client has sent something to read (see
        `Transport.when_readable`); returns what cancels that."""
        return self._transport.when_readable(self.stream, ready)

    def reply_once(self, reply: bytes, metadata: dict[str, str]) -> None:
        """Keeps a unary call's one encoded reply and its response headers' metadata; they go
        out with the status."""
        self.reply = reply
        self.reply_metadata = metadata
        self.sent += 1

    async def send_initial_metadata(self, metadata: dict[str, str]) -> None:
        """Sends a streaming call's response headers now, with `metadata`."""
        await self.stream.send_initial_metadata(metadata=metadata)

    async def send_all(self, replies: list[bytes]) -> None:
        """Sends encoded replies of a streaming call, in order (hold `sending`)."""
        await self._transport.send(self.stream, replies)
        self.sent += len(replies)

    def sink(self) -> Sink | None:
        """What writes a live stream's replies at once (its room's deliveries, its own ACKs),
        when no one else is sending and the transport can take them now; None when the
        transport never writes at once."""
        return self._transport.sink(self.stream, self)

    async def end(self, status: Status, message: str | None) -> None:
        """Sends the unary reply (when OK) and the status; a client that is gone gets nothing."""
        stream = self.stream
        reply = self.reply if status is Status.OK else None
        if status is not Status.OK and not self.reading:
            await self._first_request(REFUSAL_GRACE)
        try:
            metadata = self.reply_metadata
            if reply is not None and self._transport.finish_unary_now(stream, reply, metadata):
                return
            async with asyncio.timeout(TRAILERS_TIMEOUT):
                if reply is not None:
                    await stream.send_initial_metadata(metadata=metadata)
                    await stream.send_message(reply)
                await stream.send_trailing_metadata(status=status, status_message=message)
        except (
            StreamTerminatedError,
            h2.exceptions.StreamClosedError,
            TimeoutError,
            ConnectionError,
        ):
            pass  # the client is gone; there is no one left to tell

    async def _first_request(self, seconds: float) -> None:
        """The client's first request, read and dropped, or its half-close, or nothing after
        `seconds`; whatever the client sent or did meanwhile, the call's status still goes
        out."""
        with contextlib.suppress(
            GRPCError,
            StreamTerminatedError,
            h2.exceptions.StreamClosedError,
            TimeoutError,
            ConnectionError,
        ):
            async with asyncio.timeout(seconds):
                await self._transport.receive(self.stream, self.codec)


Handler = Callable[[Call[Any]], Awaitable[None]]


class Calls:
    """Wraps handlers: counts open calls, refuses new ones while stopping or without the token
    (with RESOURCE_EXHAUSTED, for a while, from an address that failed too often), logs one
    line each."""

    def __init__(
        self,
        codec: EncodingCodec,
        transport: Transport[Any],
        auth: Auth | None = None,
        failures: AuthFailures | None = None,
        refusals: Refusals[Refused] | None = None,
        reclaimer: Reclaimer | None = None,
    ) -> None:
        self._codec = codec
        self._transport = transport
        self._auth = auth
        self._failures = failures or AuthFailures(0, 1.0)
        self._refusals: Refusals[Refused] = refusals or Refusals()
        self._reclaimer = reclaimer or Reclaimer()
        self._open = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closing = False
        self.on_end: Callable[[str, Status, float], None] | None = None
        """Told of every call that ends: its method, its status and how many seconds it took."""

    def wrap(
        self, method: str, handler: Handler, transport: Transport[Any] | None = None
    ) -> Callable[[CallStream], Awaitable[None]]:
        """The handler function for one method: grpclib's, or the web door's with the reference
        `transport` its streams need (the server's own transport when None)."""
        through = transport or self._transport

        async def run(stream: CallStream) -> None:
            call: Call[Any] = Call(stream, self._codec, through)
            self._open += 1
            self._idle.clear()
            started = time.monotonic()
            status, message = Status.OK, None
            try:
                if self.closing:
                    raise GRPCError(Status.UNAVAILABLE, "the server is shutting down")
                if self._auth is not None:
                    call.identity = self._authenticate(call)
                await handler(call)
            except asyncio.CancelledError as cancelled:
                status = Status.CANCELLED
                # grpclib 0.4 keeps the error that cancels a call in a cycle (its Wrapper holds
                # the error, the error its context, this CancelledError, and that the frames of
                # the handler) until a full collection, which a busy heap rarely runs: without
                # those frames, what the handler held (history pages, batches) is freed now.
                drop_tracebacks(cancelled)
                self._reclaimer.ended()
                raise
            except GRPCError as error:
                status, message = error.status, error.message
                drop_tracebacks(error)  # a side's task keeps it, and its frames the task
            except Exception as error:
                grpc_error = to_grpc_error(error)
                if grpc_error.status is Status.INTERNAL:
                    log.exception("%s failed", method)
                status, message = grpc_error.status, grpc_error.message
                drop_tracebacks(error)
            finally:
                # Logged and counted before the status goes out: a client that has its status
                # finds its call in the log and the metrics.
                seconds = time.monotonic() - started
                fields = {
                    "peer": _peer(stream),
                    "method": method,
                    "status": status.name,
                    "duration_ms": round(seconds * 1000, 1),
                    "messages_in": call.received,
                    "messages_out": call.sent,
                }
                log.info(CALL_LINE, fields, extra={"call": fields})
                if self.on_end is not None:
                    self.on_end(method, status, seconds)
                if status is not Status.CANCELLED:
                    await call.end(status, message)
                self._open -= 1
                if not self._open:
                    self._idle.set()

        return run

    def _authenticate(self, call: Call[Any]) -> Identity | None:
        """The call's identity, whenever its credential holds, however often others at its
        address failed; UNAUTHENTICATED when it does not hold, counted against the address, or
        RESOURCE_EXHAUSTED instead while the address is past its failures."""
        assert self._auth is not None
        try:
            return self._auth.check(call.stream.metadata)
        except GRPCError as error:
            if error.status is not Status.UNAUTHENTICATED:
                raise
            address = call.address
            wait = self._failures.blocked(address)
            if not wait:
                self._failures.failed(address)
                raise
        failures = self._failures
        self._refusals.refuse(
            Refused.AUTH_FAILURES,
            address,
            f"{failures.limit} failed authentications within {failures.window:g} s: "
            "its failures are answered RESOURCE_EXHAUSTED until the window ends",
        )
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"too many failed authentications from {address}: try again in {math.ceil(wait)} s",
        )

    async def wait_idle(self, seconds: float) -> bool:
        """Waits until no call is open; False when `seconds` passed first."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    @property
    def open(self) -> int:
        return self._open


def client_address(stream: CallStream) -> str:
    """The host a stream's client connects from ('-' when unknown)."""
    address = stream.peer.addr()
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address or "-")


def _peer(stream: CallStream) -> str:
    address = stream.peer.addr()
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "-")
