"""gRPC-Web (grpc/grpc's doc/PROTOCOL-WEB.md) over aiohttp: one POST is one call.

The body holds the requests in gRPC's framing (flag byte, 4-byte length, message); the response
holds the replies the same way, then the status as a last frame flagged 0x80 whose payload is
HTTP/1 header lines (`grpc-status: 0`). `application/grpc-web-text` is the same, base64-encoded:
requests may be base64 in chunks, each padded; each response write is encoded on its own.
Requests are read as they arrive, so a client that streams its body gets a streaming call.
"""

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import hdrs, web
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.server.encoding.base import EncodingCodec
from chat.server.guard.limits import Refusal
from chat.server.http2.base import compressed, cut_short
from chat.server.web.base import WebPeer, status_lines
from chat.server.web.guard import WebGuard, said

BINARY = "application/grpc-web"
TEXT = "application/grpc-web-text"
CONTENT_TYPES = {
    BINARY: False,
    BINARY + "+proto": False,
    TEXT: True,
    TEXT + "+proto": True,
}
"""The request content types served, and whether each is base64 text."""
DATA = 0x00
TRAILERS = 0x80
COMPRESSED = 0x01
PREFIX = 5
"""Bytes before each message: its flags and its big-endian length."""
READ_SIZE = 64 * 1024


def is_text(content_type: str) -> bool | None:
    """Whether a request's content type is base64 text; None when it is not gRPC-Web."""
    return CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())


def wants_text(request: web.Request, text_request: bool) -> bool:
    """Whether the response is base64 text: for a text request, or one that accepts only that
    (PROTOCOL-WEB.md: `Accept: application/grpc-web-text`)."""
    return text_request or TEXT in request.headers.get(hdrs.ACCEPT, "")


def frame(flags: int, payload: bytes) -> bytes:
    """One gRPC-Web frame."""
    return bytes([flags]) + len(payload).to_bytes(4, "big") + payload


def trailers(status: Status, message: str | None) -> bytes:
    """The last frame of a response: the call's status."""
    return frame(TRAILERS, status_lines(status, message))


async def base64_chunks(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The bytes of a base64 body that may be several padded base64 strings one after another
    (how grpc-web-text clients send); INVALID_ARGUMENT for anything that is not base64."""
    pending = b""
    async for chunk in chunks:
        pending += chunk.translate(None, b" \t\r\n")
        whole = len(pending) // 4 * 4
        if whole:
            yield _decode_groups(pending[:whole])
            pending = pending[whole:]
    if pending:
        raise GRPCError(Status.INVALID_ARGUMENT, "the request body is not valid base64")


def _decode_groups(text: bytes) -> bytes:
    """Whole 4-character groups of base64, where a padded group may end a string mid-way."""
    decoded = bytearray()
    start = 0
    while start < len(text):
        pad = text.find(b"=", start)
        end = len(text) if pad == -1 else (pad // 4 + 1) * 4
        try:
            decoded += binascii.a2b_base64(text[start:end], strict_mode=True)
        except binascii.Error:
            raise GRPCError(
                Status.INVALID_ARGUMENT, "the request body is not valid base64"
            ) from None
        start = end
    return bytes(decoded)


class FrameReader:
    """Requests out of a body's chunks, one gRPC frame at a time; a body that stalls ends the
    call.

    A body stalls when no byte comes for `timeout` seconds while a message is part-read, or
    while any of a body of announced length (`sized`, Content-Length) is still to come. A
    streamed (chunked) body may rest between messages as long as it likes, as an HTTP/2
    stream may: a client that streams its requests sends them as its user types.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        codec: EncodingCodec,
        timeout: float,
        sized: bool,
    ) -> None:
        self._chunks = chunks
        self._codec = codec
        self._timeout = timeout
        self._sized = sized
        self._buffer = bytearray()
        self._ended = False

    async def _fill(self, size: int) -> bool:
        """Reads until `size` bytes are buffered; False when the body ended first,
        INVALID_ARGUMENT when aiohttp could not read it (a Content-Encoding that does not
        decode), DEADLINE_EXCEEDED when it stalled."""
        while len(self._buffer) < size and not self._ended:
            timeout = self._timeout if self._sized or self._buffer else None
            try:
                async with asyncio.timeout(timeout):
                    self._buffer += await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
            except web.RequestPayloadError as error:
                raise GRPCError(
                    Status.INVALID_ARGUMENT, f"the request body cannot be read: {said(error)}"
                ) from None
            except TimeoutError:
                raise GRPCError(
                    Status.DEADLINE_EXCEEDED,
                    f"the request body stalled: nothing came for {self._timeout:g}s",
                ) from None
        return len(self._buffer) >= size

    async def next_message(self) -> bytes | None:
        """The next message's bytes, or None at the end of the body; GRPCError for a frame that
        is compressed, flagged as trailers, over the size limit (before its body is read) or
        cut short."""
        if not await self._fill(PREFIX):
            if self._buffer:
                raise cut_short()
            return None
        flags = self._buffer[0]
        size = int.from_bytes(self._buffer[1:PREFIX], "big")
        if flags & COMPRESSED:
            raise compressed()
        if flags != DATA:
            raise GRPCError(Status.INVALID_ARGUMENT, f"a request frame has flags {flags:#04x}")
        if size > self._codec.limit:
            raise self._codec.too_large(size)
        if not await self._fill(PREFIX + size):
            raise cut_short()
        message = bytes(self._buffer[PREFIX : PREFIX + size])
        del self._buffer[: PREFIX + size]
        return message


class GrpcWebStream:
    """One gRPC-Web call as the service's handlers see a grpclib stream (`CallStream`)."""

    def __init__(
        self,
        request: web.Request,
        request_type: type,
        codec: EncodingCodec,
        text: bool,
        headers: Mapping[str, str],
        guard: WebGuard,
    ) -> None:
        self.metadata = request.headers
        self.peer = WebPeer(request)
        self._guard = guard
        self._body_stalled = False
        self._text = wants_text(request, text)
        self.response = web.StreamResponse(
            headers={"Content-Type": (TEXT if self._text else BINARY) + "+proto", **headers}
        )
        self._request = request
        self._request_type = request_type
        self._codec = codec
        chunks = request.content.iter_chunked(READ_SIZE)
        self._requests = FrameReader(
            base64_chunks(chunks) if text else chunks,
            codec,
            guard.limits.body_timeout,
            request.content_length is not None,
        )

    async def recv_message(self) -> Any | None:
        """The next request, None at the end of the body; GRPCError for a body that cannot be
        read on, whose connection then closes after the answer (`Connection: close`)."""
        try:
            data = await self._requests.next_message()
        except GRPCError as error:
            self.response.force_close()
            if error.status is Status.DEADLINE_EXCEEDED:
                self._stalled()
            raise
        return None if data is None else self._codec.decode(data, self._request_type)

    def _stalled(self) -> None:
        self._body_stalled = True
        addr = self.peer.addr()
        timeout = self._guard.limits.body_timeout
        detail = f"a request body stalled: nothing came for {timeout:g}s, DEADLINE_EXCEEDED"
        self._guard.refuse(Refusal.BODY_TIMEOUT, addr[0] if addr else "unknown", detail)

    async def send_initial_metadata(self, *, metadata: Mapping[str, str] | None = None) -> None:
        """The response's headers, `metadata` among them (a call's `chat-epoch`), sent now."""
        if not self.response.prepared:
            self.response.headers.update(metadata or {})
            await self.response.prepare(self._request)

    async def send_message(self, message: Any) -> None:
        await self._write(frame(DATA, self._codec.encode(message, None)))

    async def send_trailing_metadata(
        self, *, status: Status = Status.OK, status_message: str | None = None
    ) -> None:
        await self._write(trailers(status, status_message))
        await self.response.write_eof()
        if self._body_stalled and self._request.transport is not None:
            # Closed now: aiohttp would wait its lingering time (10 s) for the rest of the
            # body, which is not coming.
            self._request.transport.close()

    async def _write(self, data: bytes) -> None:
        if not self.response.prepared:
            await self.response.prepare(self._request)
        await self.response.write(base64.b64encode(data) if self._text else data)
