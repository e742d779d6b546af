"""The fast encoding: MessageReply and StatsReply written, requests read, by hand.

Every chat message passes through the encoding twice (a request parsed, replies encoded), and
betterproto spends much of a message's server time in its per-attribute machinery. These
functions write and read the same protobuf bytes as the generated classes in gen/ without
building message objects; tests compare them with betterproto and with the protobuf runtime,
field by field and on random input. The fields they know are listed here, and the gate in
`chat.server.encoding` refuses this encoding when gen/ has fields it does not know.
"""

import struct
from datetime import UTC, datetime

from chat.contract import ACK_PREFIX, Kind
from chat.model import Current, Stored
from chat.server.encoding.base import DecodeError, Encoding, RoomView, Stats

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHAT, ACK = int(Kind.CHAT), int(Kind.ACK)

KNOWN_FIELDS = {
    "MessageRequest": {
        1: "message",
        2: "user",
        3: "room",
        4: "key",
        5: "action",
        6: "target_id",
        7: "reply_to",
    },
    "MessageReply": {
        1: "message",
        2: "user",
        3: "room",
        4: "id",
        5: "sent_at",
        6: "kind",
        7: "key",
        8: "target_id",
        9: "reply_to",
        10: "edited_at",
        11: "deleted",
        12: "reactions",
        13: "replies",
        14: "removed",
    },
    "Reaction": {1: "emoji", 2: "count", 3: "users"},
    "HistoryReply": {1: "messages", 2: "more", 3: "epoch"},
    "Room": {
        1: "name",
        2: "topic",
        3: "last_id",
        4: "online",
        5: "num_messages",
        6: "unread",
        7: "read_id",
    },
    "RoomsReply": {1: "rooms"},
    "StatsRequest": {1: "room"},
    "StatsReply": {
        1: "num_messages",
        2: "num_rooms",
        3: "num_connected",
        4: "online",
        5: "uptime_seconds",
        6: "epoch",
    },
}
"""Every field this encoding reads or writes, by message and number, as gen/ names them."""


class Request:
    """A parsed MessageRequest (or StatsRequest, which has only `room`): its fields."""

    __slots__ = ("action", "key", "message", "reply_to", "room", "target_id", "user")

    def __init__(self, message: str = "", user: str = "", room: str = "", key: str = "") -> None:
        self.message = message
        self.user = user
        self.room = room
        self.key = key
        self.action = 0
        self.target_id = 0
        self.reply_to = 0


def varint(value: int) -> bytes:
    """`value` as a protobuf varint; up to five bytes (ids, timestamps) without a loop."""
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    if value < 0x10000000:
        return bytes(
            (value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80, value >> 21)
        )
    if value < 0x800000000:
        return bytes(
            (
                value & 0x7F | 0x80,
                value >> 7 & 0x7F | 0x80,
                value >> 14 & 0x7F | 0x80,
                value >> 21 & 0x7F | 0x80,
                value >> 28,
            )
        )
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(tag: bytes, value: str) -> bytes:
    if not value:
        return b""
    data = value.encode()
    return tag + varint(len(data)) + data


def _timestamp(moment: datetime, tag: bytes = b"\x2a") -> bytes:
    delta = moment - EPOCH
    seconds = delta.days * 86400 + delta.seconds
    body = (b"\x08" + varint(seconds) if seconds else b"") + (
        b"\x10" + varint(delta.microseconds * 1000) if delta.microseconds else b""
    )
    return tag + varint(len(body)) + body


def _varint_field(tag: bytes, value: int) -> bytes:
    return tag + varint(value) if value else b""


def _message(tag: bytes, body: bytes) -> bytes:
    return tag + varint(len(body)) + body


def encode_reply(
    kind: int, text: str, user: str, room: str, id: int, sent_at: datetime, key: str = ""
) -> bytes:
    """One MessageReply, serialised as protobuf: fields in number order, defaults left out."""
    return b"".join(
        (
            _string(b"\x0a", text),
            _string(b"\x12", user),
            _string(b"\x1a", room),
            b"\x20" + varint(id) if id else b"",
            _timestamp(sent_at),
            b"\x30" + varint(kind) if kind else b"",
            _string(b"\x3a", key),
        )
    )


def encode_extended(
    kind: int,
    text: str,
    user: str,
    room: str,
    id: int,
    sent_at: datetime,
    key: str = "",
    *,
    target_id: int = 0,
    reply_to: int = 0,
    removed: bool = False,
) -> bytes:
    """A MessageReply with the fields of actions and replies (8, 9 and 14) too."""
    return b"".join(
        (
            encode_reply(kind, text, user, room, id, sent_at, key),
            _varint_field(b"\x40", target_id),
            _varint_field(b"\x48", reply_to),
            b"\x70\x01" if removed else b"",
        )
    )


def encode_current(now: Current) -> bytes:
    """A message as GetHistory gives it: fields 1-5 and 9-13."""
    message = now.message
    if not (message.reply_to or now.edited_at or now.deleted or now.reactions or now.replies):
        return encode_reply(
            CHAT, message.text, message.user, message.room, message.id, message.sent_at
        )
    reactions = (
        _message(
            b"\x62",
            _string(b"\x0a", reaction.emoji)
            + _varint_field(b"\x10", reaction.count)
            + b"".join(_string(b"\x1a", user) or b"\x1a\x00" for user in reaction.users),
        )
        for reaction in now.reactions
    )
    return b"".join(
        (
            encode_reply(
                CHAT, message.text, message.user, message.room, message.id, message.sent_at
            ),
            _varint_field(b"\x48", message.reply_to),
            _timestamp(now.edited_at, b"\x52") if now.edited_at is not None else b"",
            b"\x58\x01" if now.deleted else b"",
            *reactions,
            _varint_field(b"\x68", now.replies),
        )
    )


def encode_history(messages: list[bytes], more: bool, epoch: str) -> bytes:
    """One HistoryReply: the messages as they came, then its flag and epoch."""
    return b"".join(
        (
            *(_message(b"\x0a", data) for data in messages),
            b"\x10\x01" if more else b"",
            _string(b"\x1a", epoch),
        )
    )


def encode_rooms(rooms: list[RoomView]) -> bytes:
    """One RoomsReply."""
    return b"".join(
        _message(
            b"\x0a",
            _string(b"\x0a", room.name)
            + _string(b"\x12", room.topic)
            + _varint_field(b"\x18", room.last_id)
            + _varint_field(b"\x20", room.online)
            + _varint_field(b"\x28", room.messages)
            + _varint_field(b"\x30", room.unread)
            + _varint_field(b"\x38", room.read_id),
        )
        for room in rooms
    )


def encode_stats(stats: Stats) -> bytes:
    """One StatsReply, serialised as protobuf (int32 counts, repeated names, a double)."""
    return b"".join(
        (
            b"\x08" + varint(stats.messages) if stats.messages else b"",
            b"\x10" + varint(stats.rooms) if stats.rooms else b"",
            b"\x18" + varint(stats.connected) if stats.connected else b"",
            *(b"\x22" + varint(len(data)) + data for data in map(str.encode, stats.online)),
            b"\x29" + struct.pack("<d", stats.uptime_seconds) if stats.uptime_seconds else b"",
            _string(b"\x32", stats.epoch),
        )
    )


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


MAX_FIELD_NUMBER = 2**29 - 1
NUMBERS = {5: "action", 6: "target_id", 7: "reply_to"}
"""MessageRequest's varint fields: an enum (int32) and two uint64."""
MESSAGE_REQUEST = {
    number: name for number, name in KNOWN_FIELDS["MessageRequest"].items() if number not in NUMBERS
}
"""MessageRequest's string fields."""
STATS_REQUEST = KNOWN_FIELDS["StatsRequest"]
UINT64_MAX = 2**64 - 1


def parse_request(data: bytes, fields: dict[int, str] = MESSAGE_REQUEST) -> Request:
    """Parses a MessageRequest (or, given STATS_REQUEST, a StatsRequest) strictly: truncation,
    bad UTF-8 and wrong wire types raise.

    Unknown fields are skipped, as protobuf requires, so newer clients still get through.
    """
    request = Request()
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if not 0 < number <= MAX_FIELD_NUMBER:
            raise DecodeError(f"field number {number} is out of range")
        if wire_type == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise DecodeError("truncated field")
            name = fields.get(number)
            if fields is MESSAGE_REQUEST and number in NUMBERS:
                raise DecodeError(f"field {number} has wire type 2, not a varint")
            if name is not None:
                try:
                    setattr(request, name, data[pos : pos + size].decode())
                except UnicodeDecodeError:
                    raise DecodeError(f"field {number} is not UTF-8") from None
            pos += size
        elif wire_type == 0 and fields is MESSAGE_REQUEST and number in NUMBERS:
            value, pos = _read_varint(data, pos)
            if value > UINT64_MAX:
                raise DecodeError(f"field {number} is over 64 bits")
            if number == 5:  # an enum is an int32: the low 32 bits, signed
                value &= 0xFFFFFFFF
                value -= (value >> 31) << 32
            setattr(request, NUMBERS[number], value)
        elif number in fields or (fields is MESSAGE_REQUEST and number in NUMBERS):
            raise DecodeError(f"field {number} has wire type {wire_type}, not its own")
        elif wire_type == 0:
            _, pos = _read_varint(data, pos)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
            if pos > end:
                raise DecodeError("truncated field")
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")
    return request


class HandwrittenEncoding(Encoding):
    """The fast path: the functions above behind the encoding interface, called with as few
    hops as the interface allows (a chat message passes through `parse_request` and `ack`)."""

    name = "handwritten"
    parse_request = staticmethod(parse_request)

    def reply(
        self,
        kind: int,
        text: str,
        user: str,
        room: str,
        id: int,
        sent_at: datetime,
        key: str = "",
        *,
        target_id: int = 0,
        reply_to: int = 0,
        removed: bool = False,
    ) -> bytes:
        if target_id or reply_to or removed:
            return encode_extended(
                kind,
                text,
                user,
                room,
                id,
                sent_at,
                key,
                target_id=target_id,
                reply_to=reply_to,
                removed=removed,
            )
        return encode_reply(kind, text, user, room, id, sent_at, key)

    def chat(self, message: Stored) -> bytes:
        if message.kind or message.reply_to or message.target_id or message.removed:
            return encode_extended(
                message.kind,
                message.text,
                message.user,
                message.room,
                message.id,
                message.sent_at,
                target_id=message.target_id,
                reply_to=message.reply_to,
                removed=message.removed,
            )
        return encode_reply(
            CHAT, message.text, message.user, message.room, message.id, message.sent_at
        )

    def ack(self, message: Stored) -> bytes:
        text = ACK_PREFIX + message.text
        if message.target_id:
            return encode_extended(
                ACK,
                text,
                message.user,
                message.room,
                message.id,
                message.sent_at,
                message.key,
                target_id=message.target_id,
            )
        return encode_reply(
            ACK, text, message.user, message.room, message.id, message.sent_at, message.key
        )

    def current(self, now: Current) -> bytes:
        return encode_current(now)

    def history(self, messages: list[bytes], more: bool, epoch: str) -> bytes:
        return encode_history(messages, more, epoch)

    def rooms(self, rooms: list[RoomView]) -> bytes:
        return encode_rooms(rooms)

    def stats(self, stats: Stats) -> bytes:
        return encode_stats(stats)

    def parse_stats_request(self, data: bytes) -> Request:
        return parse_request(data, STATS_REQUEST)
