"""Both encodings write the same bytes, and those are the bytes the protobuf runtime writes.

betterproto[rust-codec] replaces betterproto's own serializer at import, so betterproto alone
is no independent oracle: the protobuf runtime, built from gen/chat.protoset, is the second.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import betterproto
import pytest
from google.protobuf import message_factory
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from chat.contract import Kind
from chat.model import Current, Reaction, Stored
from chat.server.encoding import handwritten_impl
from chat.server.encoding.base import DecodeError, Encoding, RoomView, Stats
from chat.server.encoding.betterproto_impl import BetterprotoEncoding
from chat.server.encoding.handwritten_impl import HandwrittenEncoding
from chat.server.reflection import descriptors
from gen.grpc.chat import MessageReply, MessageRequest, StatsRequest

POOL = descriptors()
REFERENCE, FAST = BetterprotoEncoding(), HandwrittenEncoding()

texts = st.text(max_size=200)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


def runtime(name: str) -> Any:
    """The protobuf runtime's class for a contract message, from the descriptor set."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"grpc.chat.{name}"))


def runtime_reply(
    kind: int, text: str, user: str, room: str, id: int, sent_at: datetime, key: str = ""
) -> Message:
    reply = runtime("MessageReply")(message=text, user=user, room=room, id=id, kind=kind, key=key)
    reply.sent_at.FromDatetime(sent_at)
    message: Message = reply
    return message


@given(
    kind=st.integers(0, 4),
    text=texts,
    user=texts,
    room=texts,
    id=st.integers(0, 2**64 - 1),
    sent_at=moments,
    key=texts,
)
def test_a_reply_is_the_same_bytes_from_both_encodings_and_the_protobuf_runtime(
    kind: int, text: str, user: str, room: str, id: int, sent_at: datetime, key: str
) -> None:
    fast = FAST.reply(kind, text, user, room, id, sent_at, key)
    assert fast == REFERENCE.reply(kind, text, user, room, id, sent_at, key)
    assert fast == runtime_reply(kind, text, user, room, id, sent_at, key).SerializeToString()


@given(
    messages=st.integers(0, 2**31 - 1),
    rooms=st.integers(0, 2**31 - 1),
    connected=st.integers(0, 2**31 - 1),
    online=st.lists(texts, max_size=5),
    uptime=st.floats(min_value=0, max_value=1e9),
    epoch=texts,
)
def test_stats_are_the_same_bytes_from_both_encodings_and_the_protobuf_runtime(
    messages: int, rooms: int, connected: int, online: list[str], uptime: float, epoch: str
) -> None:
    stats = Stats(messages, rooms, connected, online, uptime, epoch)
    expected = runtime("StatsReply")(
        num_messages=messages,
        num_rooms=rooms,
        num_connected=connected,
        online=online,
        uptime_seconds=uptime,
        epoch=epoch,
    ).SerializeToString()
    assert FAST.stats(stats) == REFERENCE.stats(stats) == expected


@pytest.mark.parametrize("encoding", [REFERENCE, FAST], ids=lambda e: e.name)
@given(message=texts, user=texts, room=texts, key=texts)
def test_a_request_the_protobuf_runtime_wrote_parses_to_its_fields(
    encoding: Encoding, message: str, user: str, room: str, key: str
) -> None:
    request = runtime("MessageRequest")(message=message, user=user, room=room, key=key)
    parsed = encoding.parse_request(request.SerializeToString())
    assert (parsed.message, parsed.user, parsed.room, parsed.key) == (message, user, room, key)


@pytest.mark.parametrize("encoding", [REFERENCE, FAST], ids=lambda e: e.name)
@given(room=texts)
def test_a_stats_request_parses_to_its_room(encoding: Encoding, room: str) -> None:
    data = runtime("StatsRequest")(room=room).SerializeToString()
    assert encoding.parse_stats_request(data).room == room


@given(data=st.binary(max_size=64))
def test_random_bytes_the_hand_parser_accepts_mean_the_same_to_the_protobuf_runtime(
    data: bytes,
) -> None:
    try:
        ours = FAST.parse_request(data)
    except DecodeError:
        return  # refused: never stored
    theirs = runtime("MessageRequest").FromString(data)
    fields = (ours.message, ours.user, ours.room, ours.key, ours.target_id, ours.reply_to)
    assert fields == (
        theirs.message,
        theirs.user,
        theirs.room,
        theirs.key,
        theirs.target_id,
        theirs.reply_to,
    )
    assert ours.action == theirs.action


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
def test_malformed_requests_are_refused_by_the_hand_parser(data: bytes) -> None:
    with pytest.raises(DecodeError):
        FAST.parse_request(data)


@pytest.mark.parametrize("encoding", [REFERENCE, FAST], ids=lambda e: e.name)
def test_unknown_fields_from_newer_clients_are_skipped(encoding: Encoding) -> None:
    known = bytes(MessageRequest(message="hi", room="dev"))
    # Fields 15 (varint), 16 (fixed64), 17 (bytes) and 18 (fixed32): none of them known.
    extra = b"\x78\x96\x01" + b"\x81\x01" + bytes(8) + b"\x8a\x01\x02ok" + b"\x95\x01" + bytes(4)
    parsed = encoding.parse_request(extra + known)
    assert (parsed.message, parsed.room, parsed.user) == ("hi", "dev", "")


@pytest.mark.parametrize("encoding", [REFERENCE, FAST], ids=lambda e: e.name)
def test_timestamps_keep_microseconds(encoding: Encoding) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    parsed = MessageReply().parse(encoding.reply(Kind.CHAT, "x", "u", "r", 1, moment))
    assert parsed.sent_at == moment
    assert parsed.sent_at - moment == timedelta(0)


def test_a_stats_request_from_betterproto_parses_in_both() -> None:
    data = bytes(StatsRequest(room="dev"))
    assert FAST.parse_stats_request(data).room == REFERENCE.parse_stats_request(data).room == "dev"


@pytest.mark.parametrize("bits", range(65))
def test_varints_match_betterproto_at_every_length_boundary(bits: int) -> None:
    for value in (2**bits - 2, 2**bits - 1, 2**bits, 2**bits + 1):
        if 0 <= value < 2**64:
            assert handwritten_impl.varint(value) == betterproto.encode_varint(value), value


@given(text=texts, key=texts, id=st.integers(1, 2**64 - 1), sent_at=moments)
def test_chat_and_ack_replies_are_the_same_bytes_from_both_encodings(
    text: str, key: str, id: int, sent_at: datetime
) -> None:
    message = Stored(id, "room", "ann", text, sent_at, key=key)
    assert FAST.chat(message) == REFERENCE.chat(message)
    assert FAST.ack(message) == REFERENCE.ack(message)
    assert MessageReply().parse(FAST.ack(message)).key == key


@pytest.mark.parametrize("encoding", [REFERENCE, FAST], ids=lambda e: e.name)
def test_an_error_reply_names_the_key_of_the_request_it_refuses(encoding: Encoding) -> None:
    error = MessageReply().parse(encoding.error("empty message", "room", "ann", "k1"))
    assert (error.kind, error.message, error.key) == (Kind.ERROR, "empty message", "k1")


names = st.text(max_size=20)
ids = st.integers(0, 2**64 - 1)
reactions = st.lists(
    st.builds(Reaction, names, st.integers(0, 2**32 - 1), st.lists(names, max_size=3).map(tuple)),
    max_size=3,
)


@given(
    kind=st.sampled_from([0, 1, 5, 6, 7, 10]),
    text=texts,
    id=ids,
    sent_at=moments,
    key=texts,
    target_id=ids,
    reply_to=ids,
    removed=st.booleans(),
)
def test_an_action_or_a_reply_is_the_same_bytes_from_both_encodings_and_the_protobuf_runtime(
    kind: int,
    text: str,
    id: int,
    sent_at: datetime,
    key: str,
    target_id: int,
    reply_to: int,
    removed: bool,
) -> None:
    extra = {"target_id": target_id, "reply_to": reply_to, "removed": removed}
    fast = FAST.reply(kind, text, "ann", "r", id, sent_at, key, **extra)  # type: ignore[arg-type]
    assert fast == REFERENCE.reply(kind, text, "ann", "r", id, sent_at, key, **extra)  # type: ignore[arg-type]
    expected = runtime_reply(kind, text, "ann", "r", id, sent_at, key)
    for name, value in extra.items():
        setattr(expected, name, value)
    assert fast == expected.SerializeToString()
    entry = Stored(id, "r", "ann", text, sent_at, 0, "", False, kind, target_id, reply_to, removed)
    assert FAST.chat(entry) == REFERENCE.chat(entry)
    assert FAST.ack(entry) == REFERENCE.ack(entry)


@given(
    text=texts,
    id=ids,
    sent_at=moments,
    reply_to=ids,
    edited_at=st.none() | moments,
    deleted=st.booleans(),
    reactions=reactions,
    replies=st.integers(0, 2**32 - 1),
    more=st.booleans(),
    epoch=names,
)
def test_a_history_page_is_the_same_bytes_from_both_encodings_and_the_protobuf_runtime(
    text: str,
    id: int,
    sent_at: datetime,
    reply_to: int,
    edited_at: datetime | None,
    deleted: bool,
    reactions: list[Reaction],
    replies: int,
    more: bool,
    epoch: str,
) -> None:
    message = Stored(id, "r", "ann", text, sent_at, reply_to=reply_to)
    now = Current(message, edited_at, deleted, tuple(reactions), replies)
    fast = FAST.current(now)
    assert fast == REFERENCE.current(now)
    expected: Any = runtime_reply(0, text, "ann", "r", id, sent_at)
    expected.reply_to, expected.deleted, expected.replies = reply_to, deleted, replies
    if edited_at is not None:
        expected.edited_at.FromDatetime(edited_at)
    for reaction in reactions:
        expected.reactions.add(emoji=reaction.emoji, count=reaction.count, users=reaction.users)
    assert fast == expected.SerializeToString()
    page = FAST.history([fast, fast], more, epoch)
    assert page == REFERENCE.history([fast, fast], more, epoch)
    wanted = runtime("HistoryReply")(more=more, epoch=epoch)
    wanted.messages.extend([expected, expected])
    assert page == wanted.SerializeToString()


@given(
    rooms=st.lists(
        st.builds(
            RoomView,
            names,
            names,
            ids,
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**31 - 1),
            st.integers(0, 2**32 - 1),
            ids,
        ),
        max_size=4,
    )
)
def test_a_list_of_rooms_is_the_same_bytes_from_both_encodings_and_the_protobuf_runtime(
    rooms: list[RoomView],
) -> None:
    expected = runtime("RoomsReply")()
    for room in rooms:
        expected.rooms.add(
            name=room.name,
            topic=room.topic,
            last_id=room.last_id,
            online=room.online,
            num_messages=room.messages,
            unread=room.unread,
            read_id=room.read_id,
        )
    assert FAST.rooms(rooms) == REFERENCE.rooms(rooms) == expected.SerializeToString()


@pytest.mark.parametrize("encoding", [REFERENCE, FAST], ids=lambda e: e.name)
@given(action=st.integers(-(2**31), 2**31 - 1), target_id=ids, reply_to=ids)
def test_an_action_the_protobuf_runtime_wrote_parses_to_its_fields(
    encoding: Encoding, action: int, target_id: int, reply_to: int
) -> None:
    request = runtime("MessageRequest")(
        message="x", action=action, target_id=target_id, reply_to=reply_to
    )
    parsed = encoding.parse_request(request.SerializeToString())
    assert (parsed.action, parsed.target_id, parsed.reply_to) == (action, target_id, reply_to)
