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
    epoch: str = ""  # the server's chat-epoch ('' until its headers came)


@dataclass
class Ledger:
    """Everything one client sent, had acknowledged and received, across its reconnects."""

    user: str
    room: str
    sent: list[str] = field(default_factory=list)
    acked: dict[int, str] = field(default_factory=dict)  # in the current epoch
    connections: list[Connection] = field(default_factory=list)
    last_seen: int = 0  # the newest id shown to the client: where its next stream resumes
    epoch: str = ""  # of the history last_seen belongs to
    epochs: int = 0  # how many histories the client was shown
    forgotten: list[str] = field(default_factory=list)  # ACKed in a history since replaced
    resent: int = 0  # sends again, with the same key, after a stream broke before the ACK
    repeats: int = 0  # of those, the ones the server had stored already
    hang_ups: int = 0
    failures: int = 0
    problems: list[str] = field(default_factory=list)

    def seen(self) -> list[int]:
        """Every id of the current history shown to the client, stream after stream, in
        arrival order."""
        return [id for c in self.connections if c.epoch == self.epoch for id in c.ids]

    def new_epoch(self, epoch: str) -> None:
        """The server has another history than before (or the first one): nothing of it has
        been seen, and what was ACKed in the old one is gone with it."""
        if self.epoch:
            self.forgotten += self.acked.values()
            self.acked = {}
            self.last_seen = 0
        self.epoch = epoch
        self.epochs += 1
