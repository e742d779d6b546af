"""A misbehaving HTTP/2 client built on the `h2` library: raw frames on a TCP connection."""

import asyncio
import contextlib
from collections.abc import Sequence

from h2.config import H2Configuration
from h2.connection import H2Connection

from abuse.harness import Target
from chat.contract import GET_STATS, SEND_AND_RECEIVE

GRPC_HEADERS = (("content-type", "application/grpc"), ("te", "trailers"))


def request_headers(
    target: Target, path: str = GET_STATS, extra: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """A gRPC request's headers, `extra` appended."""
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", target.address),
        *GRPC_HEADERS,
        *extra,
    ]


CHAT = SEND_AND_RECEIVE


class RawClient:
    """One connection the attack drives frame by frame; the server's bytes are read and
    dropped in the background (so its writes never block on us), its GOAWAY noticed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = H2Connection(H2Configuration(client_side=True, validate_outbound_headers=False))
        self.closed = asyncio.Event()
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, target: Target, preface: bool = True) -> "RawClient":
        reader, writer = await asyncio.open_connection(target.host, target.port)
        client = cls(reader, writer)
        if preface:
            client.h2.initiate_connection()
            await client.flush()
        return client

    async def _read(self) -> None:
        with contextlib.suppress(OSError):
            while data := await self.reader.read(65536):
                with contextlib.suppress(Exception):  # the server's frames do not matter here
                    self.h2.receive_data(data)
        self.closed.set()

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def flush(self) -> None:
        """Sends what h2 queued; False when the server has closed the connection."""
        self.write(self.h2.data_to_send())
        with contextlib.suppress(OSError):
            await self.writer.drain()

    @property
    def alive(self) -> bool:
        return not self.closed.is_set() and not self.writer.is_closing()

    async def close(self) -> None:
        self._reading.cancel()
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self.writer.wait_closed()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading
