"""Request headers checked before a call starts: what grpclib would crash on, refused instead.

grpclib reads a request's headers inside the call's task and logs a traceback for headers it
cannot read (no `:method`, a `-bin` value that is not base64, a `grpc-timeout` already spent),
leaving the stream unanswered; h2 raises on a header byte that is not ASCII, taking the
connection down. Here each is found before its call starts, on both transports
(`CheckedHandler` in `grpclib_impl`), and the guard answers it: RST_STREAM PROTOCOL_ERROR for a
request HTTP/2 calls malformed, a gRPC status for one gRPC does.
"""

import binascii
from dataclasses import dataclass

from grpclib.const import Status
from grpclib.metadata import Deadline, decode_metadata

REQUIRED = (":method", ":scheme", ":path")
"""The pseudo-headers every request has (RFC 9113, 8.3.1)."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """Why a request is refused, and how: a gRPC status, or None for RST_STREAM."""

    reason: str
    status: Status | None = None


def check_request(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]] | Malformed:
    """The headers as text for grpclib, or why the request is refused."""
    try:
        text = [(name.decode("ascii"), value.decode("ascii")) for name, value in headers]
    except UnicodeDecodeError:
        return Malformed("a header is not ASCII")
    names = {name for name, _ in text}
    for name in REQUIRED:
        if name not in names:
            return Malformed(f"no {name} header")
    if len(names) < len(text) and any(
        sum(1 for other, _ in text if other == name) > 1 for name in REQUIRED
    ):
        return Malformed("a pseudo-header twice")
    try:
        decode_metadata(text)
    except (binascii.Error, ValueError) as error:
        return Malformed(f"metadata that cannot be read: {error}", Status.INVALID_ARGUMENT)
    try:
        deadline = Deadline.from_headers(text)
    except ValueError:  # grpclib answers it with a status of its own
        return text
    if deadline is not None and deadline.time_remaining() <= 0:
        return Malformed("grpc-timeout is spent before the call began", Status.DEADLINE_EXCEEDED)
    return text
