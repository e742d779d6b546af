"""HTTP/2 frame headers read from a connection's bytes, both ways, as they pass.

A frame header is public wire format (RFC 9113, section 4.1): nine bytes, a 24-bit length, an
8-bit type, 8 bits of flags and a 31-bit stream id; the client's bytes start with a 24-byte
preface. That is enough to count what a client may only send so often (RST_STREAM, PING,
SETTINGS, frames that carry nothing), the streams it has open, the request bytes it has sent
against the flow-control credit the server gave back, and whether a frame or a header block is
half-received, without decoding a payload: any HTTP/2 implementation may sit behind it.

`FrameReader.received` runs on every byte a client sends and `sent` on every byte the server
writes, so each reads a frame with one `struct.unpack_from` and allocates nothing unless a
frame header is cut between two reads.
"""

import struct
from enum import IntEnum

HEADER = struct.Struct(">LBL")
"""A frame header as three numbers: length << 8 | type, flags, stream id (with its reserved
bit)."""
HEADER_SIZE = HEADER.size
PREFACE_SIZE = 24
"""`PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`, before the client's first frame."""
INCREMENT = struct.Struct(">L")
"""A WINDOW_UPDATE's payload: the credit (with a reserved bit)."""
STREAM_ID = 0x7FFFFFFF
INITIAL_WINDOW = 65_535
"""A connection's flow-control window before any WINDOW_UPDATE (RFC 9113, 6.9.2)."""


class FrameType(IntEnum):
    """The frame types of RFC 9113, section 6."""

    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class ErrorCode(IntEnum):
    """The error codes the guard sends (RFC 9113, section 7)."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    CANCEL = 0x8
    REFUSED_STREAM = 0x7
    ENHANCE_YOUR_CALM = 0xB


DATA, HEADERS, PRIORITY, RST_STREAM = 0x0, 0x1, 0x2, 0x3
SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 0x4, 0x6, 0x8, 0x9
"""The types read on the hot path, as plain ints (an enum member is looked up through a hook)."""
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
HEADER_TABLE_SIZE, MAX_CONCURRENT_STREAMS = 0x1, 0x3
"""SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS."""

CLIENT_ENDED, SERVER_ENDED = 1, 2
"""What has ended of an open stream: the client's side, the server's."""


class FrameReader:
    """The frame headers of one connection, read from the bytes each way.

    It counts the frames the guard has budgets for (until the guard takes the counts), the
    streams the client has open (HEADERS on a new stream id opens one; it closes when both
    sides have ended it, or either reset it), and a connection's unread request bytes: DATA
    received less the connection-level credit the server sent back. A new stream past
    `max_streams` is not counted but refused: its id, with where its header block ends in the
    client's bytes, waits in `refusals` for whoever answers it; it costs the client a reset
    from its budget, as one it sent would (the stream is opened and reset all the same).
    """

    __slots__ = (
        "answered",
        "awaited_ack",
        "awaited_ack_at",
        "block",
        "block_frame",
        "credit",
        "data",
        "empty",
        "frames",
        "fresh_resets",
        "handshaken",
        "head",
        "highest",
        "max_streams",
        "out_head",
        "out_skip",
        "pings",
        "read_from",
        "read_highest",
        "received_bytes",
        "refusals",
        "refused",
        "refusing",
        "resets",
        "settings",
        "settings_acked",
        "settings_sent",
        "skip",
        "streams",
    )

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.streams: dict[int, int] = {}
        """Open streams by id: what has ended of each (CLIENT_ENDED, SERVER_ENDED)."""
        self.highest = 0
        """The highest stream id the client opened (GOAWAY names it)."""
        self.refusals: list[tuple[int, int]] = []
        """Streams refused and not yet answered: (where the header block ends in the client's
        bytes, stream id)."""
        self.refused = 0
        """Streams refused since the guard last looked."""
        self.refusing = 0
        """A refused stream whose header block has yet to end, or 0."""
        self.resets = self.pings = self.settings = self.empty = 0
        """Budgeted frames read since the guard last took them: RST_STREAM, PING and SETTINGS
        (not ACKs), and frames that carry nothing (empty DATA without END_STREAM, PRIORITY)."""
        self.handshaken = False
        """Whether a SETTINGS frame came (after the preface: it has to be the first frame)."""
        self.answered = False
        """Whether a PING ACK came since the guard last looked."""
        self.data = 0
        """DATA payload bytes received, padding included: what flow control counts."""
        self.credit = 0
        """Connection-level WINDOW_UPDATE credit the server sent."""
        self.frames = 0
        """Frame headers read from the client."""
        self.block = 0
        """The stream whose header block is open (HEADERS without END_HEADERS), or 0."""
        self.block_frame = 0
        """The number of that block's HEADERS frame among `frames`."""
        self.received_bytes = 0
        """Bytes the client sent, the preface included."""
        self.read_highest = 0
        """`highest` before the last read: streams above it were opened in it."""
        self.read_from = 0
        """Where the first frame wholly in the last read starts in it."""
        self.fresh_resets = 0
        """RST_STREAM frames in the last read for streams above `read_highest` (opened and
        reset in that read, mostly)."""
        self.settings_sent = 0
        """SETTINGS frames (not ACKs) the server sent: the reader counts those written through
        `sent`, whoever writes others adds them."""
        self.settings_acked = 0
        """SETTINGS ACKs the client sent: they come in order, one for each."""
        self.awaited_ack = 0
        """The ACK whose place in the client's bytes is wanted (its number), or 0."""
        self.awaited_ack_at = -1
        """Where that ACK ends in the client's bytes, -1 until it came: what the client sent
        after it follows the SETTINGS it acknowledges."""
        self.skip = PREFACE_SIZE
        """Bytes still to come of the frame (or preface) being received, past its header."""
        self.head = b""
        """The start of a frame header cut off at the end of the last read."""
        self.out_skip = 0
        self.out_head = b""
        """The same as `skip` and `head`, for the server's bytes."""

    def received(self, data: bytes) -> None:
        """Reads the frame headers in `data`, the next bytes from the client."""
        end = len(data)
        start = self.received_bytes
        self.received_bytes = start + end
        self.read_highest = self.highest
        self.fresh_resets = 0
        self.read_from = end  # no frame wholly in it, unless one is found below
        position = self.skip
        if position:
            if position >= end:
                self.skip = position - end
                return
            self.skip = 0
        head = self.head
        if head:  # a frame header cut between two reads: the only copy made here
            missing = HEADER_SIZE - len(head)
            if end < missing:
                self.head = head + data
                return
            self.head = b""
            kind, flags, stream = HEADER.unpack(head + data[:missing])
            position = missing + (kind >> 8)
            self.frames += 1
            self._frame(kind & 0xFF, flags, stream & STREAM_ID, kind >> 8, start + position)
        unpack = HEADER.unpack_from
        frames = self.frames
        self.read_from = position
        while position + HEADER_SIZE <= end:
            kind, flags, stream = unpack(data, position)
            length = kind >> 8
            position += HEADER_SIZE + length
            frames += 1
            if not kind & 0xFF:  # DATA, by far the most frequent
                self.data += length
                if flags & END_STREAM:
                    self._client_ended(stream & STREAM_ID)
                elif not length:
                    self.empty += 1
            else:
                self.frames = frames
                self._frame(kind & 0xFF, flags, stream & STREAM_ID, length, start + position)
        self.frames = frames
        if position < end:
            self.head = data[position:]
        else:
            self.skip = position - end

    def _frame(self, kind: int, flags: int, stream: int, length: int, frame_end: int) -> None:
        """A frame other than DATA; `frame_end`: where it ends in the client's bytes."""
        if kind == DATA:  # only when its header was cut between two reads
            self.data += length
            if flags & END_STREAM:
                self._client_ended(stream)
            elif not length:
                self.empty += 1
        elif kind == HEADERS:
            if stream > self.highest and stream & 1:  # a new stream
                self.highest = stream
                if len(self.streams) >= self.max_streams:
                    self.refused += 1
                    self.resets += 1  # the server's: a client past the limit resets by proxy
                    if flags & END_HEADERS:
                        self.refusals.append((frame_end, stream))
                    else:
                        self.refusing = stream
                else:
                    self.streams[stream] = CLIENT_ENDED if flags & END_STREAM else 0
            elif flags & END_STREAM:  # trailers
                self._client_ended(stream)
            if not flags & END_HEADERS:
                self.block = stream
                self.block_frame = self.frames
        elif kind == CONTINUATION:
            if flags & END_HEADERS:
                self.block = 0
                if self.refusing == stream:
                    self.refusals.append((frame_end, stream))
                    self.refusing = 0
        elif kind == RST_STREAM:
            self.resets += 1
            self.streams.pop(stream, None)
            if stream > self.read_highest:
                self.fresh_resets += 1
        elif kind == SETTINGS:
            if not flags & ACK:
                self.settings += 1
                self.handshaken = True
            else:
                self.settings_acked += 1
                if self.settings_acked == self.awaited_ack:
                    self.awaited_ack_at = frame_end
        elif kind == PING:
            if flags & ACK:
                self.answered = True
            else:
                self.pings += 1
        elif kind == PRIORITY:
            self.empty += 1

    def _client_ended(self, stream: int) -> None:
        ended = self.streams.get(stream)
        if ended is not None:
            if ended & SERVER_ENDED:
                del self.streams[stream]
            else:
                self.streams[stream] = ended | CLIENT_ENDED

    def sent(self, data: bytes | bytearray | memoryview) -> bool:
        """Reads the frame headers in `data`, the next bytes the server writes; True when they
        gave the client connection-level flow-control credit."""
        end = len(data)
        position = self.out_skip
        if self.out_head:  # a frame header cut between two writes (HTTP/2 libraries write
            data = self.out_head + data  # whole frames: this does not happen in practice)
            end = len(data)
            self.out_head = b""
        elif not position and end >= HEADER_SIZE:
            kind, flags, _ = HEADER.unpack_from(data)
            if not kind & 0xFF and not flags & END_STREAM and (kind >> 8) + HEADER_SIZE == end:
                return False  # one DATA frame that ends no stream: most writes, a reply each
        if position >= end:
            self.out_skip = position - end
            return False
        credited = False
        unpack = HEADER.unpack_from
        while position + HEADER_SIZE <= end:
            kind, flags, stream = unpack(data, position)
            frame_type = kind & 0xFF
            if frame_type in (DATA, HEADERS):
                if flags & END_STREAM:
                    self._server_ended(stream & STREAM_ID)
            elif frame_type == RST_STREAM:
                self.streams.pop(stream & STREAM_ID, None)
            elif frame_type == SETTINGS and not flags & ACK:
                self.settings_sent += 1
            elif frame_type == WINDOW_UPDATE and not stream & STREAM_ID:
                if position + HEADER_SIZE + INCREMENT.size > end:
                    break  # its credit comes with the next write
                (increment,) = INCREMENT.unpack_from(data, position + HEADER_SIZE)
                self.credit += increment & STREAM_ID
                credited = True
            position += HEADER_SIZE + (kind >> 8)
        if position < end:
            self.out_head = bytes(data[position:])
            self.out_skip = 0
        else:
            self.out_skip = position - end
        return credited

    def _server_ended(self, stream: int) -> None:
        ended = self.streams.get(stream)
        if ended is not None:
            if ended & CLIENT_ENDED:
                del self.streams[stream]
            else:
                self.streams[stream] = ended | SERVER_ENDED

    def unread(self, window: int) -> int:
        """Request bytes the client sent and the server has not given credit for again, when
        the server keeps the connection's flow-control window at `window`."""
        return max(0, window - (INITIAL_WINDOW + self.credit - self.data))

    def stalled(self) -> int | None:
        """What is half-received now, as a number that changes when it does: the header
        block's first frame while one is open, else the frame being received; None when
        nothing is."""
        if self.block:
            return self.block_frame
        if self.head:
            return self.frames + 1  # its header is still coming
        if self.skip:
            return self.frames
        return None


def without_streams(
    data: bytes, start: int, opened_above: int, refused: set[int], stateless_from: int = 0
) -> tuple[bytes, int, int] | None:
    """`data` (the frames in it whole from `start` on) without the frames of the streams opened
    in it (ids above `opened_above`) that were reset in it too, nor of `refused` ones; the DATA
    bytes that took away (flow control's due); and how many reset streams went. None when
    nothing is to go, or when a
    refused stream's header block is not wholly in it. Only streams whose HEADERS come at
    `stateless_from` or later go: header blocks the client compressed without a dynamic table
    (SETTINGS_HEADER_TABLE_SIZE 0), so that leaving one out changes nothing for those after it."""
    end = len(data)
    opened: set[int] = set()
    gone: set[int] = set()
    position = start
    while position + HEADER_SIZE <= end:
        kind, _, stream = HEADER.unpack_from(data, position)
        stream &= STREAM_ID
        if position + HEADER_SIZE + (kind >> 8) > end:
            break
        if kind & 0xFF == HEADERS and stream > opened_above and position >= stateless_from:
            opened.add(stream)
        elif kind & 0xFF == RST_STREAM and stream in opened:
            gone.add(stream)
        position += HEADER_SIZE + (kind >> 8)
    whole = position
    if not refused <= opened or not (gone or refused):
        return None
    gone |= refused  # (disjoint: a refused stream was never opened, so never reset)
    kept = []
    taken = 0
    kept_from = 0  # what came before `start` (the end of a frame begun earlier) stays
    position = start
    while position < whole:
        kind, _, stream = HEADER.unpack_from(data, position)
        frame_end = position + HEADER_SIZE + (kind >> 8)
        if stream & STREAM_ID in gone:
            kept.append(data[kept_from:position])
            kept_from = frame_end
            if kind & 0xFF == DATA:
                taken += kind >> 8
        position = frame_end
    kept.append(data[kept_from:])
    return b"".join(kept), taken, len(gone) - len(refused)


def frame(kind: FrameType, flags: int, stream: int, payload: bytes) -> bytes:
    """One frame as bytes."""
    return HEADER.pack(len(payload) << 8 | kind, flags, stream) + payload


def goaway(last_stream: int, code: ErrorCode) -> bytes:
    """GOAWAY: the connection ends after `last_stream`, for `code`."""
    return frame(FrameType.GOAWAY, 0, 0, struct.pack(">LL", last_stream, code))


def rst_stream(stream: int, code: ErrorCode) -> bytes:
    """RST_STREAM: `stream` ends, for `code`."""
    return frame(FrameType.RST_STREAM, 0, stream, struct.pack(">L", code))


def ping(opaque: bytes) -> bytes:
    """PING with eight bytes the answer carries back."""
    return frame(FrameType.PING, 0, 0, opaque)


def max_streams_setting(limit: int) -> bytes:
    """SETTINGS telling the client how many streams it may have open at once."""
    return frame(FrameType.SETTINGS, 0, 0, struct.pack(">HL", MAX_CONCURRENT_STREAMS, limit))


def no_header_table_setting() -> bytes:
    """SETTINGS asking the client to compress header blocks without a dynamic table (size 0),
    so that each can be read without the ones before it."""
    return frame(FrameType.SETTINGS, 0, 0, struct.pack(">HL", HEADER_TABLE_SIZE, 0))


def window_update(stream: int, credit: int) -> bytes:
    """WINDOW_UPDATE: `credit` more bytes the client may send on `stream` (0: the connection)."""
    return frame(FrameType.WINDOW_UPDATE, 0, stream, struct.pack(">L", credit))
