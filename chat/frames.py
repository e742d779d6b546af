"""Plain DATA frames read and written without h2's per-frame objects.

A chat message crosses the connection as one small DATA frame each way. For each one, h2 builds
frame, flag and event objects, walks two state machines and formats the frame for a trace log
nobody reads: about a third of the Python a message cost the server. A DATA frame that needs
none of that (no padding, no END_STREAM, on a stream open that way, inside the flow-control
windows) is parsed or written here with the bookkeeping h2 and grpclib would have done; any
other bytes go through h2 as before, untouched.
"""

import struct
import time
from typing import Any

from grpclib.protocol import H2Protocol
from grpclib.protocol import Stream as H2Stream
from grpclib.server import Server
from h2.connection import ConnectionState, H2Connection
from h2.stream import H2Stream as H2StreamState
from h2.stream import StreamState

FRAME_HEADER = struct.Struct(">BHBBL")
"""Length (high byte, low 16 bits), type, flags, stream id."""
DATA = 0

RECEIVING = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL})
SENDING = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})


class LeanServer(Server):
    """grpclib's Server, its connections reading plain DATA frames through `LeanProtocol`."""

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        return LeanProtocol(protocol.handler, protocol.config, protocol.h2_config)


class LeanProtocol(H2Protocol):
    """A connection that hands plain DATA frames straight to their grpclib streams."""

    def data_received(self, data: bytes) -> None:
        frames = _plain_data_frames(self.connection._connection, self.processor.streams, data)
        if frames is None:
            super().data_received(data)
            return
        connection = self.connection
        h2 = connection._connection
        for stream, h2_stream, payload in frames:
            size = len(payload)
            h2._inbound_flow_control_window_manager.window_consumed(size)
            h2_stream._inbound_window_manager.window_consumed(size)
            stream.buffer.add(payload, size)
            stream.data_received += size
            connection.data_received += size
        connection.last_data_received = time.monotonic()


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


def write_data(stream: H2Stream, payload: bytes) -> bool:
    """Writes `payload` as one DATA frame now; False when it is h2's to do (it would have to
    wait for the transport or the flow-control windows, or the stream cannot send)."""
    h2 = stream._h2_connection
    h2_stream = h2.streams.get(stream.id) if stream.id is not None else None
    size = len(payload)
    if (
        h2_stream is None
        or not stream.connection.write_ready.is_set()
        or h2.state_machine.state is not ConnectionState.SERVER_OPEN
        or h2_stream.state_machine.state not in SENDING
        or not 0 < size <= h2.max_outbound_frame_size
        or size > h2.outbound_flow_control_window
        or size > h2_stream.outbound_flow_control_window
    ):
        return False
    header = FRAME_HEADER.pack(size >> 16, size & 0xFFFF, DATA, 0, stream.id)
    pending = h2.data_to_send()  # frames h2 queued (a WINDOW_UPDATE, say) go first
    transport: Any = stream._transport
    transport.write(b"".join((pending, header, payload)))
    h2.outbound_flow_control_window -= size
    h2_stream.outbound_flow_control_window -= size
    stream.data_sent += size
    stream.connection.data_sent += size
    stream.connection.data_send_process()
    return True
