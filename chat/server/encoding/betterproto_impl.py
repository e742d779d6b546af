"""The reference encoding: the betterproto dataclasses generated in gen/, nothing else.

What the design names as the server's own path; the hand-written encoding beside it is held to
the bytes this one writes.
"""

from datetime import datetime

from chat.contract import Kind
from chat.model import Current
from chat.server.encoding.base import Encoding, RoomView, Stats
from gen.grpc.chat import (
    HistoryReply,
    MessageReply,
    MessageRequest,
    Reaction,
    Room,
    RoomsReply,
    StatsReply,
    StatsRequest,
)


class BetterprotoEncoding(Encoding):
    """Replies built as generated dataclasses and serialised by betterproto."""

    name = "betterproto"

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
        return bytes(
            MessageReply(
                message=text,
                user=user,
                room=room,
                id=id,
                sent_at=sent_at,
                kind=Kind(kind),
                key=key,
                target_id=target_id,
                reply_to=reply_to,
                removed=removed,
            )
        )

    def current(self, now: Current) -> bytes:
        message = now.message
        reply = MessageReply(
            message=message.text,
            user=message.user,
            room=message.room,
            id=message.id,
            sent_at=message.sent_at,
            reply_to=message.reply_to,
            deleted=now.deleted,
            reactions=[
                Reaction(emoji=reaction.emoji, count=reaction.count, users=list(reaction.users))
                for reaction in now.reactions
            ],
            replies=now.replies,
        )
        if now.edited_at is not None:
            reply.edited_at = now.edited_at
        return bytes(reply)

    def history(self, messages: list[bytes], more: bool, epoch: str) -> bytes:
        replies = [MessageReply().parse(data) for data in messages]
        return bytes(HistoryReply(messages=replies, more=more, epoch=epoch))

    def rooms(self, rooms: list[RoomView]) -> bytes:
        return bytes(
            RoomsReply(
                rooms=[
                    Room(
                        name=room.name,
                        topic=room.topic,
                        last_id=room.last_id,
                        online=room.online,
                        num_messages=room.messages,
                        unread=room.unread,
                        read_id=room.read_id,
                    )
                    for room in rooms
                ]
            )
        )

    def stats(self, stats: Stats) -> bytes:
        return bytes(
            StatsReply(
                num_messages=stats.messages,
                num_rooms=stats.rooms,
                num_connected=stats.connected,
                online=stats.online,
                uptime_seconds=stats.uptime_seconds,
                epoch=stats.epoch,
            )
        )

    def parse_request(self, data: bytes) -> MessageRequest:
        return MessageRequest().parse(data)

    def parse_stats_request(self, data: bytes) -> StatsRequest:
        return StatsRequest().parse(data)
