"""The encoding seam: what the service asks of protobuf bytes, and grpclib's codec around it.

An `Encoding` turns the server's values into encoded MessageReply and StatsReply bytes, and
request bytes into requests. A reply fanned out to many listeners is encoded once, whichever
implementation encodes it. `EncodingCodec` is the `grpclib.encoding.base.CodecBase` the server
runs with: requests of the chat service are parsed by the encoding, replies go out as the bytes
it made, and health and reflection messages pass through as protobuf's own.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from grpclib.const import Status
from grpclib.encoding.base import CodecBase
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError

from chat.contract import ACK_PREFIX, Kind
from chat.model import Current, Stored
from gen.grpc.chat import MessageRequest, StatsRequest


class ChatRequest(Protocol):
    """A MessageRequest as the service reads it, from either encoding."""

    @property
    def message(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def room(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def action(self) -> int: ...
    @property
    def target_id(self) -> int: ...
    @property
    def reply_to(self) -> int: ...


class RoomRequest(Protocol):
    """A StatsRequest as the service reads it: the room it asks about ('' for all)."""

    @property
    def room(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Stats:
    """What a StatsReply says."""

    messages: int
    rooms: int
    connected: int
    online: list[str]
    uptime_seconds: float
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class RoomView:
    """What a Room of ListRooms says."""

    name: str
    topic: str
    last_id: int
    online: int
    messages: int
    unread: int = 0
    read_id: int = 0


class Encoding(ABC):
    """Encoded replies and parsed requests; every implementation gives the same bytes."""

    name: str
    """The `--encoding` choice that selects it."""

    @abstractmethod
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
        """One MessageReply, serialised: fields in number order, defaults left out."""

    @abstractmethod
    def current(self, now: Current) -> bytes:
        """A message as it is now, as GetHistory gives it: its entry, with its edit time,
        deleted flag, reactions and reply count."""

    @abstractmethod
    def history(self, messages: list[bytes], more: bool, epoch: str) -> bytes:
        """One HistoryReply of encoded messages (`current`)."""

    @abstractmethod
    def rooms(self, rooms: list[RoomView]) -> bytes:
        """One RoomsReply."""

    @abstractmethod
    def stats(self, stats: Stats) -> bytes:
        """One StatsReply, serialised."""

    @abstractmethod
    def parse_request(self, data: bytes) -> ChatRequest:
        """A MessageRequest from its bytes; raises on bytes that are not one."""

    @abstractmethod
    def parse_stats_request(self, data: bytes) -> RoomRequest:
        """A StatsRequest from its bytes; raises on bytes that are not one."""

    def chat(self, message: Stored) -> bytes:
        """A stored message as others in its room (and history readers) receive it."""
        return self.reply(
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

    def ack(self, message: Stored) -> bytes:
        """The sender's acknowledgement: the tutorial's text, with the stored id, the
        message's key, and the message an action was on."""
        text = ACK_PREFIX + message.text
        return self.reply(
            Kind.ACK,
            text,
            message.user,
            message.room,
            message.id,
            message.sent_at,
            message.key,
            target_id=message.target_id,
        )

    def error(self, reason: str, room: str, user: str, key: str = "") -> bytes:
        """A refusal on the same stream: the message (with its key) was not stored, and why."""
        return self.reply(Kind.ERROR, reason, user, room, 0, datetime.now(UTC), key)

    def presence(self, kind: int, room: str, user: str) -> bytes:
        """A JOIN or LEAVE: a user's first stream in a room opened, or its last one closed."""
        verb = "joined" if kind == Kind.JOIN else "left"
        return self.reply(kind, f"{user} {verb} {room}", user, room, 0, datetime.now(UTC))


class DecodeError(ValueError):
    """The bytes are not a valid message of the expected type."""


class EncodingCodec(CodecBase):
    """grpclib's codec for the chat server: the chosen encoding's parsers, a size limit, and
    replies sent as the bytes the encoding already made."""

    __content_subtype__ = "proto"

    def __init__(self, encoding: Encoding, max_message_bytes: int) -> None:
        self.encoding = encoding
        self.limit = max_message_bytes
        self._proto = ProtoCodec()

    def encode(self, message: Any, message_type: Any) -> bytes:
        if type(message) is bytes:
            return message
        return self._proto.encode(message, message_type)

    def too_large(self, size: int) -> GRPCError:
        """The status of a message of `size` bytes over the limit."""
        return GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"a message of {size} bytes is over the server's limit of {self.limit} bytes",
        )

    def decode(self, data: bytes, message_type: Any) -> Any:
        if len(data) > self.limit:
            raise self.too_large(len(data))
        try:
            if message_type is MessageRequest:
                return self.encoding.parse_request(data)
            if message_type is StatsRequest:
                return self.encoding.parse_stats_request(data)
            return self._proto.decode(data, message_type)
        except Exception:
            name = message_type.__name__
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"the bytes received are not a valid {name}"
            ) from None
