"""How the client shows replies: one readable line each, or one JSON object per line for scripts."""

import json
from datetime import datetime
from typing import Any

from chat.client.commands import action_text
from chat.contract import ACK_PREFIX
from gen.grpc.chat import MessageReply, MessageReplyKind, StatsReply


def local_time(moment: datetime) -> str:
    """A timestamp in the reader's time zone, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def own_text(reply: MessageReply) -> str:
    """What the user wrote, from the ACK that echoes it in the tutorial's words."""
    return reply.message.removeprefix(ACK_PREFIX)


def message_line(reply: MessageReply) -> str:
    """A history or live line: time, room, user, text; actions, events and errors marked."""
    when = local_time(reply.sent_at)
    if reply.kind is MessageReplyKind.JOIN or reply.kind is MessageReplyKind.LEAVE:
        return f"{when} [{reply.room}] * {reply.message}"
    if reply.kind is MessageReplyKind.ERROR:
        return f"error: {reply.message}"
    if reply.kind is MessageReplyKind.ACK:
        return reply.message
    action = action_text(reply.message)
    if action is not None:
        return f"{when} [{reply.room}] * {reply.user} {action}"
    return f"{when} [{reply.room}] {reply.user}: {reply.message}"


def message_json(reply: MessageReply) -> str:
    """The reply as one JSON object: id, kind, room, user, text, sent_at (ISO 8601, UTC)."""
    record: dict[str, Any] = {
        "id": reply.id,
        "kind": MessageReplyKind(reply.kind).name,
        "room": reply.room,
        "user": reply.user,
        "text": reply.message,
        "sent_at": reply.sent_at.isoformat(),
    }
    return json.dumps(record, ensure_ascii=False)


def stats_lines(reply: StatsReply, room: str) -> list[str]:
    """The tutorial's line first, then the other figures."""
    where = f"Room {room}" if room else "Server"
    online = ", ".join(reply.online) or "nobody"
    return [
        f"{where} has {reply.num_messages} messages",
        f"rooms: {reply.num_rooms}  connected: {reply.num_connected}  online: {online}  "
        f"uptime: {reply.uptime_seconds:.0f}s",
    ]


def stats_json(reply: StatsReply, room: str) -> str:
    """The figures as one JSON object."""
    return json.dumps(
        {
            "room": room or None,
            "num_messages": reply.num_messages,
            "num_rooms": reply.num_rooms,
            "num_connected": reply.num_connected,
            "online": list(reply.online),
            "uptime_seconds": reply.uptime_seconds,
        }
    )
