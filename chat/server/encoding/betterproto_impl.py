"""The reference encoding: the betterproto dataclasses generated in gen/, nothing else.

What the design names as the server's own path; the hand-written encoding beside it is held to
the bytes this one writes.
"""

from datetime import datetime

from chat.contract import Kind
from chat.server.encoding.base import Encoding, Stats
from gen.grpc.chat import MessageReply, MessageRequest, StatsReply, StatsRequest


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
    ) -> bytes:
        message = MessageReply(
            message=text, user=user, room=room, id=id, sent_at=sent_at, kind=Kind(kind), key=key
        )
        return bytes(message)

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
