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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import WSMsgType, hdrs, web
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.server.encoding.base import EncodingCodec
from chat.server.http2.base import CallStream
from chat.server.http2.guard import Refusal
from chat.server.web.base import WebPeer, header_lines, parse_header_lines
from chat.server.web.guard import WebGuard
from chat.tasks import cancel_and_wait

CLOSE_CODE_BASE = 4000
"""A call's close code is this plus its gRPC status (4000 OK, 4016 UNAUTHENTICATED)."""
REASON_BYTES = 123
"""The longest close reason the WebSocket protocol allows, in UTF-8 bytes."""
METADATA_SECONDS = 10.0
"""How long a new socket may take to send its metadata frame."""
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
    ) -> None:
        self.metadata = metadata
        self.peer = WebPeer(request)
        self._socket = socket
        self._transport = request.transport
        self._guard = guard
        self._request_type = request_type
        self._codec = codec
        self._requests: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_REQUESTS)
        self._ending = False

    async def read_frames(self, call: "asyncio.Task[None]") -> None:
        """Queues the client's frames for the call until the socket closes; a close the call
        did not make cancels it, as does a peer that leaves a ping unanswered or sends no
        whole frame for `ws_idle_timeout` (both logged)."""
        limits = self._guard.limits
        try:
            await self._queue_frames()
        except TimeoutError:
            self._refuse(Refusal.IDLE_TIMEOUT, f"no whole frame in {limits.ws_idle_timeout:g}s")
            if self._transport is not None:  # no close frame: its answer would trickle too
                self._transport.close()
        if isinstance(self._socket.exception(), TimeoutError):  # aiohttp's heartbeat
            self._refuse(Refusal.KEEPALIVE_TIMEOUT, f"no pong in {limits.ws_heartbeat / 2:g}s")
        if not self._ending:
            call.cancel()

    async def _queue_frames(self) -> None:
        half_closed = False
        async for message in self._socket:
            if message.type is WSMsgType.ERROR:
                break
            if half_closed:
                continue  # the call reads no more
            if message.type is WSMsgType.BINARY:
                await self._requests.put(message.data)
            elif message.type is WSMsgType.TEXT:
                half_closed = True
                await self._requests.put(None)

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
    socket = web.WebSocketResponse(
        max_msg_size=codec.limit,
        heartbeat=guard.limits.ws_heartbeat,
        receive_timeout=guard.limits.ws_idle_timeout,
    )
    await socket.prepare(request)
    try:
        first = await socket.receive(timeout=METADATA_SECONDS)
    except TimeoutError:
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
    stream = WebSocketStream(request, socket, metadata, request_type, codec, guard)
    call = asyncio.ensure_future(run(stream))
    reader = asyncio.ensure_future(stream.read_frames(call))
    try:
        await asyncio.wait([call])
    finally:
        await cancel_and_wait([reader, call])
    return socket
