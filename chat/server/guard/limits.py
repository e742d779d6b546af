"""What one client may cost the server on its HTTP/2 connections, and what is refused past it.

The policy lives here, apart from how it is enforced: budgets of cheap frames (a client flooding
RST_STREAM, PING, SETTINGS or empty frames makes the server work without asking it anything),
how many connections a client address and all clients may hold, how long a connection may sit
in a handshake, inside a frame or idle, how long a request message may take to come whole,
and how many request bytes may wait to be read. `chat.server.guard.protocol` enforces it in
front of either HTTP/2 implementation.
The web door's connections are counted here too, against the same totals
(chat/server/web/guard.py).

Every refusal is counted by reason, and logged once per peer and reason per interval: an
attacker's ten thousand frames make one line, not ten thousand.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from enum import Enum

from chat.server.refusals import Refusals

log = logging.getLogger("chat.server.http2")
web_log = logging.getLogger("chat.server.web")

KiB = 1024
MiB = 1024 * KiB
WINDOWS = (65535, 2**31 - 1)
"""The flow-control windows HTTP/2 allows: its initial window, and its largest (RFC 9113,
6.9.1); `connection_window` and `stream_window` lie between them."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Every HTTP/2 limit, with the defaults a public server wants."""

    frame_window: float = 10.0
    """Seconds over which the frame budgets below are counted (refilled steadily)."""
    max_resets: int = 500
    """RST_STREAM frames a connection may send per `frame_window`."""
    max_pings: int = 50
    """PING frames a connection may send per `frame_window`."""
    max_settings: int = 50
    """SETTINGS frames a connection may send per `frame_window`."""
    max_empty_frames: int = 200
    """Frames that carry nothing (empty DATA without END_STREAM, PRIORITY) per `frame_window`."""
    max_streams: int = 100
    """Streams open at once on a connection; the next is refused with REFUSED_STREAM."""
    max_connections: int = 4096
    """Connections open at once, from all clients."""
    max_connections_per_address: int = 256
    """Connections open at once from one client address."""
    handshake_timeout: float = 10.0
    """Seconds a new connection has to send its preface and SETTINGS."""
    header_timeout: float = 10.0
    """Seconds a frame (a header block above all) may stay half-received."""
    idle_timeout: float = 300.0
    """Seconds a connection with no open stream may stay silent before it is closed."""
    keepalive_seconds: float = 60.0
    """Seconds of silence on a connection with open streams before it is sent a PING."""
    keepalive_timeout: float = 20.0
    """Seconds a PING has for its answer; without one the peer is taken for dead."""
    body_timeout: float = 30.0
    """Seconds a request message has to arrive whole once its 5-byte prefix has."""
    connection_window: int = 1 * MiB
    """Request bytes a connection may have sent and the server not yet read (flow control)."""
    stream_window: int = 256 * KiB
    """The same, for one stream."""
    max_buffered_bytes: int = 128 * MiB
    """Request bytes waiting to be read across all connections; a connection adding to them
    past it is closed."""
    log_interval: float = 60.0
    """Seconds between two log lines about the same peer and reason."""

    @property
    def tick(self) -> float:
        """How often a connection's clocks are looked at."""
        shortest = min(
            self.handshake_timeout,
            self.header_timeout,
            self.keepalive_timeout,
            self.body_timeout,
        )
        return max(0.05, min(1.0, shortest / 4))


class Refusal(Enum):
    """Why a connection, a stream or a request was refused: the metrics' label."""

    RESETS = "resets"
    PINGS = "pings"
    SETTINGS = "settings"
    EMPTY_FRAMES = "empty_frames"
    STREAMS = "streams"
    PROTOCOL_ERROR = "protocol_error"
    MALFORMED = "malformed_request"
    CONNECTIONS = "connections"
    CONNECTIONS_PER_ADDRESS = "connections_per_address"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    HEADER_TIMEOUT = "header_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    KEEPALIVE_TIMEOUT = "keepalive_timeout"
    BODY_TIMEOUT = "body_timeout"
    BUFFERED_BYTES = "buffered_bytes"
    FILE_LIMIT = "file_limit"
    BAD_REQUEST = "bad_request"
    """The web door: a request aiohttp could not read (answered 400)."""
    MISDIRECTED = "misdirected"
    """The web door: a request naming a Host that is not the server's (answered 421)."""


WEB_ONLY = frozenset({Refusal.BAD_REQUEST, Refusal.MISDIRECTED})
"""Reasons only the web door has: not among the HTTP/2 port's."""
WEB_REFUSALS = (
    Refusal.CONNECTIONS,
    Refusal.CONNECTIONS_PER_ADDRESS,
    Refusal.FILE_LIMIT,
    Refusal.HEADER_TIMEOUT,
    Refusal.BODY_TIMEOUT,
    Refusal.KEEPALIVE_TIMEOUT,
    *sorted(WEB_ONLY, key=lambda reason: reason.value),
)
"""Why the web door refuses: the labels of its metric."""

FRAME_BUDGETS = (Refusal.RESETS, Refusal.PINGS, Refusal.SETTINGS, Refusal.EMPTY_FRAMES)
"""The frame kinds each connection has a budget of."""

FILES_KEPT = 64
"""File descriptors kept from connections: the store's, the listening sockets', the log's."""


class Budget:
    """A token bucket: `limit` tokens per `window` seconds, refilled steadily, `limit` at most."""

    __slots__ = ("limit", "rate", "stamp", "tokens")

    def __init__(self, limit: int, window: float, now: float) -> None:
        self.limit = limit
        self.rate = limit / window
        self.tokens = float(limit)
        self.stamp = now

    def spend(self, count: int, now: float) -> bool:
        """Takes `count` tokens; False when there were not enough (the budget is spent)."""
        self.tokens = min(self.limit, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= count
        return self.tokens >= 0


class Guard:
    """The limits of one server, with what they count across its connections."""

    def __init__(self, limits: Limits | None = None, files: int | None = None) -> None:
        self.limits = limits or Limits()
        self.refusals: Refusals[Refusal] = Refusals(self.limits.log_interval, logger=log)
        self.web_refusals: Refusals[Refusal] = Refusals(self.limits.log_interval, logger=web_log)
        """The web door's refusals, told in its own logger and metric."""
        self.files = files
        """The process's file limit, when known: connections stop FILES_KEPT short of it, so
        running out of descriptors is a logged refusal, not an accept failing unseen."""
        self.connections = 0
        self.by_address: Counter[str] = Counter()
        self.buffered = 0
        """Request bytes received on all connections and not yet read."""
        self.reserved = 0
        """Bytes of request messages whose bodies are on their way (their parts gathered)."""

    def admit(self, address: str, refusals: Refusals[Refusal] | None = None) -> Refusal | None:
        """Counts a new connection from `address`, or says why it is refused (then it is not
        counted, and the refusal is logged: in `refusals`, the HTTP/2 port's when None)."""
        limits = self.limits
        reason = None
        if self.connections >= limits.max_connections:
            reason, detail = Refusal.CONNECTIONS, f"{limits.max_connections} connections open"
        elif self.files is not None and self.connections >= self.files - FILES_KEPT:
            reason = Refusal.FILE_LIMIT
            detail = (
                f"{self.connections} connections open, near the file limit of {self.files} "
                "(raise it with ulimit -n, or lower --h2-max-connections)"
            )
        elif self.by_address[address] >= limits.max_connections_per_address:
            reason = Refusal.CONNECTIONS_PER_ADDRESS
            detail = f"{limits.max_connections_per_address} connections open from this address"
        if reason is not None:
            (refusals or self.refusals).refuse(reason, address, f"connection refused: {detail}")
            return reason
        self.connections += 1
        self.by_address[address] += 1
        return None

    def reserve(self, size: int, address: str) -> bool:
        """Counts `size` bytes of a message body on their way from `address` (the caller takes
        them off `reserved` once the body came or went); False (logged) when they would take
        the server past its budget of unread bytes."""
        limit = self.limits.max_buffered_bytes
        if self.buffered + self.reserved + size > limit:
            self.refusals.refuse(
                Refusal.BUFFERED_BYTES,
                address,
                f"a {size}-byte message refused: {self.buffered + self.reserved} request bytes "
                f"unread on the server, {limit} at most",
            )
            return False
        self.reserved += size
        return True

    def leave(self, address: str) -> None:
        """Uncounts a connection that `admit` counted."""
        self.connections -= 1
        self.by_address[address] -= 1
        if not self.by_address[address]:
            del self.by_address[address]


class ConnectionGuard:
    """The budgets and clocks of one connection."""

    __slots__ = (
        "_budgets",
        "address",
        "buffered",
        "guard",
        "last_received",
        "opened",
        "ping_sent",
        "stalled",
        "stalled_since",
    )

    def __init__(self, guard: Guard, address: str, now: float) -> None:
        self.guard = guard
        self.address = address
        self.opened = now
        self.last_received = now
        """When the client last sent anything."""
        self.stalled: int | None = None
        """What was half-received when the clocks were last looked at (see `due`)."""
        self.stalled_since = now
        self.ping_sent: float | None = None
        """When a keepalive PING went out that is still unanswered."""
        self.buffered = 0
        """Request bytes this connection holds unread (counted in the guard's total too)."""
        self._budgets: dict[Refusal, Budget] = {}

    def spend(self, reason: Refusal, count: int, now: float) -> bool:
        """Charges `count` frames of a budgeted kind just received; False when that overspent
        its budget (logged)."""
        limits = self.guard.limits
        budget = self._budgets.get(reason)
        if budget is None:
            budget = self._budgets[reason] = Budget(
                _frame_limit(limits, reason), limits.frame_window, now
            )
        if budget.spend(count, now):
            return True
        self.guard.refusals.refuse(
            reason,
            self.address,
            f"over {budget.limit} {reason.value.replace('_', ' ')} per "
            f"{limits.frame_window:g}s: GOAWAY ENHANCE_YOUR_CALM",
        )
        return False

    def hold(self, size: int) -> Refusal | None:
        """Counts the connection now holding `size` unread request bytes; BUFFERED_BYTES when
        that takes the server past its total (logged)."""
        guard = self.guard
        grew = size - self.buffered
        guard.buffered += grew
        self.buffered = size
        if grew > 0 and guard.buffered > guard.limits.max_buffered_bytes:
            guard.refusals.refuse(
                Refusal.BUFFERED_BYTES,
                self.address,
                f"{guard.buffered} request bytes unread on the server, over "
                f"{guard.limits.max_buffered_bytes}: connection closed",
            )
            return Refusal.BUFFERED_BYTES
        return None

    def due(
        self, now: float, open_streams: int, stalled: int | None, handshaken: bool
    ) -> Refusal | bool | None:
        """What the clocks say: a Refusal when the connection has to go (logged), True when a
        keepalive PING should go out now, None otherwise. `stalled`: what is half-received (a
        number that changes with it), or None; `handshaken`: whether the preface and a
        SETTINGS frame came."""
        limits = self.guard.limits
        if stalled is None or stalled != self.stalled:
            self.stalled_since = now
        self.stalled = stalled
        reason: Refusal | None = None
        if not handshaken:
            if now - self.opened > limits.handshake_timeout:
                reason, what = Refusal.HANDSHAKE_TIMEOUT, "no preface and SETTINGS"
        elif stalled is not None and now - self.stalled_since > limits.header_timeout:
            reason, what = Refusal.HEADER_TIMEOUT, "a frame left half-sent"
        elif self.ping_sent is not None and now - self.ping_sent > limits.keepalive_timeout:
            reason, what = Refusal.KEEPALIVE_TIMEOUT, "no answer to a keepalive PING"
        elif not open_streams and now - self.last_received > limits.idle_timeout:
            reason, what = Refusal.IDLE_TIMEOUT, "idle"
        if reason is not None:
            seconds = now - self.opened
            self.guard.refusals.refuse(
                reason, self.address, f"connection closed after {seconds:.0f}s: {what}"
            )
            return reason
        if (
            open_streams
            and self.ping_sent is None
            and now - self.last_received > limits.keepalive_seconds
        ):
            self.ping_sent = now
            return True
        return None


def file_limit() -> int | None:
    """The process's limit of open files, raised to the hard limit first (a server wants all
    it may have); None where the platform has no such limit."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else soft


def _frame_limit(limits: Limits, reason: Refusal) -> int:
    return {
        Refusal.RESETS: limits.max_resets,
        Refusal.PINGS: limits.max_pings,
        Refusal.SETTINGS: limits.max_settings,
        Refusal.EMPTY_FRAMES: limits.max_empty_frames,
    }[reason]
