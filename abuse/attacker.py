"""A misbehaving HTTP/2 client built on the `h2` library: raw frames on a TCP connection."""

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import Event
from h2.exceptions import ProtocolError

from abuse.harness import Target
from chat.contract import GET_STATS, SEND_AND_RECEIVE

GRPC_HEADERS = (("content-type", "application/grpc"), ("te", "trailers"))


def request_headers(
    path: str = GET_STATS, extra: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """A gRPC request's headers, `extra` appended."""
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "chat"),
        *GRPC_HEADERS,
        *extra,
    ]


CHAT = SEND_AND_RECEIVE


def grpc_message(body: bytes) -> bytes:
    """A gRPC message: not compressed, its length, then `body`."""
    return b"\0" + len(body).to_bytes(4, "big") + body


async def connect(target: Target, preface: bool = True) -> "RawClient":
    """A raw connection to the target."""
    return await RawClient.connect(target.host, target.port, preface)


class RawClient:
    """One connection the attack drives frame by frame; the server's bytes are read and
    dropped in the background (so its writes never block on us), its GOAWAY noticed."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool = False
    ) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = H2Connection(
            H2Configuration(
                client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
            )
        )
        self.closed = asyncio.Event()
        self.events: list[Event] = []
        """What the server's frames said, when recording (tests look at them)."""
        self._record = record
        self._arrived = asyncio.Event()
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, host: str, port: int, preface: bool = True, record: bool = False
    ) -> "RawClient":
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer, record)
        if preface:
            client.h2.initiate_connection()
            await client.flush()
        return client

    async def _read(self) -> None:
        with contextlib.suppress(OSError):
            while data := await self.reader.read(65536):
                try:
                    events = self.h2.receive_data(data)
                except ProtocolError:  # what the server sends after its GOAWAY does not matter
                    continue
                if self._record:
                    self.events.extend(events)
                    self._arrived.set()
                self.write(self.h2.data_to_send())  # ACKs of SETTINGS and PING, as clients do
        self.closed.set()
        self._arrived.set()

    async def wait_for(self, found: Callable[[Event], bool], seconds: float = 10.0) -> Event | None:
        """The first recorded event `found` accepts, waiting up to `seconds` for it; None when
        the connection closed without one. TimeoutError when neither happened in time."""
        async with asyncio.timeout(seconds):
            while True:
                for event in self.events:
                    if found(event):
                        return event
                if self.closed.is_set():
                    return None
                self._arrived.clear()
                await self._arrived.wait()

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
        await hang_up(self.writer, self._reading)


async def hang_up(writer: asyncio.StreamWriter, reading: asyncio.Task[None]) -> None:
    """Closes a raw connection and stops the task reading it, whatever state either is in."""
    reading.cancel()
    writer.close()
    with contextlib.suppress(OSError, asyncio.CancelledError):
        await writer.wait_closed()
    with contextlib.suppress(asyncio.CancelledError):
        await reading
