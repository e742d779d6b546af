"""The contract's strings and numbers (proto/chat.proto and DESIGN.md), each written once.

Method paths, metadata keys, reply kinds and the tutorial's ACK text: what a client of any
language sees on the wire, shared by the server, the client, the tests, the bench and the soak.
"""

import re

from gen.grpc.chat import MessageReplyKind, MessageRequestAction

SERVICE = "grpc.chat.ChatService"
"""The service's full name: `package grpc.chat;` and `service ChatService`."""

GET_STATS = f"/{SERVICE}/GetStats"
GET_MESSAGES = f"/{SERVICE}/GetMessages"
SEND_AND_RECEIVE = f"/{SERVICE}/SendAndReceiveMessage"
POST_MESSAGE = f"/{SERVICE}/PostMessage"
GET_HISTORY = f"/{SERVICE}/GetHistory"
LIST_ROOMS = f"/{SERVICE}/ListRooms"

USER = "chat-user"
"""Request metadata: a stream's default user (`anonymous` without it)."""
ROOM = "chat-room"
"""Request metadata: a stream's default room (`general` without it)."""
AFTER_ID = "chat-after-id"
"""Request metadata: resume a stream after this message id (0: replay the whole room)."""
EPOCH = "chat-epoch"
"""Response metadata: the epoch of the history the server keeps, a random id made with it.
Request metadata, with `chat-after-id`: the epoch that id belongs to; when it is not the
server's, the history was replaced and the stream replays it from the start."""
FEATURES = "chat-features"
"""Request metadata: what the client understands, comma-separated (`FEATURE_KINDS`); a call
without it sees the tutorial's kinds only. Response metadata: what the server offers."""
FEATURE_KINDS: dict[str, frozenset[int]] = {
    "edits": frozenset((MessageReplyKind.EDIT, MessageReplyKind.DELETE)),
    "reactions": frozenset((MessageReplyKind.REACTION,)),
    "replies": frozenset(),
    "topics": frozenset((MessageReplyKind.TOPIC,)),
    "read": frozenset((MessageReplyKind.READ,)),
}
"""Each feature a client may ask for, and the reply kinds it lets through to its calls."""
OFFERED = ",".join(FEATURE_KINDS)
AUTHORIZATION = "authorization"
"""Request metadata: `Bearer <token>` when the server asks for one."""

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""What a user or room name must be, in metadata and in requests."""
NAME_RULE = "1-64 characters of A-Z a-z 0-9 _ . -"
"""NAME in words, for the reason a name is refused."""
DIRECT = re.compile(r"@[A-Za-z0-9_.-]{1,64}(?:,[A-Za-z0-9_.-]{1,64}){1,7}")
"""A direct conversation: `@` and two to eight user names, sorted, comma-separated."""
DIRECT_RULE = "@ and 2-8 user names, sorted and comma-separated, as in @ann,bob"

DEFAULT_USER = "anonymous"
DEFAULT_ROOM = "general"

MAX_KEY_BYTES = 128
"""The longest MessageRequest.key accepted, in UTF-8 bytes."""
MAX_EMOJI_BYTES = 32
"""The longest reaction, in UTF-8 bytes."""
MAX_TOPIC_BYTES = 256
"""The longest room topic, in UTF-8 bytes."""
HISTORY_LIMIT = 50
"""Messages of a GetHistory page when its request names no limit."""
MAX_HISTORY_LIMIT = 500
"""Messages of a GetHistory page at most."""

ACK_PREFIX = "Server Responding to "
"""The tutorial's ACK text is this prefix and the message: what tutorial clients print."""
STORE_DOWN = "the server cannot store messages now"
"""How an UNAVAILABLE status from a server whose store fails begins: the server answers, so
reaching it again changes nothing until the store is back."""

Kind = MessageReplyKind
"""MessageReply.kind: CHAT (0, the tutorial's), ACK, JOIN, LEAVE, ERROR; with features, EDIT,
DELETE, REACTION, READ and TOPIC."""
Action = MessageRequestAction
"""MessageRequest.action: SAY (0, the tutorial's), EDIT, DELETE, REACT, UNREACT, READ, TOPIC."""


def members(room: str) -> list[str] | None:
    """The users of a direct conversation (`@ann,bob`); None for a room."""
    return room[1:].split(",") if room.startswith("@") else None


def direct(*users: str) -> str:
    """The direct conversation of `users`."""
    return "@" + ",".join(sorted(set(users)))


def features(raw: str) -> frozenset[int]:
    """The reply kinds a call's `chat-features` value lets through (names it does not know are
    skipped: a newer client asks for more than this server offers)."""
    kinds: frozenset[int] = frozenset()
    for name in raw.split(","):
        kinds |= FEATURE_KINDS.get(name.strip(), frozenset())
    return kinds


def bearer(token: str) -> dict[str, str]:
    """The metadata a client sends to prove it knows `token`."""
    return {AUTHORIZATION: f"Bearer {token}"}
