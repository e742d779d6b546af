"""The hand-written wire format reads and writes exactly what the generated classes do."""

from datetime import UTC, datetime, timedelta

import betterproto
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat import wire
from gen.grpc.chat import MessageReply, MessageRequest, StatsReply, StatsRequest

texts = st.text(max_size=200)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(
    kind=st.integers(0, 4),
    text=texts,
    user=texts,
    room=texts,
    id=st.integers(0, 2**64 - 1),
    sent_at=moments,
)
def test_a_reply_is_byte_for_byte_what_betterproto_writes(
    kind: int, text: str, user: str, room: str, id: int, sent_at: datetime
) -> None:
    expected = MessageReply(
        message=text,
        user=user,
        room=room,
        id=id,
        sent_at=sent_at,
        kind=kind,  # type: ignore[arg-type]
    )
    assert wire.reply(kind, text, user, room, id, sent_at) == bytes(expected)


@given(message=texts, user=texts, room=texts)
def test_a_request_parses_to_the_fields_betterproto_wrote(
    message: str, user: str, room: str
) -> None:
    parsed = wire.parse_request(bytes(MessageRequest(message=message, user=user, room=room)))
    assert (parsed.message, parsed.user, parsed.room) == (message, user, room)


@given(data=st.binary(max_size=64))
def test_random_bytes_parse_only_where_betterproto_agrees(data: bytes) -> None:
    try:
        ours = wire.parse_request(data)
    except wire.DecodeError:
        return  # refused: never stored
    theirs = MessageRequest.FromString(data)
    assert (ours.message, ours.user, ours.room) == (theirs.message, theirs.user, theirs.room)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff\xff",
        b"\x0a\x05ab",
        b"\x0a\x02\xc3\x28",
        b"\x08\x01",
        b"\x00",
        b"\x0b",
        b"\x80\x80\x80\x80\x10\x00",  # field number 2**29: beyond protobuf's largest
    ],
)
def test_malformed_requests_are_refused(data: bytes) -> None:
    with pytest.raises(wire.DecodeError):
        wire.parse_request(data)


def test_unknown_fields_from_newer_clients_are_skipped() -> None:
    known = bytes(MessageRequest(message="hi", room="dev"))
    extra = b"\x20\x96\x01" + b"\x29" + bytes(8) + b"\x32\x02ok" + b"\x3d" + bytes(4)
    parsed = wire.parse_request(extra + known)
    assert (parsed.message, parsed.room, parsed.user) == ("hi", "dev", "")


def test_timestamps_keep_microseconds() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    parsed = MessageReply().parse(wire.reply(wire.CHAT, "x", "u", "r", 1, moment))
    assert parsed.sent_at == moment
    assert parsed.sent_at - moment == timedelta(0)


@given(
    messages=st.integers(0, 2**31 - 1),
    rooms=st.integers(0, 2**31 - 1),
    connected=st.integers(0, 2**31 - 1),
    online=st.lists(texts, max_size=5),
    uptime=st.floats(min_value=0, max_value=1e9),
)
def test_stats_are_byte_for_byte_what_betterproto_writes(
    messages: int, rooms: int, connected: int, online: list[str], uptime: float
) -> None:
    expected = StatsReply(
        num_messages=messages,
        num_rooms=rooms,
        num_connected=connected,
        online=online,
        uptime_seconds=uptime,
    )
    assert wire.stats(messages, rooms, connected, online, uptime) == bytes(expected)


@given(room=texts)
def test_a_stats_request_parses_to_its_room(room: str) -> None:
    assert wire.parse_request(bytes(StatsRequest(room=room)), wire.STATS_REQUEST).room == room


@pytest.mark.parametrize("bits", range(65))
def test_varints_match_betterproto_at_every_length_boundary(bits: int) -> None:
    for value in (2**bits - 2, 2**bits - 1, 2**bits, 2**bits + 1):
        if 0 <= value < 2**64:
            assert wire.varint(value) == betterproto.encode_varint(value), value
