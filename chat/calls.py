"""Every call's life around its handler: refused while stopping, timed, logged, ended with a status.

The status trailers are sent here, before the call counts as finished, so a stopping server can
wait until every open call has told its client how it ended (grpclib's own Server.close() would
cancel them silently). grpclib's SendTrailingMetadata event never fires for cancelled calls, so
calls are counted where they start and end instead.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h2.exceptions
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.server import Stream

from chat.auth import TokenAuth
from chat.codec import ChatCodec, receive
from chat.errors import to_grpc_error
from chat.frames import can_send_now, unary_reply, write_data
from chat.logs import CALL_LINE

log = logging.getLogger("chat.calls")

TRAILERS_TIMEOUT = 5.0
"""Seconds to wait for a peer's connection to take the status; a stuck peer gets nothing."""


class Call:
    """One RPC as a handler sees it: requests in (size-limited), encoded replies out, counts."""

    def __init__(self, stream: Stream[Any, Any], codec: ChatCodec, limit: int) -> None:
        self.stream = stream
        self.sending = asyncio.Lock()  # held by whoever writes replies: one writer at a time
        self.received = 0
        self.sent = 0
        self.reply: bytes | None = None
        self._codec = codec
        self._limit = limit

    def metadata(self, key: str, default: str) -> str:
        """A request metadata value, or `default` when absent or empty."""
        value = self.stream.metadata.get(key) if self.stream.metadata else None
        return value if isinstance(value, str) and value else default

    async def recv(self) -> Any:
        """The next request, or None when the client has half-closed."""
        request = await receive(self.stream, self._codec, self._limit)
        if request is not None:
            self.received += 1
        return request

    def reply_once(self, reply: bytes) -> None:
        """Keeps a unary call's one encoded reply; it goes out with the status, in one write."""
        self.reply = reply
        self.sent += 1

    async def send_all(self, replies: list[bytes]) -> None:
        """Sends encoded replies of a streaming call, many gRPC messages per write.

        grpclib writes one DATA frame per message through several layers; here the framed
        replies go straight to the HTTP/2 stream, a batch (a history page, a listener's
        backlog) in as few frames and socket writes as flow control allows.
        """
        if not self.stream._send_initial_metadata_done:
            await self.stream.send_initial_metadata()
        for start in range(0, len(replies), WRITE_BATCH):
            chunk = replies[start : start + WRITE_BATCH]
            payload = _framed(chunk)
            if not write_data(self.stream._stream, payload):
                await self.stream._stream.send_data(payload)
            self.sent += len(chunk)

    def send_now(self, replies: list[bytes]) -> bool:
        """Sends replies of a streaming call without waiting, when nothing has to wait: no one
        else is sending, the headers are out, flow control lets them through. False: nothing
        was sent, and `send_all` (holding `sending`) is the way."""
        if (
            self.sending.locked()
            or not self.stream._send_initial_metadata_done
            or len(replies) > WRITE_BATCH
            or not write_data(self.stream._stream, _framed(replies))
        ):
            return False
        self.sent += len(replies)
        return True


def _framed(replies: list[bytes]) -> bytes:
    """Encoded replies as gRPC messages: each behind its flag byte and length."""
    return b"".join([b"\0" + len(reply).to_bytes(4, "big") + reply for reply in replies])


Handler = Callable[[Call], Awaitable[None]]

WRITE_BATCH = 256
"""Replies joined into one write at most: bounds the bytes a batch holds at once."""


class Calls:
    """Wraps handlers: counts open calls, refuses new ones while stopping or without the token,
    logs one line each."""

    def __init__(
        self, codec: ChatCodec, max_message_bytes: int, auth: TokenAuth | None = None
    ) -> None:
        self._codec = codec
        self._limit = max_message_bytes
        self._auth = auth
        self._open = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closing = False
        self.on_end: Callable[[str, Status, float], None] | None = None
        """Told of every call that ends: its method, its status and how many seconds it took."""

    def wrap(self, method: str, handler: Handler) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
        """The grpclib handler function for one method."""

        async def run(stream: Stream[Any, Any]) -> None:
            call = Call(stream, self._codec, self._limit)
            self._open += 1
            self._idle.clear()
            started = time.monotonic()
            status, message = Status.OK, None
            try:
                if self.closing:
                    raise GRPCError(Status.UNAVAILABLE, "the server is shutting down")
                if self._auth is not None:
                    self._auth.check(stream.metadata)
                await handler(call)
            except asyncio.CancelledError:
                status = Status.CANCELLED
                raise
            except GRPCError as error:
                status, message = error.status, error.message
            except Exception as error:
                grpc_error = to_grpc_error(error)
                if grpc_error.status is Status.INTERNAL:
                    log.exception("%s failed", method)
                status, message = grpc_error.status, grpc_error.message
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
                    await _end(call, status, message)
                self._open -= 1
                if not self._open:
                    self._idle.set()

        return run

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


async def _end(call: Call, status: Status, message: str | None) -> None:
    stream = call.stream
    reply = call.reply if status is Status.OK else None
    try:
        if reply is not None and _reply_in_one_write(stream, reply):
            return
        async with asyncio.timeout(TRAILERS_TIMEOUT):
            if reply is not None:
                await stream.send_message(reply)
            await stream.send_trailing_metadata(status=status, status_message=message)
    except (StreamTerminatedError, h2.exceptions.StreamClosedError, TimeoutError, ConnectionError):
        pass  # the client is gone; there is no one left to tell


def _reply_in_one_write(stream: Stream[Any, Any], reply: bytes) -> bool:
    """Headers, the one message and the OK trailers of a unary call in one socket write.

    grpclib writes them one by one, a syscall each, and h2 builds and compresses each header
    block; a unary call costs about a quarter less this way. Done only when nothing would have
    to wait (the transport takes writes, the flow-control windows and frame size fit the
    message); False leaves it to grpclib.
    """
    h2_stream = stream._stream
    framed = _framed([reply])
    if stream._send_initial_metadata_done or not can_send_now(h2_stream, len(framed)):
        return False
    h2_stream._transport.write(unary_reply(h2_stream, stream._content_type, framed))
    stream._send_initial_metadata_done = True
    stream._send_message_done = True
    stream._send_trailing_metadata_done = True
    h2_stream.connection.data_send_process()
    return True


def _peer(stream: Stream[Any, Any]) -> str:
    address = stream.peer.addr()
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "-")
