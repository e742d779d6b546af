"""A call over a WebSocket, for what gRPC-Web cannot do from a browser: stream requests.

The mapping is the project's own (README.md, "WebSocket"): one socket is one call, opened with
GET on the method's path. The first frame is text: the call's metadata as HTTP/1 header lines
(`chat-user: ann`, `authorization: Bearer ...`; empty for none), kept out of the URL so a token
never lands in a log or a history. Then each binary frame is one request message; a later text
frame is the client's half-close. The server sends each reply as one binary frame and ends the
call by closing the socket with code 4000 + the gRPC status and the status message as reason.
A client that closes the socket first cancels the call.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import WSMessage, WSMsgType, hdrs, web
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.server.encoding.base import EncodingCodec
from chat.server.guard.limits import Refusal
from chat.server.http2.base import CallStream
from chat.server.web.base import WebPeer, header_lines, parse_header_lines
from chat.server.web.guard import WebGuard
from chat.tasks import cancel_and_wait

CLOSE_CODE_BASE = 4000
"""A call's close code is this plus its gRPC status (4000 OK, 4016 UNAUTHENTICATED)."""
REASON_BYTES = 123
"""The longest close reason the WebSocket protocol allows, in UTF-8 bytes."""
METADATA_SECONDS = 10.0
"""How long a new socket may take to send its metadata frame."""
ENDS = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})
"""Messages after which a socket says no more."""
QUEUED_REQUESTS = 16
"""Request frames read ahead of the call; then the socket waits (TCP pushes back)."""


def is_upgrade(request: web.Request) -> bool:
    """Whether a GET asks to open a WebSocket."""
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


async def refuse(request: web.Request, status: Status, message: str) -> web.WebSocketResponse:
    """Opens the socket only to close it at once with `status`: no call is made."""
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    await close_with(socket, status, message)
    return socket


async def close_with(socket: web.WebSocketResponse, status: Status, message: str | None) -> None:
    """Closes the socket with a call's status, the message cut to what a reason can hold."""
    reason = (message or "").encode()[:REASON_BYTES].decode(errors="ignore").encode()
    await socket.close(code=CLOSE_CODE_BASE + status.value, message=reason)


class Pulse:
    """A socket's messages, with the pings that tell a quiet peer from a gone or stalled one:
    after `every` seconds without a whole frame the peer is pinged, and it is taken for gone
    when nothing comes back within `timeout` (a peer that trickles a frame byte by byte cannot
    answer either).

    Not aiohttp's `heartbeat`: in aiohttp 3.14 it leaves every socket's request, handler and
    buffers in a reference cycle that outlives the socket until a full collection (2,000
    sockets held the server some 60 MiB over idle until one ran).
    """

    def __init__(self, socket: web.WebSocketResponse, every: float, timeout: float) -> None:
        self._socket = socket
        self._every = every
        self._timeout = timeout

    def __str__(self) -> str:
        return f"{self._timeout:g}s"

    async def receive(self) -> WSMessage | None:
        """The next message that is not a ping or a pong (a ping is answered on the way), or
        None when a ping went unanswered."""
        asked = False
        while True:
            try:
                message = await self._socket.receive(self._timeout if asked else self._every)
            except TimeoutError:
                if asked:
                    return None
                with contextlib.suppress(ConnectionError):  # closing: the next receive says so
                    await self._socket.ping()
                asked = True
                continue
            asked = False
            if message.type is WSMsgType.PING:
                with contextlib.suppress(ConnectionError):
                    await self._socket.pong(message.data)
            elif message.type is not WSMsgType.PONG:
                return message


class WebSocketStream:
    """One call over a WebSocket as the service's handlers see a grpclib stream (`CallStream`)."""

    def __init__(
        self,
        request: web.Request,
        socket: web.WebSocketResponse,
        metadata: dict[str, str],
        request_type: type,
        codec: EncodingCodec,
        guard: WebGuard,
        pulse: "Pulse",
    ) -> None:
        self.metadata = metadata
        self.peer = WebPeer(request)
        self._socket = socket
        self._transport = request.transport
        self._guard = guard
        self._request_type = request_type
        self._codec = codec
        self._pulse = pulse
        self._requests: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_REQUESTS)
        self._ending = False

    async def read_frames(self, call: "asyncio.Task[None]") -> None:
        """Queues the client's frames for the call until the socket closes; a close the call
        did not make cancels it, as does a peer that leaves a ping unanswered (logged)."""
        half_closed = False
        while (message := await self._pulse.receive()) is not None:
            if message.type in ENDS:
                break
            if half_closed:
                continue  # the call reads no more
            if message.type is WSMsgType.BINARY:
                await self._requests.put(message.data)
            elif message.type is WSMsgType.TEXT:
                half_closed = True
                await self._requests.put(None)
        if message is None:
            self._refuse(Refusal.KEEPALIVE_TIMEOUT, f"no answer to a ping in {self._pulse}")
            if self._transport is not None:  # no close frame: a stalled peer would not read it
                self._transport.close()
        if not self._ending:
            call.cancel()

    def _refuse(self, reason: Refusal, what: str) -> None:
        addr = self.peer.addr()
        detail = f"WebSocket closed: {what}"
        self._guard.refuse(reason, addr[0] if addr else "unknown", detail)

    async def recv_message(self) -> Any | None:
        data = await self._requests.get()
        return None if data is None else self._codec.decode(data, self._request_type)

    async def send_initial_metadata(self, *, metadata: Mapping[str, str] | None = None) -> None:
        """The call's response metadata (its `chat-epoch`) as one text frame of `key: value`
        lines, before any reply: the same form the client's first frame has."""
        if metadata:
            await self._socket.send_str(header_lines(metadata))

    async def send_message(self, message: Any) -> None:
        await self._socket.send_bytes(self._codec.encode(message, None))

    async def send_trailing_metadata(
        self, *, status: Status = Status.OK, status_message: str | None = None
    ) -> None:
        self._ending = True
        await close_with(self._socket, status, status_message)


async def serve_call(
    request: web.Request,
    run: Callable[[CallStream], Awaitable[None]],
    request_type: type,
    codec: EncodingCodec,
    guard: WebGuard,
) -> web.WebSocketResponse:
    """Runs one call over the socket `request` opens: metadata frame first, then the call."""
    socket = web.WebSocketResponse(max_msg_size=codec.limit, autoping=False)
    await socket.prepare(request)
    limits = guard.limits
    pulse = Pulse(socket, limits.ws_heartbeat, limits.ws_ping_timeout)
    try:
        async with asyncio.timeout(METADATA_SECONDS):
            first = await pulse.receive()
    except TimeoutError:
        first = None
    if first is None:
        addr = WebPeer(request).addr()
        detail = f"WebSocket closed: no metadata frame in {METADATA_SECONDS:g}s"
        guard.refuse(Refusal.HEADER_TIMEOUT, addr[0] if addr else "unknown", detail)
        await close_with(socket, Status.DEADLINE_EXCEEDED, "no metadata frame came")
        return socket
    if first.type is not WSMsgType.TEXT:
        if not socket.closed:
            message = "the first frame must be text: the call's metadata as 'key: value' lines"
            await close_with(socket, Status.INVALID_ARGUMENT, message)
        return socket
    try:
        metadata = parse_header_lines(first.data)
    except GRPCError as error:
        await close_with(socket, error.status, error.message)
        return socket
    stream = WebSocketStream(request, socket, metadata, request_type, codec, guard, pulse)
    call = asyncio.ensure_future(run(stream))
    reader = asyncio.ensure_future(stream.read_frames(call))
    try:
        await asyncio.wait([call])
    finally:
        await cancel_and_wait([reader, call])
    return socket
