"""The contract's strings and numbers (proto/chat.proto and DESIGN.md), each written once.

Method paths, metadata keys, reply kinds and the tutorial's ACK text: what a client of any
language sees on the wire, shared by the server, the client, the tests, the bench and the soak.
"""

import re

from gen.grpc.chat import MessageReplyKind

SERVICE = "grpc.chat.ChatService"
"""The service's full name: `package grpc.chat;` and `service ChatService`."""

GET_STATS = f"/{SERVICE}/GetStats"
GET_MESSAGES = f"/{SERVICE}/GetMessages"
SEND_AND_RECEIVE = f"/{SERVICE}/SendAndReceiveMessage"

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
AUTHORIZATION = "authorization"
"""Request metadata: `Bearer <token>` when the server asks for one."""

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""What a user or room name must be, in metadata and in requests."""
NAME_RULE = "1-64 characters of A-Z a-z 0-9 _ . -"
"""NAME in words, for the reason a name is refused."""

DEFAULT_USER = "anonymous"
DEFAULT_ROOM = "general"

MAX_KEY_BYTES = 128
"""The longest MessageRequest.key accepted, in UTF-8 bytes."""

ACK_PREFIX = "Server Responding to "
"""The tutorial's ACK text is this prefix and the message: what tutorial clients print."""
STORE_DOWN = "the server cannot store messages now"
"""How an UNAVAILABLE status from a server whose store fails begins: the server answers, so
reaching it again changes nothing until the store is back."""

Kind = MessageReplyKind
"""MessageReply.kind: CHAT (0, the tutorial's), ACK, JOIN, LEAVE, ERROR."""


def bearer(token: str) -> dict[str, str]:
    """The metadata a client sends to prove it knows `token`."""
    return {AUTHORIZATION: f"Bearer {token}"}
