"""The fast transport: chat messages and unary answers as plain frames, without h2's objects.

A chat message crosses the connection as one small DATA frame each way. For each one, h2 builds
frame, flag and event objects, walks two state machines and formats the frame for a trace log
nobody reads: about a third of the Python a message cost the server. A DATA frame that needs
none of that (no padding, no END_STREAM, on a stream open that way, inside the flow-control
windows) is parsed or written here with the bookkeeping h2 and grpclib would have done; any
other bytes go through h2 as before, untouched. A unary call's answer, headers and status
included, is written here the same way.

This is the one module that reads and writes grpclib's and h2's private state; the gate in
`chat.server.http2` probes every name used here and checks the installed versions first.
"""

import asyncio
import functools
import socket
import struct
from asyncio import BaseTransport
from collections.abc import Callable, Collection, Mapping
from typing import Any, cast

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import AbstractHandler, EventsProcessor
from grpclib.protocol import Stream as H2Stream
from grpclib.server import Server
from h2.connection import ConnectionState, H2Connection
from h2.events import Event, RequestReceived, StreamReset
from h2.settings import SettingCodes
from h2.stream import H2Stream as H2StreamState
from h2.stream import StreamInputs, StreamState
from hpack.hpack import encode_integer

from chat.server.encoding.base import EncodingCodec
from chat.server.guard.limits import Guard
from chat.server.http2.base import (
    Sender,
    ServerStream,
    Sink,
    Transport,
    compressed,
    cut_short,
    grpc_message,
    grpc_messages,
)
from chat.server.http2.grpclib_impl import (
    CheckedHandler,
    CheckedProtocol,
    GuardedServer,
)
from chat.server.http2.streams_impl import LeanBuffer, LeanConnection, shared_headers
from chat.server.reclaim import Reclaimer

FRAME_HEADER = struct.Struct(">BHBBL")
"""Length (high byte, low 16 bits), type, flags, stream id."""
DATA, HEADERS = 0, 1
END_STREAM, END_HEADERS = 0x1, 0x4

STATUS_200 = b"\x88"
"""`:status: 200`, entry 8 of HPACK's static table."""
CONTENT_TYPE_NAME = 31
"""`content-type` in HPACK's static table."""
GRPC_STATUS_OK = b"\x00" + bytes(encode_integer(11, 7)) + b"grpc-status" + b"\x01" + b"0"
"""`grpc-status: 0` as a literal without indexing: no HPACK table changes on either side."""

RECEIVING = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL})
SENDING = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})
SERVER_OPEN = ConnectionState.SERVER_OPEN  # read once: an enum's members are found through a hook


WRITE_BATCH = 256
"""Replies joined into one write at most: bounds the bytes a batch holds at once."""


class DirectTransport(Transport[ServerStream]):
    """Plain DATA frames read and written here; everything else through grpclib and h2."""

    name = "direct"

    def server(
        self,
        handlers: Collection[Any],
        codec: EncodingCodec,
        guard: Guard | None = None,
        reclaimer: Reclaimer | None = None,
    ) -> Server:
        return LeanServer(handlers, codec, guard or Guard(), reclaimer or Reclaimer())

    async def receive(self, stream: ServerStream, codec: EncodingCodec) -> Any | None:
        """Read from grpclib's stream buffer, which offers no hook between the length prefix
        and the body: a message over the limit is refused before its body is read. (The
        guard in front gives the body a clock, and counts it against the server's budget of
        unread bytes while it comes.)"""
        buffer = stream._stream.buffer
        try:
            prefix = await buffer.read(5)
            if not prefix:
                return None
            if prefix[0]:
                raise compressed()
            size = int.from_bytes(prefix[1:5], "big")
            if size > codec.limit:
                raise GRPCError(
                    Status.RESOURCE_EXHAUSTED,
                    f"a message of {size} bytes is over the server's limit of {codec.limit} bytes",
                )
            body = await buffer.read(size) if size else b""
        except AssertionError:  # grpclib 0.4's buffer asserts a read arrived whole
            raise cut_short() from None
        return codec.decode(body, stream._recv_type)

    async def send(self, stream: ServerStream, replies: list[bytes]) -> None:
        """Many gRPC messages per write: grpclib writes one DATA frame per message through
        several layers; here a batch (a history page, a listener's backlog) goes out in as
        few frames and socket writes as flow control allows."""
        if not stream._send_initial_metadata_done:
            await stream.send_initial_metadata()
        for start in range(0, len(replies), WRITE_BATCH):
            payload = grpc_messages(replies[start : start + WRITE_BATCH])
            if not write_data(stream._stream, payload):
                await stream._stream.send_data(payload)

    def sink(self, stream: ServerStream, call: Sender) -> Sink | None:
        h2_stream = stream._stream
        state = h2_stream._h2_connection.streams.get(h2_stream.id) if h2_stream.id else None
        return _Sink(stream, call, state).write if state is not None else None

    def when_readable(self, stream: ServerStream, ready: Callable[[], None]) -> Callable[[], None]:
        buffer = stream._stream.buffer
        if isinstance(buffer, LeanBuffer):
            return buffer.when_readable(ready)
        return super().when_readable(stream, ready)

    def request_waiting(self, stream: ServerStream) -> bool:
        buffer = stream._stream.buffer
        return isinstance(buffer, LeanBuffer) and buffer.holds_message()

    def finish_unary_now(
        self, stream: ServerStream, reply: bytes, metadata: Mapping[str, str]
    ) -> bool:
        """Headers, the one message and the OK trailers in one socket write: grpclib writes
        them one by one, a syscall each, and h2 builds and compresses each header block."""
        h2_stream = stream._stream
        framed = grpc_message(reply)
        if stream._send_initial_metadata_done or not can_send_now(h2_stream, len(framed)):
            return False
        headers = _content_type(stream._content_type) + _literals(metadata)
        h2_stream._transport.write(unary_reply(h2_stream, headers, framed))
        stream._send_initial_metadata_done = True
        stream._send_message_done = True
        stream._send_trailing_metadata_done = True
        h2_stream.connection.data_send_process()
        return True


class _Sink:
    """`DirectTransport.sink`'s: `write_data` with what it looks up held, since the rooms call
    it for every listener of every message. (Slotted: an idle stream holds it.)"""

    __slots__ = ("_call", "_connection", "_h2", "_h2_stream", "_state", "_stream", "_transport")

    def __init__(self, stream: ServerStream, call: Sender, state: H2StreamState) -> None:
        h2_stream = stream._stream
        self._call = call
        self._stream = stream
        self._h2_stream = h2_stream
        self._h2 = h2_stream._h2_connection
        self._state = state  # h2's, kept when h2 forgets it: its state then says closed
        self._transport = h2_stream._transport
        self._connection = cast(LeanConnection, h2_stream.connection)

    def write(self, message: bytes, count: int) -> bool:
        call = self._call
        h2 = self._h2
        state = self._state
        size = len(message)
        if (
            call.sending.locked()
            or not self._stream._send_initial_metadata_done
            or not self._connection.writable
            or self._transport.is_closing()
            or h2.state_machine.state is not SERVER_OPEN
            or state.state_machine.state not in SENDING
            or not 0 < size <= h2.max_outbound_frame_size
            or size > h2.outbound_flow_control_window
            or size > state.outbound_flow_control_window
        ):
            return False
        h2.outbound_flow_control_window -= size
        state.outbound_flow_control_window -= size
        frame = FRAME_HEADER.pack(size >> 16, size & 0xFFFF, DATA, 0, state.stream_id)
        if h2._data_to_send:  # a WINDOW_UPDATE h2 queued, say: it goes first
            frame = h2.data_to_send() + frame
        self._transport.write(frame + message)
        self._h2_stream.data_sent += size
        connection = self._connection
        connection.data_sent += size
        connection.ping_count_in_sequence = 0
        call.sent += count
        return True


class LeanH2Connection(H2Connection):
    """h2's connection, remembering fewer closed streams, and admitting one stream more than
    the guard lets through (the guard hands it a refused stream's headers, then its reset)."""

    MAX_CLOSED_STREAMS = 4096
    """Closed streams remembered (h2: 65,536, 6 MiB a connection that a client opening and
    closing streams fills); a frame arriving late on a stream closed this many streams ago is
    one a client no longer sends."""


class LeanProtocol(CheckedProtocol):
    """A connection that hands plain DATA frames straight to their grpclib streams; a stream
    the client opens and resets in the same bytes never starts a call. (The guard in front of
    it holds it to the limits.)"""

    def checked(self, handler: AbstractHandler) -> "LeanHandler":
        return LeanHandler(handler, self)

    def connection_made(self, transport: BaseTransport) -> None:
        """grpclib's setup, on an h2 connection that admits the streams the guard lets in."""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        h2 = LeanH2Connection(config=self.h2_config)
        h2.initiate_connection()
        # Unannounced: the guard tells the client its limit.
        max_streams = self.guarded.guard.limits.max_streams
        h2.local_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = max_streams + 1
        h2.local_settings.acknowledge()
        initial = h2.local_settings.initial_window_size
        if self.config.http2_stream_window_size != initial:
            h2.update_settings(
                {SettingCodes.INITIAL_WINDOW_SIZE: self.config.http2_stream_window_size}
            )
        if self.config.http2_connection_window_size != initial:
            h2.increment_flow_control_window(self.config.http2_connection_window_size - initial)
        self.connection = LeanConnection(h2, cast(asyncio.Transport, transport), config=self.config)
        self.connection.flush()
        self.connection.initialize()
        self.processor = EventsProcessor(self.handler, self.connection)

    def data_received(self, data: bytes) -> None:
        if self.connection.is_closing():
            return
        frames = _plain_data_frames(self.connection._connection, self.processor.streams, data)
        if frames is not None:
            self._plain(frames)
        else:
            self._framed(data)

    def _plain(self, frames: list[tuple[H2Stream, H2StreamState, bytes]]) -> None:
        connection = self.connection
        h2 = connection._connection
        for stream, h2_stream, payload in frames:
            size = len(payload)
            h2._inbound_flow_control_window_manager.window_consumed(size)
            h2_stream._inbound_window_manager.window_consumed(size)
            stream.buffer.add(payload, size)
            stream.data_received += size
            connection.data_received += size

    def _framed(self, data: bytes) -> None:
        """h2 reads the bytes; a stream opened and reset in them is skipped."""
        events = self.events(data)
        if events is None:
            return
        skipped = stillborn(events)
        for event in events:
            if skipped and isinstance(event, RequestReceived) and event.stream_id in skipped:
                continue
            self.processor.process(event)
        self.connection.flush()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        # The protocol holds the processor and the handler, which holds the protocol: cut,
        # reference counting frees the connection now, not a full collection some day
        # (grpclib cuts its own cycles on close the same way).
        del self.processor
        del self.handler


class LeanHandler(CheckedHandler):
    """grpclib's handler of one connection, its requests' headers checked, and a stream whose
    task ends always released (grpclib releases it from inside the task, which never runs when
    the client resets the stream first)."""

    def __init__(self, handler: Any, protocol: LeanProtocol) -> None:
        super().__init__(handler, protocol.guarded)
        self.protocol = protocol

    def start(
        self, stream: H2Stream, headers: list[tuple[str, str]], release: Callable[[], None]
    ) -> None:
        self.handler.accept(stream, shared_headers(headers), release)
        streams, handler = self.protocol.processor.streams, cast(Any, self.handler)

        def released(task: object) -> None:
            """The task is over: its stream goes, and so does the task (grpclib keeps a
            cancelled one, its traceback holding the stream, until ten more calls came)."""
            if streams.get(stream.id) is stream:  # type: ignore[arg-type]
                release()
            handler._cancelled.discard(task)  # a new set after each of grpclib's sweeps

        handler._tasks[stream].add_done_callback(released)


class LeanServer(GuardedServer):
    """grpclib's Server, its connections reading plain DATA frames (`LeanProtocol`) behind the
    guard."""

    protocol_class = LeanProtocol

    def __init__(
        self, handlers: Collection[Any], codec: EncodingCodec, guard: Guard, reclaimer: Reclaimer
    ) -> None:
        super().__init__(
            handlers, codec, guard, guard.limits.max_streams, reclaimer, drops_stillborn=False
        )


def stillborn(events: list[Event]) -> set[int]:
    """Streams the client opened and reset in the same bytes: no call starts for them (a
    rapid reset, or a stream the guard refused, costs the server h2's bookkeeping, not a
    call's task and stream objects)."""
    reset = {event.stream_id for event in events if isinstance(event, StreamReset)}
    if not reset:
        return reset
    return {
        event.stream_id
        for event in events
        if isinstance(event, RequestReceived) and event.stream_id in reset
    }


def _plain_data_frames(
    h2: H2Connection, streams: dict[int, H2Stream], data: bytes
) -> list[tuple[H2Stream, H2StreamState, bytes]] | None:
    """The frames of `data` when all of it is whole plain DATA frames h2 would accept as they
    are; None otherwise (nothing has been changed then)."""
    incoming = h2.incoming_buffer
    if (
        incoming._data
        or incoming._preamble_len
        or incoming._headers_buffer
        or h2.state_machine.state is not ConnectionState.SERVER_OPEN
    ):
        return None
    frames = []
    spent: dict[int, int] = {}
    connection_window = h2._inbound_flow_control_window_manager.current_window_size
    max_size = h2.max_inbound_frame_size
    position, end = 0, len(data)
    while position < end:
        if end - position < FRAME_HEADER.size:
            return None
        high, low, kind, flags, stream_id = FRAME_HEADER.unpack_from(data, position)
        size = high << 16 | low
        position += FRAME_HEADER.size
        if kind != DATA or flags or not 0 < size <= max_size or position + size > end:
            return None
        stream = streams.get(stream_id)
        h2_stream = h2.streams.get(stream_id)
        if (
            stream is None
            or h2_stream is None
            or h2_stream.state_machine.state not in RECEIVING
            or h2_stream._expected_content_length is not None
        ):
            return None
        spent[stream_id] = spent.get(stream_id, 0) + size
        connection_window -= size
        stream_window = h2_stream._inbound_window_manager.current_window_size
        if connection_window < 0 or spent[stream_id] > stream_window:
            return None  # h2 ends the connection for it
        frames.append((stream, h2_stream, data[position : position + size]))
        position += size
    return frames


def can_send_now(stream: H2Stream, size: int) -> bool:
    """Whether `size` bytes of DATA may go out on `stream` at once: the transport is open and
    takes writes, the stream is open for sending, and one frame within both flow-control windows
    holds them. (uvloop raises on a write to a closed transport, and the write may be made from
    another stream's task: the rooms deliver to every listener from the poster's.)"""
    h2 = stream._h2_connection
    h2_stream = h2.streams.get(stream.id) if stream.id is not None else None
    return (
        h2_stream is not None
        and not stream._transport.is_closing()
        and stream.connection.write_ready.is_set()
        and h2.state_machine.state is ConnectionState.SERVER_OPEN
        and h2_stream.state_machine.state in SENDING
        and 0 < size <= h2.max_outbound_frame_size
        and size <= h2.outbound_flow_control_window
        and size <= h2_stream.outbound_flow_control_window
    )


def _data_frame(stream: H2Stream, payload: bytes) -> bytes:
    """`payload` as one DATA frame, both flow-control windows charged for it. Only when
    `can_send_now` said so, and after what h2 has queued to send."""
    h2 = stream._h2_connection
    assert stream.id is not None
    size = len(payload)
    h2.outbound_flow_control_window -= size
    h2.streams[stream.id].outbound_flow_control_window -= size
    stream.data_sent += size
    stream.connection.data_sent += size
    return FRAME_HEADER.pack(size >> 16, size & 0xFFFF, DATA, 0, stream.id) + payload


def write_data(stream: H2Stream, payload: bytes) -> bool:
    """Writes `payload` as one DATA frame now; False when it is h2's to do (it would have to
    wait for the transport or the flow-control windows, or the stream cannot send)."""
    if not can_send_now(stream, len(payload)):
        return False
    frame = _data_frame(stream, payload)
    h2 = stream._h2_connection
    if h2._data_to_send:  # a WINDOW_UPDATE h2 queued, say: it goes first
        frame = h2.data_to_send() + frame
    transport: Any = stream._transport
    transport.write(frame)
    # What grpclib's `data_send_process` does that it reads again (its `last_data_sent` it
    # never reads), without the clock read: this runs once per delivery.
    stream.connection.ping_count_in_sequence = 0
    return True


def unary_reply(stream: H2Stream, headers: bytes, message: bytes) -> bytes:
    """A unary call's whole answer as bytes to write: response headers (`:status: 200`, then
    the HPACK block `headers`), the one gRPC message and the OK status, the stream closed as h2
    would close it. Only when `can_send_now` said so for the message.

    The header blocks are HPACK literals without indexing, which leave both sides' header
    tables as they were: nothing shared with h2's own encoder changes.
    """
    assert stream.id is not None
    h2 = stream._h2_connection
    states = h2.streams[stream.id].state_machine
    pending = h2.data_to_send()
    states.process_input(StreamInputs.SEND_HEADERS)
    response = _headers_frame(stream.id, STATUS_200 + headers, 0)
    data = _data_frame(stream, message)
    states.process_input(StreamInputs.SEND_HEADERS)
    states.process_input(StreamInputs.SEND_END_STREAM)
    trailers = _headers_frame(stream.id, GRPC_STATUS_OK, END_STREAM)
    return b"".join((pending, response, data, trailers))


@functools.cache
def _content_type(value: str) -> bytes:
    """`content-type: value` as a literal without indexing, its name from the static table."""
    encoded = value.encode()
    return (
        bytes(encode_integer(CONTENT_TYPE_NAME, 4))
        + bytes(encode_integer(len(encoded), 7))
        + encoded
    )


def _literals(metadata: Mapping[str, str]) -> bytes:
    """Metadata as HPACK literals without indexing, names and values as they are (ASCII, the
    names lowercase: what grpclib sends for them too)."""
    return b"".join([_literal(name, value) for name, value in metadata.items()])


@functools.lru_cache(maxsize=16)
def _literal(name: str, value: str) -> bytes:
    """One header as a literal without indexing (a store's epoch: the same for every call)."""
    name_bytes, value_bytes = name.encode("ascii"), value.encode("ascii")
    return (
        b"\x00"
        + bytes(encode_integer(len(name_bytes), 7))
        + name_bytes
        + bytes(encode_integer(len(value_bytes), 7))
        + value_bytes
    )


def _headers_frame(stream_id: int, block: bytes, flags: int) -> bytes:
    size = len(block)
    header = FRAME_HEADER.pack(size >> 16, size & 0xFFFF, HEADERS, flags | END_HEADERS, stream_id)
    return header + block
