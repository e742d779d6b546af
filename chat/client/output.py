"""How the client shows replies: one readable line each, or one JSON object per line for scripts.

Whatever came over the wire (texts, names, rooms, the server's errors) is printed through `inert`:
a text can neither drive the reader's terminal (clear it, retitle it, ring it, reverse it) nor
print a line that looks like another message.
"""

import json
from datetime import datetime
from typing import Any

from chat.client.commands import action_text
from gen.grpc.chat import MessageReply, MessageReplyKind, StatsReply

NEWLINE = "⏎"
"""How a line break inside a text shows: on its message's line, so it forges no other."""
CONTROLS = frozenset(
    [
        *range(0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
) - {ord("\t")}
"""Characters a terminal obeys rather than shows: C0 but tab, DEL, C1 (U+009B alone starts an
escape sequence), the bidirectional marks, embeddings, overrides and isolates (U+202E shows what
follows backwards), and the line and paragraph separators."""
_INERT = {code: f"\\u{code:04x}" for code in CONTROLS} | {ord("\n"): NEWLINE}


def inert(text: str) -> str:
    """`text` safe to print: each of CONTROLS as its `\\uXXXX` escape, a line break as ⏎.

    The escape is the one JSON reads, so a JSON line goes through here whole: `json.dumps` has
    escaped C0 and line breaks already, and the rest become escapes of the same characters.
    """
    return text.translate(_INERT)


def local_time(moment: datetime) -> str:
    """A timestamp in the reader's time zone, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


KNOWN_KINDS = frozenset(
    (
        MessageReplyKind.CHAT,
        MessageReplyKind.ACK,
        MessageReplyKind.JOIN,
        MessageReplyKind.LEAVE,
        MessageReplyKind.ERROR,
        MessageReplyKind.EDIT,
        MessageReplyKind.DELETE,
        MessageReplyKind.REACTION,
        MessageReplyKind.TOPIC,
    )
)
"""The reply kinds this client shows (the tutorial's, and EDIT, DELETE, REACTION and TOPIC for
a call that asks for them); a newer server may send others, TYPING and READ among them."""


def kind_name(reply: MessageReply) -> str:
    """The reply's kind by name, or by number when this client does not know it."""
    if reply.kind in KNOWN_KINDS:
        return MessageReplyKind(reply.kind).name or str(int(reply.kind))
    return str(int(reply.kind))


def unknown_line(reply: MessageReply) -> str:
    """A reply of a kind this client does not know, marked as such rather than taken for a
    chat line."""
    kind = int(reply.kind)
    return f"{local_time(reply.sent_at)} [{reply.room}] (a reply of kind {kind}, unknown here)"


def message_line(reply: MessageReply) -> str:
    """A history or live line: time, room, user, text; actions, events and errors marked."""
    return inert(_line(reply))


def _line(reply: MessageReply) -> str:
    when = local_time(reply.sent_at)
    if reply.kind not in KNOWN_KINDS:
        return unknown_line(reply)
    if reply.kind is MessageReplyKind.JOIN or reply.kind is MessageReplyKind.LEAVE:
        return f"{when} [{reply.room}] * {reply.message}"
    if reply.kind is MessageReplyKind.ERROR:
        return f"error: {reply.message}"
    if reply.kind is MessageReplyKind.ACK:
        return reply.message
    if reply.kind is MessageReplyKind.EDIT:
        return (
            f"{when} [{reply.room}] {reply.user} edited message {reply.target_id}: {reply.message}"
        )
    if reply.kind is MessageReplyKind.DELETE:
        return f"{when} [{reply.room}] {reply.user} deleted message {reply.target_id}"
    if reply.kind is MessageReplyKind.REACTION:
        emoji, on = reply.message, reply.target_id
        did = f"took back {emoji} from" if reply.removed else f"reacted {emoji} to"
        return f"{when} [{reply.room}] {reply.user} {did} message {on}"
    if reply.kind is MessageReplyKind.TOPIC:
        return f"{when} [{reply.room}] {reply.user} set the topic: {reply.message}"
    action = action_text(reply.message)
    if action is not None:
        return f"{when} [{reply.room}] * {reply.user} {action}"
    return f"{when} [{reply.room}] {reply.user}: {reply.message}"


def message_json(reply: MessageReply) -> str:
    """The reply as one JSON object: id, kind, room, user, text, sent_at (ISO 8601, UTC); and,
    when set, target_id (the message an EDIT, DELETE or REACTION is on), reply_to (the message a
    CHAT answers) and removed (a REACTION taken back)."""
    record: dict[str, Any] = {
        "id": reply.id,
        "kind": kind_name(reply),
        "room": reply.room,
        "user": reply.user,
        "text": reply.message,
        "sent_at": reply.sent_at.isoformat(),
    }
    if reply.target_id:
        record["target_id"] = reply.target_id
    if reply.reply_to:
        record["reply_to"] = reply.reply_to
    if reply.removed:
        record["removed"] = True
    return _json_line(record)


def stats_lines(reply: StatsReply, room: str) -> list[str]:
    """The tutorial's line first, then the other figures."""
    where = f"Room {room}" if room else "Server"
    online = ", ".join(reply.online) or "nobody"
    lines = [
        f"{where} has {reply.num_messages} messages",
        f"rooms: {reply.num_rooms}  connected: {reply.num_connected}  online: {online}  "
        f"uptime: {reply.uptime_seconds:.0f}s",
    ]
    return [inert(line) for line in lines]


def stats_json(reply: StatsReply, room: str) -> str:
    """The figures as one JSON object."""
    return _json_line(
        {
            "room": room or None,
            "num_messages": reply.num_messages,
            "num_rooms": reply.num_rooms,
            "num_connected": reply.num_connected,
            "online": list(reply.online),
            "uptime_seconds": reply.uptime_seconds,
        }
    )


def _json_line(record: dict[str, Any]) -> str:
    """One JSON object on one line, é and emoji as they are, controls escaped (see `inert`)."""
    return inert(json.dumps(record, ensure_ascii=False))
