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
PADDED = 0x8
MESSAGE_SIZE = struct.Struct(">L")
"""A gRPC message's length, after its compressed flag: the 5-byte prefix of every message in a
stream's DATA."""
PREFIX_SIZE = 5
HEADER_TABLE_SIZE, MAX_CONCURRENT_STREAMS = 0x1, 0x3
"""SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS."""

CLIENT_ENDED, SERVER_ENDED, RESPONDED = 1, 2, 4
"""What has happened to an open stream: the client's side ended, the server's ended, the
server sent its response headers."""


class Unfinished:
    """A request message of one stream, part-received: its prefix, or the body it announced."""

    __slots__ = ("head", "need", "reserved", "since")

    def __init__(self, head: bytes, need: int) -> None:
        self.head = head
        """The prefix's bytes while fewer than five have come, else empty."""
        self.need = need
        """Body bytes still to come, once the prefix is whole."""
        self.since: float | None = None
        """When the guard first saw it: its body clock starts then."""
        self.reserved = 0
        """Bytes the guard counts for it against the server's budget of unread bytes."""


class FrameReader:
    """The frame headers of one connection, read from the bytes each way.

    It counts the frames the guard has budgets for (until the guard takes the counts), the
    streams the client has open (HEADERS on a new stream id opens one; it closes when both
    sides have ended it, or either reset it), and a connection's unread request bytes: DATA
    received less the connection-level credit the server sent back. A new stream past
    `max_streams` is not counted but refused: its id, with where its header block ends in the
    client's bytes, waits in `refusals` for whoever answers it; it costs the client a reset
    from its budget, as one it sent would (the stream is opened and reset all the same).

    It follows the gRPC messages in each open stream's DATA too, by their 5-byte prefixes: a
    message whose prefix came and not yet all its body is `unfinished` (a frame that holds
    whole messages, as most do, costs one more `unpack_from`).
    """

    __slots__ = (
        "answered",
        "awaited_ack",
        "awaited_ack_at",
        "block",
        "block_frame",
        "credit",
        "cut_pad",
        "cut_stream",
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
        "released",
        "resets",
        "settings",
        "settings_acked",
        "settings_sent",
        "skip",
        "started",
        "streams",
        "unfinished",
    )

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.streams: dict[int, int] = {}
        """Open streams by id: what has happened to each (CLIENT_ENDED, SERVER_ENDED,
        RESPONDED)."""
        self.unfinished: dict[int, Unfinished] = {}
        """The part-received message of each open stream that has one."""
        self.started: list[int] = []
        """Streams whose message became unfinished, or learnt its size, since the guard last
        looked (it starts their clocks and counts their bodies)."""
        self.released = 0
        """Bytes counted for unfinished messages that have since come whole or gone, not yet
        given back to the guard."""
        self.cut_stream = 0
        """The stream of the DATA frame cut at the end of the last read, or 0."""
        self.cut_pad = 0
        """That frame's padding, -1 while its pad length has yet to come."""
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
        position = self.skip
        if not position and not self.head and end >= HEADER_SIZE + PREFIX_SIZE:
            # A request message a read, as a client waiting for each ACK sends them: one DATA
            # frame (no flags) holding one whole message, on a stream with none unfinished.
            kind, flags, stream = HEADER.unpack_from(data)
            length = end - HEADER_SIZE
            if (
                kind == length << 8
                and not flags
                and MESSAGE_SIZE.unpack_from(data, HEADER_SIZE + 1)[0] == length - PREFIX_SIZE
                and not (self.unfinished and stream & STREAM_ID in self.unfinished)
            ):
                self.read_from = 0
                self.data += length
                self.frames += 1
                return
        self.read_from = end  # no frame wholly in it, unless one is found below
        if position:
            if self.cut_stream:
                self._cut_data(data, position)
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
            if not kind & 0xFF and position > missing:
                self._data(stream & STREAM_ID, flags, data, missing, position)
            self._frame(kind & 0xFF, flags, stream & STREAM_ID, kind >> 8, start + position)
        unpack = HEADER.unpack_from
        message_size = MESSAGE_SIZE.unpack_from
        unfinished = self.unfinished  # (the same dict throughout)
        frames = self.frames
        self.read_from = position
        while position + HEADER_SIZE <= end:
            kind, flags, stream = unpack(data, position)
            length = kind >> 8
            position += HEADER_SIZE + length
            frames += 1
            if not kind & 0xFF:  # DATA, by far the most frequent
                self.data += length
                if length and (  # not one whole message, as most are: followed closely
                    flags & PADDED
                    or position > end
                    or length < PREFIX_SIZE
                    or message_size(data, position - length + 1)[0] != length - PREFIX_SIZE
                    or (unfinished and stream & STREAM_ID in unfinished)
                ):
                    self._data(stream & STREAM_ID, flags, data, position - length, position)
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
            if self.unfinished:
                self.forget(stream)
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

    def _data(self, stream: int, flags: int, data: bytes, start: int, frame_end: int) -> None:
        """Follows the messages of `stream` through the payload of its DATA frame, from
        `start` in `data` to `frame_end` (past the end of `data` when the frame goes on in
        the next read)."""
        end = len(data)
        pad = 0
        if flags & PADDED:
            if start == end:
                pad = -1
            else:
                pad = data[start]
                start += 1
        if pad >= 0:
            self._messages(stream, data, start, min(end, frame_end - pad))
        if frame_end > end and not flags & END_STREAM:
            self.cut_stream = stream
            self.cut_pad = pad

    def _cut_data(self, data: bytes, frame_end: int) -> None:
        """Follows the messages of the DATA frame cut at the end of the last read through its
        rest, which ends at `frame_end` in `data` (or later)."""
        start = 0
        pad = self.cut_pad
        if pad < 0:
            pad = self.cut_pad = data[0]
            start = 1
        self._messages(self.cut_stream, data, start, min(len(data), frame_end - pad))
        if frame_end <= len(data):
            self.cut_stream = 0

    def _messages(self, stream: int, data: bytes, start: int, stop: int) -> None:
        """Follows the gRPC messages of `stream` through `data[start:stop]`, the next bytes of
        its DATA: what is left unfinished at the end is kept in `unfinished`."""
        if start >= stop or stream not in self.streams:
            return
        record = self.unfinished.get(stream)
        while start < stop:
            if record is None:
                if stop - start < PREFIX_SIZE:
                    self.unfinished[stream] = Unfinished(data[start:stop], 0)
                    self.started.append(stream)
                    return
                start += PREFIX_SIZE + MESSAGE_SIZE.unpack_from(data, start + 1)[0]
                if start > stop:
                    self.unfinished[stream] = Unfinished(b"", start - stop)
                    self.started.append(stream)
                    return
            elif record.head:
                take = min(PREFIX_SIZE - len(record.head), stop - start)
                record.head += data[start : start + take]
                start += take
                if len(record.head) == PREFIX_SIZE:
                    record.need = MESSAGE_SIZE.unpack_from(record.head, 1)[0]
                    record.head = b""
                    self.started.append(stream)
                    if not record.need:
                        self.forget(stream)
                        record = None
            else:
                take = min(record.need, stop - start)
                record.need -= take
                start += take
                if not record.need:
                    self.forget(stream)
                    record = None

    def forget(self, stream: int) -> None:
        """Leaves `stream`'s unfinished message, if it has one: it came whole, or never will."""
        record = self.unfinished.pop(stream, None)
        if record is not None:
            self.released += record.reserved

    def _client_ended(self, stream: int) -> None:
        if self.unfinished:
            self.forget(stream)
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
                elif frame_type == HEADERS and stream & STREAM_ID in self.streams:
                    self.streams[stream & STREAM_ID] |= RESPONDED
            elif frame_type == RST_STREAM:
                self.streams.pop(stream & STREAM_ID, None)
                if self.unfinished:
                    self.forget(stream & STREAM_ID)
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
        if self.unfinished:
            self.forget(stream)
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


STATUS_200 = b"\x88"
"""`:status: 200`, entry 8 of HPACK's static table."""


def call_ended(stream: int, status: int, message: str, responded: bool) -> bytes:
    """HEADERS ending `stream` with a gRPC `status` and `message`: its trailers, or a
    whole trailers-only answer when the server has not `responded` yet. The header block is
    literals that are never indexed (RFC 7541, 6.2.3) and `:status: 200` from the static table:
    neither side's header table changes, so the client and the HTTP/2 library behind the guard
    stay in step."""
    block = b"" if responded else STATUS_200 + _literal(b"content-type", b"application/grpc")
    block += _literal(b"grpc-status", b"%d" % status)
    block += _literal(b"grpc-message", _percent_encoded(message))
    return frame(FrameType.HEADERS, END_STREAM | END_HEADERS, stream, block)


def _percent_encoded(message: str) -> bytes:
    """`grpc-message` as gRPC's HTTP/2 protocol writes it: printable ASCII but `%` as it is,
    every other byte of the UTF-8 as `%XX`."""
    return b"".join(
        bytes((byte,)) if 0x20 <= byte <= 0x7E and byte != 0x25 else b"%%%02X" % byte
        for byte in message.encode()
    )


def _literal(name: bytes, value: bytes) -> bytes:
    """A header as a literal with a new name, never indexed."""
    return b"\x10" + _length(len(name)) + name + _length(len(value)) + value


def _length(value: int) -> bytes:
    """A string's length as HPACK writes it: an integer with a 7-bit prefix, no Huffman."""
    if value < 0x7F:
        return bytes((value,))
    out = [0x7F]
    value -= 0x7F
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def window_update(stream: int, credit: int) -> bytes:
    """WINDOW_UPDATE: `credit` more bytes the client may send on `stream` (0: the connection)."""
    return frame(FrameType.WINDOW_UPDATE, 0, stream, struct.pack(">L", credit))
