"""The server's own values: a message before and after it is stored.

Plain frozen dataclasses; betterproto classes appear only at the wire boundary
(chat/server/encoding/).
"""

from dataclasses import dataclass, field
from datetime import datetime

CHAT, EDIT, DELETE, REACTION, READ, TOPIC = 0, 5, 6, 7, 9, 10
"""What a log entry is, numbered as MessageReply.kind: a message, or an action on one (an
edit, a delete, a reaction put on or taken off, its author's read marker moved to it) or on its
room (a topic). A READ is its author's alone: no one else ever receives it."""
ACTIONS = frozenset((EDIT, DELETE, REACTION, READ, TOPIC))


@dataclass(frozen=True, slots=True)
class Draft:
    """An entry accepted for storage; `origin` names the local stream that posted it (0: none),
    `key` the poster's name for it ('': none), which makes a repeat of it stored once.

    `kind` is CHAT for a message (`reply_to`: the message it answers, 0: none), or an action on
    message `target_id` (EDIT: `text` is the new text; REACTION: `text` is the emoji, `removed`
    when taken off; DELETE; READ: `user` has read up to it) or on the room (TOPIC: `text` is
    the topic)."""

    room: str
    user: str
    text: str
    origin: int = 0
    key: str = ""
    kind: int = CHAT
    target_id: int = 0
    reply_to: int = 0
    removed: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """A message the store has committed: `id` is unique and increases within every room.

    `key` is the poster's key, for its ACK; `repeat` says the draft's key had been stored
    already, under this id and time, so nothing was stored or told to listeners this time.
    """

    id: int
    room: str
    user: str
    text: str
    sent_at: datetime
    origin: int = field(default=0, compare=False)
    key: str = field(default="", compare=False)
    repeat: bool = field(default=False, compare=False)
    kind: int = CHAT
    target_id: int = 0
    reply_to: int = 0
    removed: bool = False


@dataclass(frozen=True, slots=True)
class Reaction:
    """One emoji on a message: how many put it there, and the first of them (20 at most)."""

    emoji: str
    count: int
    users: tuple[str, ...]


REACTION_USERS = 20
"""The users a Reaction names at most (its count counts them all)."""


@dataclass(frozen=True, slots=True)
class Current:
    """A message as it is now: its log entry with the text it has now ('' once deleted), and
    what the actions on it made of it."""

    message: Stored
    edited_at: datetime | None = None
    deleted: bool = False
    reactions: tuple[Reaction, ...] = ()
    replies: int = 0


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """A stored room as a list of rooms shows it; `messages` counts what a client that knows no
    actions reads of it (its messages, not the deleted ones), as `Store.count` does."""

    name: str
    topic: str
    last_id: int
    messages: int


@dataclass(frozen=True, slots=True)
class Unread:
    """One user's place in one room: the message they have read up to (0: none), and how many
    messages of others (CHAT, not deleted) came after it, counted up to UNREAD_LIMIT."""

    read_id: int = 0
    count: int = 0


def stored_from(draft: Draft, id: int, sent_at: datetime) -> Stored:
    """The entry a store made of `draft`, with the id and time it gave it."""
    return Stored(
        id,
        draft.room,
        draft.user,
        draft.text,
        sent_at,
        draft.origin,
        draft.key,
        False,
        draft.kind,
        draft.target_id,
        draft.reply_to,
        draft.removed,
    )
