"""The frame-header reader: what it counts is what the frames say, however the bytes are cut."""

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from hypothesis import example, given
from hypothesis import strategies as st

from abuse.attacker import grpc_message, request_headers
from chat.server.guard.frames import (
    ACK,
    END_HEADERS,
    END_STREAM,
    PREFACE_SIZE,
    FrameReader,
    FrameType,
    frame,
    without_streams,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
State = tuple[object, ...]


def state(reader: FrameReader) -> State:
    """Everything a reader has read, for comparing two readers."""
    return (
        dict(reader.streams),
        reader.highest,
        list(reader.refusals),
        reader.refused,
        reader.resets,
        reader.pings,
        reader.settings,
        reader.empty,
        reader.handshaken,
        reader.answered,
        reader.data,
        reader.credit,
        reader.frames,
        reader.block,
        reader.stalled(),
        {stream: (record.head, record.need) for stream, record in reader.unfinished.items()},
    )


def client() -> H2Connection:
    h2 = H2Connection(H2Configuration(client_side=True))
    h2.initiate_connection()
    return h2


frames = st.builds(
    frame,
    st.sampled_from(list(FrameType)),
    st.integers(0, 0xFF),
    st.integers(0, 12),
    st.binary(max_size=40),
)
"""Frames of any type, flags and (small) stream id: valid HTTP/2 or not, all read alike."""


@given(st.lists(frames, max_size=30), st.lists(st.integers(0, 400), max_size=20))
def test_frames_cut_anywhere_are_read_as_whole(sent: list[bytes], cuts: list[int]) -> None:
    data = PREFACE + b"".join(sent)
    whole = FrameReader(max_streams=3)
    whole.received(data)
    pieces = FrameReader(max_streams=3)
    start = 0
    for cut in sorted({min(cut, len(data)) for cut in cuts}):
        pieces.received(data[start:cut])
        start = cut
    pieces.received(data[start:])
    assert state(pieces) == state(whole)
    assert whole.frames == len(sent)
    assert whole.stalled() is None or whole.block


@given(st.lists(frames, max_size=30))
def test_frames_cut_at_every_byte_are_read_as_whole(sent: list[bytes]) -> None:
    data = PREFACE + b"".join(sent)
    whole, bytewise = FrameReader(max_streams=3), FrameReader(max_streams=3)
    whole.received(data)
    for index in range(len(data)):
        bytewise.received(data[index : index + 1])
    assert state(bytewise) == state(whole)


@given(st.lists(frames, max_size=30), st.lists(st.integers(0, 400), max_size=20))
def test_the_servers_frames_cut_anywhere_are_read_as_whole(
    sent: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(sent)
    whole, pieces = FrameReader(max_streams=3), FrameReader(max_streams=3)
    for reader in (whole, pieces):  # streams for the server's frames to end
        reader.received(PREFACE + b"".join(frame(FrameType.HEADERS, 4, n, b"") for n in (1, 3, 5)))
    whole.sent(data)
    start = 0
    for cut in sorted({min(cut, len(data)) for cut in cuts}):
        pieces.sent(data[start:cut])
        start = cut
    pieces.sent(data[start:])
    assert state(pieces) == state(whole)


def test_the_budgeted_frames_are_counted_and_acks_are_not() -> None:
    h2 = client()
    for number in range(3):
        h2.ping(number.to_bytes(8, "big"))
    h2.update_settings({4: 70_000})
    h2.send_headers(1, request_headers())
    h2.send_data(1, b"")  # empty, not the end: counted
    h2.send_data(1, b"", end_stream=True)  # the end: not counted
    h2.send_headers(3, request_headers())
    h2.reset_stream(3, ErrorCodes.CANCEL)
    h2.prioritize(1, weight=10)
    data = h2.data_to_send()
    reader = FrameReader(max_streams=100)
    reader.received(data)
    reader.received(frame(FrameType.PING, ACK, 0, b"chat-ka!"))
    reader.received(frame(FrameType.SETTINGS, ACK, 0, b""))
    assert (reader.pings, reader.settings, reader.resets, reader.empty) == (3, 2, 1, 2)
    assert reader.handshaken and reader.answered
    assert reader.streams == {1: 1}  # the client ended stream 1; 3 was reset
    assert reader.highest == 3


def test_a_stream_closes_once_both_sides_ended_it_or_either_reset_it() -> None:
    reader = FrameReader(max_streams=100)
    h2 = client()
    for stream in (1, 3, 5):
        h2.send_headers(stream, request_headers())
    h2.end_stream(1)
    reader.received(h2.data_to_send())
    assert set(reader.streams) == {1, 3, 5}
    reader.sent(frame(FrameType.HEADERS, END_HEADERS | END_STREAM, 1, b"\x88"))  # trailers
    reader.sent(frame(FrameType.DATA, END_STREAM, 3, b"reply"))  # the client has yet to end
    reader.sent(frame(FrameType.RST_STREAM, 0, 5, b"\0\0\0\x08"))
    assert reader.streams == {3: 2}
    h2.end_stream(3)
    reader.received(h2.data_to_send())
    assert reader.streams == {}


def test_a_stream_past_the_limit_is_refused_where_its_header_block_ends() -> None:
    reader = FrameReader(max_streams=1)
    h2 = client()
    h2.send_headers(1, request_headers())
    reader.received(h2.data_to_send())
    assert reader.refusals == []
    block = frame(FrameType.HEADERS, 0, 3, b"\x82") + frame(FrameType.CONTINUATION, 0, 3, b"\x86")
    reader.received(block)
    assert reader.refused == 1 and reader.refusals == [] and reader.stalled() is not None
    last = frame(FrameType.CONTINUATION, END_HEADERS, 3, b"\x84")
    reader.received(last[:5])
    reader.received(last[5:])
    assert reader.refusals == [(reader.received_bytes, 3)]
    assert reader.streams == {1: 0} and reader.highest == 3
    assert reader.stalled() is None


bodies = st.binary(max_size=12) | st.binary(max_size=7).map(grpc_message)
"""Message bodies, some shaped as gRPC messages themselves: cut after their prefix, the rest
of the message they are in looks whole."""


@given(
    st.lists(bodies, min_size=1, max_size=6),
    st.lists(st.integers(1, 80), max_size=8),
    st.lists(st.sampled_from([1, 3]), min_size=8, max_size=8),
)
@example([grpc_message(b"abc")], [5], [1] * 8)  # the rest of a message, looking whole
def test_messages_a_frame_and_a_frame_a_read_are_read_as_all_at_once(
    messages: list[bytes], cuts: list[int], streams: list[int]
) -> None:
    """One DATA frame a read, as a client awaiting each ACK sends them, goes a shorter way:
    where a frame holds the rest of a message that looks whole, the message is followed too."""
    body = b"".join(grpc_message(message) for message in messages)
    points = sorted({0, len(body), *(min(cut, len(body)) for cut in cuts)})
    sent = [
        frame(FrameType.DATA, 0, stream, body[start:end])
        for stream, start, end in zip(streams, points, points[1:], strict=False)
    ]
    headers = PREFACE + b"".join(frame(FrameType.HEADERS, 4, n, b"") for n in (1, 3))
    whole, each = FrameReader(max_streams=3), FrameReader(max_streams=3)
    whole.received(headers + b"".join(sent))
    each.received(headers)
    for data in sent:
        each.received(data)
    assert state(each) == state(whole)
    assert each.started == whole.started


def test_a_message_whose_body_has_not_all_come_is_unfinished() -> None:
    reader = FrameReader(max_streams=100)
    h2 = client()
    for stream in (1, 3, 5):
        h2.send_headers(stream, request_headers())
    h2.send_data(1, grpc_message(b"whole") + grpc_message(b"x" * 20)[:12], pad_length=3)
    h2.send_data(3, grpc_message(b"y" * 10)[:2])  # a prefix cut short
    h2.send_data(5, grpc_message(b"z" * 10)[:8], end_stream=True)  # it never will come
    reader.received(h2.data_to_send())
    unfinished = {
        stream: (record.head, record.need) for stream, record in reader.unfinished.items()
    }
    assert unfinished == {1: (b"", 13), 3: (b"\0\0", 0)}
    assert reader.started == [1, 3, 5]  # 5's went with the stream's end: the guard passes it by
    reader.unfinished[1].reserved = 13  # as the guard counts it
    h2.send_data(1, b"x" * 13)
    h2.send_data(3, grpc_message(b"y" * 10)[2:4])
    reader.received(h2.data_to_send())
    assert set(reader.unfinished) == {3} and reader.unfinished[3].head == b"\0\0\0\0"
    assert reader.released == 13
    h2.send_data(3, grpc_message(b"y" * 10)[4:6])
    reader.received(h2.data_to_send())
    assert reader.unfinished[3].need == 9 and reader.started[-1] == 3  # its size: known now
    reader.sent(frame(FrameType.RST_STREAM, 0, 3, b"\0\0\0\x08"))
    assert not reader.unfinished


def test_unread_bytes_are_the_data_received_less_the_credit_sent_back() -> None:
    reader = FrameReader(max_streams=100)
    window = 1_000_000
    increment = window - 65_535
    reader.sent(frame(FrameType.WINDOW_UPDATE, 0, 0, increment.to_bytes(4, "big")))
    assert reader.unread(window) == 0
    h2 = client()
    h2.send_headers(1, request_headers())
    h2.send_data(1, b"x" * 15_000)
    h2.send_data(1, b"x" * 15_000)
    reader.received(h2.data_to_send())
    assert reader.unread(window) == 30_000
    stream_credit = frame(FrameType.WINDOW_UPDATE, 0, 1, (30_000).to_bytes(4, "big"))
    assert not reader.sent(stream_credit)  # a stream's credit: the connection's still owed
    credit = frame(FrameType.WINDOW_UPDATE, 0, 0, (20_000).to_bytes(4, "big"))
    assert not reader.sent(credit[:11])
    assert reader.sent(credit[11:])
    assert reader.unread(window) == 10_000


def test_a_frame_half_received_is_stalled_until_it_is_whole() -> None:
    reader = FrameReader(max_streams=100)
    reader.received(PREFACE[:10])
    assert reader.stalled() is not None and not reader.handshaken
    reader.received(PREFACE[10:] + frame(FrameType.SETTINGS, 0, 0, b""))
    assert reader.stalled() is None and reader.handshaken
    ping = frame(FrameType.PING, 0, 0, b"12345678")
    reader.received(ping[:4])
    first = reader.stalled()
    reader.received(ping[4:12])
    assert first is not None and reader.stalled() == first  # the same frame
    reader.received(ping[12:] + ping[:3])
    assert reader.stalled() not in (None, first)  # the next one
    assert reader.received_bytes == PREFACE_SIZE + 9 + len(ping) + 3
    reader.received(ping[3:])
    assert reader.stalled() is None and reader.pings == 2


def test_streams_opened_and_reset_in_the_same_bytes_are_left_out_with_their_data() -> None:
    h2 = client()
    h2.send_headers(1, request_headers())  # lives on
    h2.send_headers(3, request_headers())
    h2.send_data(3, b"x" * 100)
    h2.reset_stream(3, ErrorCodes.CANCEL)
    h2.send_data(1, b"y" * 10)
    data = h2.data_to_send()
    start = len(PREFACE)
    kept = without_streams(data, start, 0, set())
    assert kept is not None
    left, taken, stillborn = kept
    assert taken == 100 and stillborn == 1
    reader = FrameReader(max_streams=100)
    reader.received(left)
    assert reader.streams == {1: 0} and reader.highest == 1 and reader.resets == 0
    assert reader.data == 10
    assert without_streams(data, start, 3, set()) is None  # stream 3 was open before


def test_a_refused_stream_is_left_out_only_when_its_header_block_is_whole() -> None:
    h2 = client()
    data = h2.data_to_send()
    h2.send_headers(1, request_headers())
    headers = h2.data_to_send()
    assert without_streams(data + headers, len(PREFACE), 0, {1}) == (data, 0, 0)
    assert without_streams(data + headers[:-1], len(PREFACE), 0, {1}) is None


def test_a_stream_whose_header_block_came_before_the_client_agreed_is_not_left_out() -> None:
    """Its header block may have filled the dynamic table that later ones read from."""
    h2 = client()
    data = h2.data_to_send()
    h2.send_headers(1, request_headers())
    h2.reset_stream(1, ErrorCodes.CANCEL)
    stillborn = h2.data_to_send()
    agreed = len(data) + len(stillborn)
    assert without_streams(data + stillborn, len(PREFACE), 0, set(), agreed) is None
    assert without_streams(data + stillborn, len(PREFACE), 0, set(), len(data)) == (data, 0, 1)


def test_where_the_acknowledgement_of_a_settings_frame_came_is_kept() -> None:
    reader = FrameReader(max_streams=100)
    reader.sent(frame(FrameType.SETTINGS, 0, 0, b"") + frame(FrameType.SETTINGS, ACK, 0, b""))
    reader.settings_sent += 1  # one the guard wrote itself
    reader.awaited_ack = reader.settings_sent
    assert reader.awaited_ack == 2
    reader.received(PREFACE + frame(FrameType.SETTINGS, 0, 0, b""))
    reader.received(frame(FrameType.SETTINGS, ACK, 0, b""))
    assert reader.awaited_ack_at == -1
    reader.received(frame(FrameType.SETTINGS, ACK, 0, b"") + frame(FrameType.PING, 0, 0, b"1" * 8))
    assert reader.awaited_ack_at == len(PREFACE) + 9 * 3
