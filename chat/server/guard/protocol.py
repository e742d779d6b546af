"""The guard in front of a connection: its limits enforced on the bytes, before HTTP/2 reads them.

`GuardedProtocol` is the asyncio protocol a server's listening socket makes for each
connection. It admits the connection or refuses it, reads the frame headers of what the client
sends and of what the server writes back (`FrameReader`), and only then hands the bytes to the
HTTP/2 protocol behind it, grpclib's or the direct transport's alike. A flood of cheap frames
ends in GOAWAY ENHANCE_YOUR_CALM before any of it is answered; a stream past the limit is
refused here; a connection that stalls, idles, stops answering PINGs or holds too many unread
bytes is closed; a call whose request message stops halfway ends. The frames it sends
(GOAWAY, RST_STREAM, PING, SETTINGS, a call's status) it writes itself.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

from grpclib.const import Status

from chat.server.guard.frames import (
    CLIENT_ENDED,
    RESPONDED,
    SERVER_ENDED,
    ErrorCode,
    FrameReader,
    call_ended,
    goaway,
    max_streams_setting,
    no_header_table_setting,
    ping,
    rst_stream,
    window_update,
    without_streams,
)
from chat.server.guard.limits import ConnectionGuard, Guard, Refusal

KEEPALIVE_OPAQUE = b"chat-ka!"
"""The eight bytes of the guard's keepalive PING."""
EARLY_STILLBORN = 10
"""Streams a client may open and reset at once, or have refused, before it has agreed to
header blocks without a table, when the protocol behind the guard keeps each such stream (they
cannot be left out yet): past it, GOAWAY ENHANCE_YOUR_CALM. A client that has just connected
has no call to cancel, and one that keeps to the limit it was told is not refused; one
resetting or overflowing streams by the hundred before it acknowledged the server's SETTINGS
is an attack."""


class GuardedProtocol(asyncio.Protocol):
    """One connection held to `guard`'s limits, in front of the HTTP/2 protocol that serves it,
    which `inner` makes (given this guard, to refuse requests through it). `max_streams`: the
    streams it lets the client have open at once (the guard's limit, or less where the inner
    protocol admits fewer); `lost`: called once the connection is gone.

    A request message whose 5-byte prefix came has `body_timeout` for the rest of it, and its
    announced size counts against the server's budget of unread bytes while it comes: past
    either, the call ends (DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) as the guard answers it, and
    the inner protocol is handed a RST_STREAM for it, as if the client had reset it.

    A stream the client opens and resets in the same bytes, or one refused, is handed to
    `inner` as it came (its header block: `inner`'s header table has to read it) unless
    `drops_stillborn`: then, at the first such stream, the guard asks the client for header
    blocks that need no table (SETTINGS_HEADER_TABLE_SIZE 0); once it has agreed, such streams'
    frames go no further, and until then it may make EARLY_STILLBORN of them. For an `inner`
    that starts a call for every stream it is shown: grpclib does, and keeps a stream reset
    before its task ran, with every other such stream of the connection, until its server
    next sweeps its closed connections.
    """

    def __init__(
        self,
        inner: Callable[["GuardedProtocol"], asyncio.Protocol],
        guard: Guard,
        max_streams: int,
        lost: Callable[[], None],
        drops_stillborn: bool = False,
    ) -> None:
        self.guard = guard
        self.lost = lost
        self.drops_stillborn = drops_stillborn
        self.early_stillborn = 0
        """Streams opened and reset at once, or refused, handed on before the client agreed
        (see EARLY_STILLBORN)."""
        self.reader = FrameReader(max_streams)
        self.watch: ConnectionGuard | None = None
        """The connection's budgets and clocks; None once it closed, or when it was refused."""
        self.address = "unknown"
        self.closed = False
        """Whether the guard ended the connection (or refused it): nothing more goes either way."""
        self.ended: list[int] = []
        """Streams the guard ended whose RST_STREAM the inner protocol has yet to be handed:
        it is, once the client's bytes are between two frames."""
        self.transport: asyncio.Transport
        self._timer: asyncio.TimerHandle | None = None
        self.inner = inner(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admits the peer, or refuses it (the inner protocol is made and lost all the same,
        so whatever its server keeps per connection is let go)."""
        self.transport = cast(asyncio.Transport, transport)  # a socket's
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        wrapped = GuardedTransport(self.transport, self)
        if self.guard.admit(self.address) is not None:
            self.closed = True
            self.inner.connection_made(wrapped)
            self.transport.abort()
            return
        self.watch = ConnectionGuard(self.guard, self.address, time.monotonic())
        self.inner.connection_made(wrapped)
        # After the inner protocol's own SETTINGS (it writes them at once): the last word.
        self.transport.write(max_streams_setting(self.reader.max_streams))
        self.reader.settings_sent += 1
        self._timer = asyncio.get_running_loop().call_later(self.guard.limits.tick, self._tick)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        watch = self.watch
        assert watch is not None
        now = time.monotonic()
        watch.last_received = now
        reader = self.reader
        reader.received(data)
        if (reader.resets or reader.pings or reader.settings or reader.empty) and not self._spend(
            reader, watch, now
        ):
            self._go_away(ErrorCode.ENHANCE_YOUR_CALM)  # the flood is never read: no answers
            return
        unread = reader.unread(self.guard.limits.connection_window)
        if unread != watch.buffered and watch.hold(unread) is not None:
            self._go_away(ErrorCode.ENHANCE_YOUR_CALM)
            return
        if reader.released:
            self._release()
        if reader.started:
            self._count_bodies(now)
        if reader.refused:
            self._count_refused()
        if self.drops_stillborn and (reader.fresh_resets or reader.refusals):
            data = self._drop_stillborn(data)
            if self.early_stillborn > EARLY_STILLBORN:
                self.guard.refusals.refuse(
                    Refusal.RESETS,
                    self.address,
                    f"over {EARLY_STILLBORN} streams reset or refused before the SETTINGS "
                    "were acknowledged: GOAWAY ENHANCE_YOUR_CALM",
                )
                self._go_away(ErrorCode.ENHANCE_YOUR_CALM)
                return
        if reader.refusals:
            self._refuse_streams(data)
        else:
            self.inner.data_received(data)
        if self.ended:
            self._reset_ended()

    def _spend(self, reader: FrameReader, watch: ConnectionGuard, now: float) -> bool:
        """Charges the budgeted frames read; False when one budget is overspent."""
        spent = (
            (Refusal.RESETS, reader.resets),
            (Refusal.PINGS, reader.pings),
            (Refusal.SETTINGS, reader.settings),
            (Refusal.EMPTY_FRAMES, reader.empty),
        )
        reader.resets = reader.pings = reader.settings = reader.empty = 0
        return all(watch.spend(reason, count, now) for reason, count in spent if count)

    def _count_bodies(self, now: float) -> None:
        """Starts the body clock of each message newly unfinished, and counts its announced
        body against the server's budget of unread bytes: past it, its call ends."""
        reader = self.reader
        for stream in reader.started:
            record = reader.unfinished.get(stream)
            if record is None:
                continue
            if record.since is None:
                record.since = now
            if record.need and not record.reserved:
                if self.guard.reserve(record.need, self.address):
                    record.reserved = record.need
                else:
                    self._end_call(
                        stream,
                        Status.RESOURCE_EXHAUSTED,
                        "the server holds too many unfinished messages; send it again later",
                    )
        reader.started.clear()

    def _release(self) -> None:
        """Gives back what unfinished messages that came whole or went had counted."""
        self.guard.reserved -= self.reader.released
        self.reader.released = 0

    def _check_bodies(self, now: float) -> None:
        """Ends the calls whose request message has been unfinished past the body timeout."""
        timeout = self.guard.limits.body_timeout
        late = [
            stream
            for stream, record in self.reader.unfinished.items()
            if record.since is not None and now - record.since > timeout
        ]
        for stream in late:
            self.guard.refusals.refuse(
                Refusal.BODY_TIMEOUT,
                self.address,
                f"a request message's body did not come whole in {timeout:g}s: DEADLINE_EXCEEDED",
            )
            self._end_call(
                stream, Status.DEADLINE_EXCEEDED, "the message's body did not arrive in time"
            )
        self._reset_ended()

    def refuse(self, reason: Refusal, detail: str) -> None:
        """Counts and logs a refusal the inner protocol made on this connection."""
        self.guard.refusals.refuse(reason, self.address, detail)

    def refuse_request(self, stream: int, reason: str, status: Status | None) -> None:
        """Answers a request the inner protocol cannot serve (its headers cannot be read), for
        `reason`: with a gRPC `status`, or RST_STREAM PROTOCOL_ERROR when None (HTTP/2 calls
        it malformed)."""
        self.guard.refusals.refuse(Refusal.MALFORMED, self.address, f"malformed request: {reason}")
        self._end_call(stream, status, reason)

    def _end_call(self, stream: int, status: Status | None, message: str) -> None:
        """Ends `stream`'s call for the client: its gRPC `status` (then RST_STREAM NO_ERROR
        when the client has not ended its side), or RST_STREAM PROTOCOL_ERROR when None. The
        inner protocol is handed a RST_STREAM CANCEL for it (`ended`)."""
        reader = self.reader
        reader.forget(stream)
        happened = reader.streams.pop(stream, None)
        if happened is None or happened & SERVER_ENDED or self.closed:
            return
        if status is None:
            answer = rst_stream(stream, ErrorCode.PROTOCOL_ERROR)
        else:
            answer = call_ended(stream, status.value, message, bool(happened & RESPONDED))
            if not happened & CLIENT_ENDED:
                answer += rst_stream(stream, ErrorCode.NO_ERROR)
        self.transport.write(answer)
        self.ended.append(stream)
        self._release()

    def _reset_ended(self) -> None:
        """Hands the inner protocol a RST_STREAM CANCEL for each stream the guard ended, when
        the client's bytes are between two frames (it reads them as the client's)."""
        if not self.ended or self.closed or self.reader.stalled() is not None:
            return
        resets = b"".join(rst_stream(stream, ErrorCode.CANCEL) for stream in self.ended)
        self.ended = []
        self.inner.data_received(resets)

    def _count_refused(self) -> None:
        reader = self.reader
        self.guard.refusals.refuse(
            Refusal.STREAMS,
            self.address,
            f"stream over {reader.max_streams} open: REFUSED_STREAM",
            count=reader.refused,
        )
        reader.refused = 0

    def _drop_stillborn(self, data: bytes) -> bytes:
        """`data` without the frames of the streams opened and reset in it, and of the streams
        refused in it, those refused answered; as it is (the streams counted in
        `early_stillborn`) until the client agreed to header blocks without a table, which
        the first call asks it for."""
        reader = self.reader
        if not reader.awaited_ack:
            self.transport.write(no_header_table_setting())
            reader.settings_sent += 1
            reader.awaited_ack = reader.settings_sent
        kept = None
        if reader.awaited_ack_at >= 0 and all(
            end <= reader.received_bytes for end, _ in reader.refusals
        ):
            refused = {stream for _, stream in reader.refusals}
            stateless_from = reader.awaited_ack_at - (reader.received_bytes - len(data))
            kept = without_streams(
                data, reader.read_from, reader.read_highest, refused, stateless_from
            )
        if kept is None:
            due = sum(end <= reader.received_bytes for end, _ in reader.refusals)
            self.early_stillborn += reader.fresh_resets + due
            return data
        data, taken, stillborn = kept
        self.early_stillborn += reader.fresh_resets - stillborn
        for stream in refused:
            self.transport.write(rst_stream(stream, ErrorCode.REFUSED_STREAM))
        reader.refusals = []
        if taken:  # the client spent its flow-control window on them: given back
            reader.credit += taken
            self.transport.write(window_update(0, taken))
        return data

    def _refuse_streams(self, data: bytes) -> None:
        """Hands `data` on with each refused stream answered: REFUSED_STREAM to the client, and
        to the inner protocol the stream's header block (its header table has to read it)
        followed at once by a RST_STREAM, as if the client had opened and reset it."""
        reader = self.reader
        start = reader.received_bytes - len(data)
        done = 0
        waiting = []
        for end, stream in reader.refusals:
            if end > reader.received_bytes:  # its header block ends in a later read
                waiting.append((end, stream))
                continue
            self.transport.write(rst_stream(stream, ErrorCode.REFUSED_STREAM))
            cut = end - start
            self.inner.data_received(data[done:cut] + rst_stream(stream, ErrorCode.CANCEL))
            done = cut
            if self.transport.is_closing():
                return
        reader.refusals = waiting
        if done < len(data):
            self.inner.data_received(data[done:])

    def hold(self) -> None:
        """Counts the request bytes the connection holds unread now; closes it when that takes
        the server past its budget."""
        watch = self.watch
        if watch is None:
            return
        if watch.hold(self.reader.unread(self.guard.limits.connection_window)) is not None:
            self._go_away(ErrorCode.ENHANCE_YOUR_CALM)

    def _go_away(self, code: ErrorCode) -> None:
        """GOAWAY with `code`, then the connection closes (and is cut at the next tick if the
        client does not read what is left to send)."""
        if self.closed:
            return
        self.closed = True
        self.transport.write(goaway(self.reader.highest, code))
        self.transport.close()

    def _tick(self) -> None:
        """Looks at the connection's clocks: PING a quiet peer, close a stalled or dead one."""
        if self.closed:
            self.transport.abort()  # GOAWAY was written a tick ago: the client had its chance
            return
        watch = self.watch
        reader = self.reader
        assert watch is not None
        if reader.answered:
            watch.ping_sent = None
            reader.answered = False
        now = time.monotonic()
        if reader.unfinished:
            self._check_bodies(now)
        due = watch.due(now, len(reader.streams), reader.stalled(), reader.handshaken)
        if isinstance(due, Refusal):
            idle = due is Refusal.IDLE_TIMEOUT
            self._go_away(ErrorCode.NO_ERROR if idle else ErrorCode.PROTOCOL_ERROR)
        elif due is True:
            self.transport.write(ping(KEEPALIVE_OPAQUE))
        self._timer = asyncio.get_running_loop().call_later(self.guard.limits.tick, self._tick)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.closed = True
        watch = self.watch
        if watch is not None:  # admitted
            self.watch = None
            watch.hold(0)
            self.guard.leave(self.address)
            reader = self.reader
            for stream in list(reader.unfinished):
                reader.forget(stream)
            self._release()
        self.inner.connection_lost(exc)
        # The inner protocol holds this guard (to refuse requests through it): cut, reference
        # counting frees the connection now, not a full collection some day.
        del self.inner
        self.lost()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GuardedTransport(asyncio.Transport):
    """The connection's transport as the protocol behind the guard sees it: what it writes is
    read for frame headers on the way out (streams the server ends or resets, flow-control
    credit), and dropped once the guard has ended the connection; the rest is the transport's."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedProtocol) -> None:
        super().__init__()
        self._transport = transport
        self._protocol = protocol
        self._sent = protocol.reader.sent

    def write(self, data: bytes | bytearray | memoryview) -> None:
        protocol = self._protocol
        if protocol.closed:
            return
        if self._sent(data):
            protocol.hold()
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()
