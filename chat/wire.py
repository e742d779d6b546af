"""The server's values as wire messages: the one place `Stored` becomes a `MessageReply`.

Replies are serialised here, once, so a message fanned out to many listeners is encoded once.
"""

from datetime import UTC, datetime
from typing import cast

from chat.model import Stored
from gen.grpc.chat import MessageReply, MessageReplyKind

ACK_PREFIX = "Server Responding to "

# betterproto's enum members look like plain ints to mypy; these are the members themselves.
CHAT, ACK, ERROR = (
    cast(MessageReplyKind, k)
    for k in (MessageReplyKind.CHAT, MessageReplyKind.ACK, MessageReplyKind.ERROR)
)


def chat(message: Stored) -> bytes:
    """A stored message as others in its room (and history readers) receive it."""
    return bytes(
        MessageReply(
            message=message.text,
            user=message.user,
            room=message.room,
            id=message.id,
            sent_at=message.sent_at,
            kind=CHAT,
        )
    )


def ack(message: Stored) -> bytes:
    """The sender's acknowledgement: the tutorial's text, with the stored id."""
    return bytes(
        MessageReply(
            message=ACK_PREFIX + message.text,
            user=message.user,
            room=message.room,
            id=message.id,
            sent_at=message.sent_at,
            kind=ACK,
        )
    )


def error(reason: str, room: str, user: str) -> bytes:
    """A refusal on the same stream: the message was not stored, and why."""
    return bytes(
        MessageReply(
            message=reason,
            user=user,
            room=room,
            sent_at=datetime.now(UTC),
            kind=ERROR,
        )
    )


def presence(kind: int, room: str, user: str) -> bytes:
    """A JOIN or LEAVE event: a user's first stream in a room opened, or its last one closed."""
    verb = "joined" if kind is MessageReplyKind.JOIN else "left"
    return bytes(
        MessageReply(
            message=f"{user} {verb} {room}",
            user=user,
            room=room,
            sent_at=datetime.now(UTC),
            kind=cast(MessageReplyKind, kind),
        )
    )
