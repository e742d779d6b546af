"""The storage interface every backend implements, and the constants they share."""

import secrets
from collections.abc import AsyncIterator, Collection, Sequence, Set
from datetime import datetime
from typing import Protocol

from chat.errors import StoreUnavailable
from chat.model import Current, Draft, RoomSummary, Stored, Unread
from chat.store.presence import Presence


class Listener(Protocol):
    """Who hears what a store commits (chat/server/rooms.py): the live fan-out of every replica."""

    def stored(self, message: Stored) -> None:
        """A message was committed; called in id order, with nothing skipped."""
        ...

    def lost(self, error: StoreUnavailable) -> None:
        """Live delivery broke (the store went away): messages from now on may be missed."""
        ...


PAGE_SIZE = 500
"""Rows fetched per history query at most: memory stays flat however long the history is."""
PAGE_BYTES = 256 * 1024
"""Text a history page holds, about: a page of long messages has fewer rows, so a reader that
never reads on holds a page of this size, whatever the messages' size."""
FIRST_PAGE = 32
"""Rows of a history's first page, before the size of its messages is known."""
SLACK = 1.1
"""With a retention limit N, a room may grow to N x SLACK before it is trimmed back to N."""
DEDUPE_WINDOW = 24 * 3600.0
"""Seconds a message key is remembered at least (SQLite and Redis; memory: while it keeps the
message)."""
UNREAD_LIMIT = 1000
"""Unread messages counted per room at most: a count past it reads as this many (a client shows
999+), so a room never read costs no more to list than one read a thousand messages ago."""
PRESENCE_INTERVAL = 3.0
"""Seconds between a Redis replica's presence beats (chat/store/redis_presence.py)."""
PRESENCE_TIMEOUT = 10.0
"""Seconds after its last beat that a Redis replica, and its users with it, count as gone."""


def presence_problem(interval: float, timeout: float) -> str | None:
    """Why a replica's beats every `interval` seconds cannot go with its being gone after
    `timeout` seconds of silence, or None."""
    if timeout < 2 * interval:
        return (
            f"a timeout of {timeout:g}s is less than twice the interval of {interval:g}s: one late "
            "beat would take a live replica for gone"
        )
    return None


def next_page_size(page: Sequence[Stored]) -> int:
    """Rows for the page after `page`: as many messages of the size of its own as PAGE_BYTES
    holds (at least FIRST_PAGE, at most PAGE_SIZE)."""
    average = sum([len(message.text) for message in page]) // len(page) if page else 0
    return max(FIRST_PAGE, min(PAGE_SIZE, PAGE_BYTES // (average + 1)))


def new_epoch() -> str:
    """A random epoch for a history made now: 16 hex digits."""
    return secrets.token_hex(8)


class Store(Protocol):
    """What the server keeps; every backend tells its listener of commits in id order."""

    @property
    def presence(self) -> Presence:
        """Who has a live stream where: this process's (memory, SQLite) or every replica's."""
        ...

    @property
    def epoch(self) -> str:
        """The epoch of the history kept now: made with it, changed only when it is replaced."""
        ...

    def listen(self, listener: Listener) -> None:
        """Tells `listener` of every message committed from now on, on any replica, in id order."""
        ...

    async def check(self) -> None:
        """Returns when the store answers; raises StoreUnavailable when it does not (health)."""
        ...

    async def append(self, draft: Draft) -> Stored:
        """Stores the draft; returns only once it is durable and the listeners have heard of it
        (so its ACK, queued by the listener, comes in id order among the room's messages).

        A draft whose (user, key) was stored before, within the dedupe window, is not stored
        again and the listeners hear nothing: the result is the first one's id and time, marked
        `repeat`, whichever stream or replica posted either."""
        ...

    async def append_all(self, drafts: Sequence[Draft]) -> list[Stored]:
        """Stores the drafts in order, as `append` does each: together where the store can, so
        the listeners hear of them in one turn of the loop (and the rooms write them to each
        listener at once); one after the other where it cannot."""
        ...

    def history(
        self, room: str | None, after_id: int = 0, limit: int = 0, *, entries: bool = False
    ) -> AsyncIterator[Stored]:
        """Stored messages oldest first, read page by page; `limit` keeps the newest N.

        Without `entries`: the messages (CHAT) as they are now, with their edited text, and
        not the deleted ones, as a client that knows no actions sees them. With `entries`:
        every entry of the log as it was logged, actions included."""
        ...

    async def message(self, id: int) -> Current | None:
        """Message `id` as it is now; None when there is none (an action's id is none)."""
        ...

    async def page(
        self, room: str, *, before_id: int = 0, after_id: int = 0, limit: int, thread: int = 0
    ) -> tuple[list[Current], bool]:
        """Up to `limit` messages of `room` as they are now, deleted ones included, oldest
        first: those just older than `before_id`, or just newer than `after_id`, or (neither)
        the newest; with `thread`, only that message and those that answer it. The flag says
        whether more lie beyond the page in its direction."""
        ...

    async def keyed(self, user: str, key: str) -> tuple[int, datetime] | None:
        """The id and time of what `user` stored with `key` within the dedupe window; None when
        the key is new. (An action is checked against it before its rules: a resend after a
        broken stream gets its first ACK again, though the action changed what its rules see.)"""
        ...

    async def reacted(self, id: int, emoji: str, user: str) -> bool:
        """Whether `user`'s `emoji` is on message `id` now."""
        ...

    async def read_id(self, user: str, room: str) -> int:
        """The message `user` has read up to in `room` (their newest READ's target; 0: none)."""
        ...

    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, Unread]:
        """Of `rooms`, `user`'s read marker and unread count in each (every room is in it):
        one trip to the store for them all, and a count that stops at UNREAD_LIMIT, never a
        read of a room's whole history."""
        ...

    async def summaries(self, names: Collection[str]) -> list[RoomSummary]:
        """Of `names`, the rooms with stored entries: their topic, newest id and messages as
        `count` counts them (0 for a room that holds only actions, or only deleted messages)."""
        ...

    async def count(self, room: str | None = None) -> int:
        """How many messages are kept, in one room or in all of them: the messages (CHAT)
        `history` gives without `entries`, as a client that knows no actions reads them; an
        action is no message, and a deleted message counts no more. Kept as entries come and
        go (no read of the history), so GetStats' `num_messages` is the tutorial's."""
        ...

    async def rooms(self) -> Set[str]:
        """The names of the rooms that have stored messages: to read before the next await,
        as it may be a live view (memory and SQLite keep it, so that its size and a name's
        presence cost the same however many rooms there are)."""
        ...

    async def room_count(self) -> int:
        """How many rooms have stored messages: one look-up however many there are."""
        ...

    async def stored_rooms(self, names: Collection[str]) -> set[str]:
        """Which of `names` are rooms with stored messages: one look-up for them all."""
        ...

    async def take_token(self, user: str, rate: float, burst: int) -> bool:
        """Takes one message from `user`'s token bucket (`burst` at most, `rate` more a second);
        False, taking nothing, when it is empty. Every replica sharing the store shares it."""
        ...

    async def close(self) -> None:
        """Flushes pending writes and releases the backend."""
        ...
