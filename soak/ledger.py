"""What one soak client did and saw: the evidence the end-of-run checks judge."""

from dataclasses import dataclass, field


@dataclass
class Connection:
    """One stream of a client: where it resumed and the ids it was shown, in arrival order.

    `ids` holds the ids of its room's messages: others' as CHAT (live or replayed) and its own
    as ACK (or as CHAT when replayed after a reconnect).
    """

    address: str
    after_id: int | None  # None: the first stream, live from the moment it opened
    ids: list[int] = field(default_factory=list)
    ended: str = ""


@dataclass
class Ledger:
    """Everything one client sent, had acknowledged and received, across its reconnects."""

    user: str
    room: str
    sent: list[str] = field(default_factory=list)
    acked: dict[int, str] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    last_seen: int = 0  # the newest id shown to the client: where its next stream resumes
    hang_ups: int = 0
    failures: int = 0
    problems: list[str] = field(default_factory=list)

    def seen(self) -> list[int]:
        """Every id shown to the client, stream after stream, in arrival order."""
        return [id for connection in self.connections for id in connection.ids]

    def unacked(self) -> list[str]:
        """Texts sent without an ACK: their stream broke first. Each may or may not be stored."""
        acked = set(self.acked.values())
        return [text for text in self.sent if text not in acked]
