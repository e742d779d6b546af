"""What one soak client did and saw: the evidence the end-of-run checks judge."""

from dataclasses import dataclass, field

FEATURES_ASKED = "edits,reactions"
"""The `chat-features` a soak client and the end-of-run reads ask for: every action the clients
send (EDIT, DELETE, REACT, UNREACT) reaches them as an entry of its own."""


def action_text(verb: str, target: str, text: str = "") -> str:
    """How the soak's records name an action: its verb, the original text of the message it acts
    on (unique in the run, where an id is not: a replaced history numbers from 1 again) and its
    own text (an edit's new text, an emoji), as in `<react u001 7> +1`."""
    return f"<{verb} {target}> {text}" if text else f"<{verb} {target}>"


@dataclass
class Connection:
    """One stream of a client: where it resumed and the ids it was shown, in arrival order.

    `ids` holds the ids of its room's entries: others' as CHAT, EDIT, DELETE or REACTION (live
    or replayed) and its own as ACK (or as those kinds when replayed after a reconnect).
    """

    address: str
    after_id: int | None  # None: the first stream, live from the moment it opened
    ids: list[int] = field(default_factory=list)
    ended: str = ""
    epoch: str = ""  # the server's chat-epoch ('' until its headers came)


@dataclass
class Own:
    """One of the client's messages as the client expects it to be now."""

    original: str
    text: str
    deleted: bool = False
    deletable: bool = False  # marked so at sending: others never react to it


@dataclass
class Ledger:
    """Everything one client sent, had acknowledged and received, across its reconnects; and
    what it expects of its messages and reactions in the current history."""

    user: str
    room: str
    sent: list[str] = field(default_factory=list)  # texts, and actions as `action_text` names them
    acked: dict[int, str] = field(default_factory=dict)  # in the current epoch
    unnumbered: list[str] = field(default_factory=list)  # stored there, but told no id
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
    own: dict[int, Own] = field(default_factory=dict)  # its messages, by id (current epoch)
    reactions: dict[tuple[int, str], None] = field(default_factory=dict)  # (id, emoji) it put on
    actions: dict[str, int] = field(default_factory=dict)  # ACKed, by verb (every epoch)
    dropped: int = 0  # actions unACKed when their history was replaced: never sent again

    def seen(self) -> list[int]:
        """Every id of the current history shown to the client, stream after stream, in
        arrival order."""
        return [id for c in self.connections if c.epoch == self.epoch for id in c.ids]

    def new_epoch(self, epoch: str) -> None:
        """The server has another history than before (or the first one): nothing of it has
        been seen, and what was ACKed in the old one is gone with it, the client's messages
        and reactions too."""
        if self.epoch:
            self.forgotten += [*self.acked.values(), *self.unnumbered]
            self.acked, self.unnumbered = {}, []
            self.last_seen = 0
            self.own = {}
            self.reactions = {}
        self.epoch = epoch
        self.epochs += 1
