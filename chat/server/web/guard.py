"""What one client may cost the web door, and what is refused past it.

The door shares the server's `Guard` with the gRPC port: a connection to either counts against
the same limits, in all and per address, and the same file budget. Its clocks are its own: a
request's head must arrive whole in time (slowloris), an idle keep-alive connection closes
(aiohttp's `keepalive_timeout`), a request body may not stall, and a quiet WebSocket must
answer its pings. Refusals are counted by reason
(`chat_web_refusals_total`) and logged once per peer and reason a minute, in the
`chat.server.web` logger.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.http import HttpProcessingError
from aiohttp.typedefs import Handler

from chat.errors import drop_tracebacks
from chat.server.guard.limits import Guard, Refusal
from chat.server.reclaim import Reclaimer
from chat.server.refusals import Refusals
from chat.server.rules import SHOWN_CHARACTERS


@dataclass(frozen=True, slots=True)
class WebLimits:
    """The web door's clocks, with the defaults a public server wants."""

    header_timeout: float = 10.0
    """Seconds a request's head (its line and headers) may take from its first byte: a
    browser sends it in one packet, a slowloris one byte at a time."""
    keepalive_timeout: float = 30.0
    """Seconds a connection may sit idle between requests (and before its first): longer
    than browsers keep an idle connection (Chrome 300 s is the exception: it reconnects)."""
    body_timeout: float = 30.0
    """Seconds a gRPC-Web request body may go without a byte while a message is part-sent
    or its announced length (Content-Length) is not all in."""
    ws_heartbeat: float = 20.0
    """Seconds a WebSocket may go without a whole frame before it is pinged: under the 30 s
    and more that proxies let a connection idle."""
    ws_ping_timeout: float = 10.0
    """Seconds a ping has for its answer (any frame); then the socket is closed and its call
    cancelled: a dead peer, or one trickling a frame byte by byte, is gone within 30 s."""


CLIENT_FAULTS = (HttpProcessingError, web.RequestPayloadError)
"""What aiohttp raises for a request it cannot read: a bad request line, headers past its
limits, a chunk that does not parse, a body that its Content-Encoding does not decode."""


class ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """The log aiohttp's connections write to (its `logger`), where a request it could not read
    is the client's fault, not the server's: one WARNING per address a minute, counted as
    `bad_request`, never a traceback. Anything else is logged as aiohttp says."""

    def __init__(self, refusals: Refusals[Refusal]) -> None:
        super().__init__(logging.getLogger("chat.server.web"), {})
        self._refusals = refusals

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if not isinstance(error, CLIENT_FAULTS):
            super().log(level, msg, *args, **kwargs)
            return
        drop_tracebacks(error)  # the request's payload keeps it, and its frames the payload
        if args:  # aiohttp 3.14: "Error handling request from %s", answered 400
            detail = f"bad request, answered 400: {said(error)}"
            self._refusals.refuse(Refusal.BAD_REQUEST, str(args[0]), detail)
        # Without a peer, a body failed again as aiohttp drained it after its call ended; the
        # call's own line (INVALID_ARGUMENT) has said so already.


def said(error: BaseException) -> str:
    """What an error of aiohttp's says, on one line of ASCII, cut short."""
    cause = error.__cause__ if isinstance(error, web.RequestPayloadError) else error
    text = cause.message if isinstance(cause, HttpProcessingError) else str(cause)
    line = " ".join(str(text).encode("ascii", "backslashreplace").decode().split())
    return line if len(line) <= SHOWN_CHARACTERS else line[:SHOWN_CHARACTERS] + "..."


class WebGuard:
    """The web door's limits and refusals, with the server's guard, which counts its
    connections together with the gRPC port's."""

    def __init__(self, guard: Guard, limits: WebLimits, reclaimer: Reclaimer) -> None:
        self.guard = guard
        self.limits = limits
        self.refusals = guard.web_refusals
        self.reclaimer = reclaimer

    def refuse(self, reason: Refusal, address: str, detail: str) -> None:
        self.refusals.refuse(reason, address, detail)

    def factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server`: aiohttp's connections (`make`, the
        runner's `server`), each behind a GuardedConnection."""
        return lambda: GuardedConnection(self, make)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Tells the request's connection that its head arrived whole, and when the request
        ends (its clock for the next head starts then)."""
        transport = request.transport
        connection = transport.get_protocol() if transport is not None else None
        if not isinstance(connection, GuardedConnection):
            return await handler(request)
        connection.started()
        try:
            return await handler(request)
        finally:
            connection.ended()


class GuardedConnection(asyncio.Protocol):
    """One connection to the web door: admitted by the server's guard before aiohttp sees it,
    and closed when a request's head is not whole `header_timeout` after its first byte."""

    def __init__(self, guard: WebGuard, make: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._address = "unknown"
        self._opened = 0.0
        self._busy = False
        self._head: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        guard = self._guard
        self._transport = cast(asyncio.Transport, transport)
        if guard.guard.admit(self._address, guard.refusals) is not None:
            self._transport.abort()
            return
        self._opened = time.monotonic()
        self._inner = self._make()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._busy and self._head is None:
            timeout = self._guard.limits.header_timeout
            self._head = asyncio.get_running_loop().call_later(timeout, self._head_late)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        inner, self._inner = self._inner, None
        if inner is None:
            return  # refused: nothing was set up
        self._stop_clock()
        self._guard.guard.leave(self._address)
        inner.connection_lost(exc)
        self._guard.reclaimer.ended()

    def started(self) -> None:
        """A request's head arrived whole: its handler runs."""
        self._busy = True
        self._stop_clock()

    def ended(self) -> None:
        """The request's handler returned: the next bytes begin another head."""
        self._busy = False

    def _stop_clock(self) -> None:
        if self._head is not None:
            self._head.cancel()
            self._head = None

    def _head_late(self) -> None:
        self._head = None
        if self._transport is None or self._inner is None:
            return
        timeout = self._guard.limits.header_timeout
        seconds = time.monotonic() - self._opened
        self._guard.refuse(
            Refusal.HEADER_TIMEOUT,
            self._address,
            f"connection closed after {seconds:.0f}s: a request's head not whole in {timeout:g}s",
        )
        self._transport.abort()
