"""The messages the interactive chat has shown, as they are now: the short numbers that name
them (`#3`), their text, edits, deletes and reactions, and the rooms' topics.

A line mode cannot change a line once it is printed, so every change is printed again as a line
of its own; this keeps what those lines need: the words a reply quotes, a reaction's count,
whether a reaction is the user's own (`/react` takes it back), the user's last message (for
`s/old/new/`). Numbers are short and given in the order messages are first seen, once per
session: the same message keeps its number across rooms, reconnects and `/more`.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gen.grpc.chat import MessageReply, MessageReplyKind

PREVIEW = 30
"""Characters of a message a reply quotes at most, cut after a word, before `…`."""
NEVER = datetime.fromtimestamp(0, UTC)
"""An unset timestamp (protobuf's zero), as betterproto reads it."""


@dataclass
class Reacted:
    """One emoji on a message: how many put it there, and those of them known by name (a
    history names 20 at most)."""

    count: int = 0
    users: set[str] = field(default_factory=set)


@dataclass
class Message:
    """A message as it is now; `user` and `text` are '' for one known only from an action on
    it (a delete, a reaction) that came without it."""

    id: int
    room: str
    user: str = ""
    text: str = ""
    reply_to: int = 0
    edited: bool = False
    deleted: bool = False
    reactions: dict[str, Reacted] = field(default_factory=dict)

    def counts(self) -> list[tuple[str, int]]:
        """Each emoji on the message and its count, in the order they were first put on."""
        return [
            (emoji, reacted.count) for emoji, reacted in self.reactions.items() if reacted.count
        ]


class Conversation:
    """What the session has seen of its rooms; replies go through `take`, in order."""

    def __init__(self) -> None:
        self.topics: dict[str, str] = {}
        """Each room's topic as last heard ('' once cleared)."""
        self._numbers: dict[int, int] = {}
        self._ids: list[int] = []  # number N is self._ids[N - 1]
        self._messages: dict[int, Message] = {}

    def number(self, id: int) -> int:
        """The short number of message `id`, given now when it has none yet."""
        if (number := self._numbers.get(id)) is None:
            self._ids.append(id)
            number = self._numbers[id] = len(self._ids)
        return number

    def id_of(self, number: int) -> int | None:
        """The message a short number names, or None for a number never shown."""
        return self._ids[number - 1] if 0 < number <= len(self._ids) else None

    def message(self, id: int) -> Message | None:
        return self._messages.get(id)

    def last_of(self, user: str, room: str) -> Message | None:
        """The newest message of `user` in `room` that is not deleted."""
        mine = [m for m in self._messages.values() if (m.user, m.room) == (user, room)]
        kept = [message for message in mine if not message.deleted]
        return max(kept, key=lambda message: message.id, default=None)

    def preview(self, id: int) -> str:
        """How a reply names the message it answers: `#3 ann: first words…`, or `#3`."""
        number = f"#{self.number(id)}"
        message = self._messages.get(id)
        if message is None or not message.user:
            return number
        if message.deleted:
            return f"{number} {message.user}: (deleted)"
        return f"{number} {message.user}: {_first_words(message.text)}"

    def take(self, reply: MessageReply) -> Message | None:
        """The message the reply shows or changes, brought up to date; None when it changes
        nothing (a reaction or edit heard twice, say on a resume after a history) or is about
        no message (a topic: see `topics`)."""
        kind = reply.kind
        if kind == MessageReplyKind.CHAT:
            return self._message(reply)
        if kind == MessageReplyKind.TOPIC:
            self.topics[reply.room] = reply.message
            return None
        target = self._messages.get(reply.target_id)
        if target is None:
            target = self._messages[reply.target_id] = Message(reply.target_id, reply.room)
        if kind == MessageReplyKind.EDIT:
            if target.edited and target.text == reply.message:
                return None
            target.user = target.user or reply.user  # only its author may edit it
            target.text, target.edited = reply.message, True
        elif kind == MessageReplyKind.DELETE:
            if target.deleted:
                return None
            target.text, target.deleted = "", True
        elif kind == MessageReplyKind.REACTION and not _react(target, reply):
            return None
        return target

    def _message(self, reply: MessageReply) -> Message:
        """A message from a stream, or from a history with its state (edits, reactions)."""
        message = Message(
            reply.id,
            reply.room,
            reply.user,
            reply.message,
            reply.reply_to,
            edited=reply.edited_at > NEVER,
            deleted=reply.deleted,
            reactions={
                reaction.emoji: Reacted(reaction.count, set(reaction.users))
                for reaction in reply.reactions
            },
        )
        self._messages[reply.id] = message
        self.number(reply.id)
        return message


def _first_words(text: str) -> str:
    """`text`, or its first words up to PREVIEW characters and `…`."""
    if len(text) <= PREVIEW:
        return text
    cut = text[:PREVIEW]
    return (cut.rsplit(" ", 1)[0] if " " in cut.strip() else cut).rstrip() + "…"


def _react(message: Message, reply: MessageReply) -> bool:
    """Puts on (or takes off) a reaction; False when that changes nothing."""
    reacted = message.reactions.setdefault(reply.message, Reacted())
    user = reply.user
    if not reply.removed:
        if user in reacted.users:
            return False
        reacted.users.add(user)
        reacted.count += 1
        return True
    if user in reacted.users:
        reacted.users.discard(user)
    elif reacted.count <= len(reacted.users):
        return False  # theirs was not on it: every user on it is known, and they are not
    reacted.count -= 1
    return True
