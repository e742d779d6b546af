"""What the web door's two kinds of stream share: the caller's address, and metadata and status
written as HTTP/1 header lines (gRPC-Web's trailer frame, the WebSocket's first frame)."""

import re
from collections.abc import Mapping
from urllib.parse import quote

from aiohttp import web
from grpclib.const import Status
from grpclib.exceptions import GRPCError

HEADER_NAME = re.compile(r"[a-z0-9_.-]+")
"""A metadata key, lower-cased, as gRPC allows it."""
MESSAGE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
"""What grpc-message carries as it is; anything else is percent-encoded, as gRPC specifies."""


class WebPeer:
    """A browser's address, taken when its request arrived (the connection may be gone later)."""

    def __init__(self, request: web.BaseRequest) -> None:
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        self._addr = (str(peername[0]), int(peername[1])) if peername else None

    def addr(self) -> tuple[str, int] | None:
        return self._addr


def status_lines(status: Status, message: str | None) -> bytes:
    """`grpc-status` and `grpc-message` as HTTP/1 header lines, each ended by CRLF."""
    lines = f"grpc-status: {status.value}\r\n"
    if message:
        lines += f"grpc-message: {quote(message, safe=MESSAGE_SAFE)}\r\n"
    return lines.encode("ascii")


def header_lines(metadata: Mapping[str, str]) -> str:
    """Metadata as `key: value` lines, each ended by CRLF."""
    return "".join(f"{key}: {value}\r\n" for key, value in metadata.items())


def parse_header_lines(block: str) -> dict[str, str]:
    """`key: value` lines (CRLF or LF) as metadata, keys lower-cased; INVALID_ARGUMENT for a
    line without a colon or a key that is not a header name."""
    metadata: dict[str, str] = {}
    for line in block.splitlines():
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon or not HEADER_NAME.fullmatch(key):
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"metadata line {line[:64]!r} is not 'key: value'"
            )
        metadata[key] = value.strip()
    return metadata
