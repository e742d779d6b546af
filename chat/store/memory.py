"""`memory://`: a list and a dict, for tests and demos; nothing survives a restart.

What it holds is bounded twice: `--max-history` per room, and `--max-memory-bytes` for the whole
store, past which the rooms that hold the most lose their oldest messages first. Its figures
(messages, rooms, bytes) are kept as messages come and go, so reading them costs the same
whatever the store holds.
"""

import bisect
import dataclasses
import heapq
import sys
from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence, Set
from datetime import UTC, datetime

from chat.model import (
    CHAT,
    DELETE,
    EDIT,
    REACTION,
    REACTION_USERS,
    READ,
    TOPIC,
    Current,
    Draft,
    Reaction,
    RoomSummary,
    Stored,
    Unread,
    stored_from,
)
from chat.store.base import SLACK, UNREAD_LIMIT, Listener, new_epoch
from chat.store.buckets import TokenBuckets
from chat.store.presence import LocalPresence

MESSAGE_OVERHEAD = 300
"""Bytes a kept message costs besides its strings: the Stored object, its time, its places in
the lists and the key dict (measured with tracemalloc on CPython 3.12, rounded up)."""
SIZE_GRAIN = 16 * 1024
"""Rooms whose sizes differ by less than this count as equally large when the byte budget
trims: of those, the older message goes first (a byte of a longer name does not decide)."""
TRIMMED_TO = 0.9
"""Past `max_bytes`, messages are dropped until the store holds this share of it: the cost of
a trim is spread over the many appends that filled the gap."""


def message_bytes(message: Stored) -> int:
    """What keeping `message` costs, about: its strings as Python holds them, and the rest."""
    size = sys.getsizeof  # once per append: written out, without a generator's calls
    text, user, room, key = message.text, message.user, message.room, message.key
    return (
        MESSAGE_OVERHEAD
        + (size(text) if text else 0)
        + (size(user) if user else 0)
        + (size(room) if room else 0)
        + (size(key) if key else 0)
    )


class _State:
    """What actions made of one message: kept only for messages acted on or answered."""

    __slots__ = ("deleted", "edited_at", "reactions", "replies", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.edited_at: datetime | None = None
        self.deleted = False
        self.reactions: dict[str, dict[str, None]] = {}  # emoji: its users, in order
        self.replies = 0

    def current(self, message: Stored) -> Current:
        return Current(
            dataclasses.replace(message, text=self.text),
            self.edited_at,
            self.deleted,
            tuple(
                Reaction(emoji, len(users), tuple(list(users)[:REACTION_USERS]))
                for emoji, users in self.reactions.items()
            ),
            self.replies,
        )


class MemoryStore:
    """Keeps messages in process memory; appends are durable the moment they return.
    A message key is remembered as long as its message is kept."""

    def __init__(self, max_history: int = 0, max_bytes: int = 0) -> None:
        self.presence = LocalPresence()  # one process: its streams are all there are
        self.epoch = new_epoch()
        self._keys: dict[tuple[str, str], Stored] = {}
        self._max_history = max_history
        self._max_bytes = max_bytes
        # Lists are replaced, never cut in place, so a history read going through one meanwhile
        # sees what it began with; appends go at the end, past where such a read stops.
        self._all: list[Stored] = []  # id order; may hold messages a room dropped since
        self._dropped: set[int] = set()  # ids in _all that their room no longer keeps
        self._by_room: dict[str, list[Stored]] = {}
        self._room_bytes: dict[str, int] = {}  # what each room's messages cost
        self._messages: dict[str, int] = {}  # by room: the kept messages (CHAT) not deleted
        self._count = 0  # the sum of _messages
        self.bytes = 0
        """What the kept messages cost, about (`message_bytes`)."""
        self._listeners: list[Listener] = []
        self._buckets = TokenBuckets()  # flood control: one process, so kept here
        self._next_id = 1
        self._states: dict[int, _State] = {}  # by message id: those acted on or answered
        self._topics: dict[str, str] = {}
        self._read_ids: dict[tuple[str, str], int] = {}  # by (user, room): their read marker

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def append(self, draft: Draft) -> Stored:
        return self._append_now(draft)

    async def append_all(self, drafts: Sequence[Draft]) -> list[Stored]:
        """Together: nothing here waits, so the listeners hear of them all in this turn."""
        return [self._append_now(draft) for draft in drafts]

    def _append_now(self, draft: Draft) -> Stored:
        if draft.key:
            first = self._keys.get((draft.user, draft.key))
            if first is not None:
                return dataclasses.replace(first, origin=draft.origin, repeat=True)
        stored = stored_from(draft, self._next_id, datetime.now(UTC))
        self._next_id += 1
        if draft.kind != CHAT or draft.reply_to:
            self._apply(stored)
        if draft.key:
            self._keys[draft.user, draft.key] = stored
        self._all.append(stored)
        room = self._by_room.setdefault(draft.room, [])
        room.append(stored)
        size = message_bytes(stored)
        if draft.kind == CHAT:
            self._counted(draft.room, 1)
        self.bytes += size
        self._room_bytes[draft.room] = self._room_bytes.get(draft.room, 0) + size
        if self._max_history and len(room) > self._max_history * SLACK:
            self._trim_room(draft.room, room)
        if self._max_bytes and self.bytes > self._max_bytes:
            self._trim_largest()
        for listener in self._listeners:
            listener.stored(stored)
        return stored

    def _apply(self, entry: Stored) -> None:
        """Folds an action (or a reply) into the state of the message it is about."""
        if entry.kind == TOPIC:
            self._topics[entry.room] = entry.text
            return
        target = self._find(entry.reply_to if entry.kind == CHAT else entry.target_id)
        if target is None:
            return
        if entry.kind == READ:
            marker = (entry.user, entry.room)
            self._read_ids[marker] = max(self._read_ids.get(marker, 0), target.id)
            return
        state = self._states.get(target.id)
        if state is None:
            state = self._states[target.id] = _State(target.text)
        if entry.kind == CHAT:
            state.replies += 1
        elif entry.kind == EDIT:
            state.text, state.edited_at = entry.text, entry.sent_at
        elif entry.kind == DELETE:
            if not state.deleted:
                self._counted(target.room, -1)
            state.text, state.deleted = "", True
            state.reactions.clear()
        elif entry.kind == REACTION and entry.removed:
            users = state.reactions.get(entry.text, {})
            users.pop(entry.user, None)
            if not users:
                state.reactions.pop(entry.text, None)
        elif entry.kind == REACTION:
            state.reactions.setdefault(entry.text, {})[entry.user] = None

    def _counted(self, room: str, change: int) -> None:
        """Adds `change` to the messages `room` has (and the store)."""
        self._messages[room] = self._messages.get(room, 0) + change
        self._count += change

    def _find(self, id: int) -> Stored | None:
        """Message `id` (CHAT) while it is kept."""
        messages = self._all
        index = bisect.bisect_left(messages, id, key=lambda m: m.id)
        if index == len(messages) or messages[index].id != id or id in self._dropped:
            return None
        found = messages[index]
        return found if found.kind == CHAT else None

    def _trim_room(self, name: str, room: list[Stored]) -> None:
        """Keeps the newest `max_history` of a room; the whole list forgets the rest lazily."""
        cut = len(room) - self._max_history
        for message in room[:cut]:
            self._forget(message)
            self._dropped.add(message.id)
        self._keep(name, room[cut:])
        if len(self._dropped) * 2 > len(self._all):  # when they are half of it
            self._compact()

    def _keep(self, name: str, room: list[Stored]) -> None:
        """Makes `room` the room's list, or forgets the room when it is empty."""
        if room:
            self._by_room[name] = room
        else:
            del self._by_room[name]
            del self._room_bytes[name]
            self._messages.pop(name, None)

    def _compact(self) -> None:
        """Takes the dropped messages out of the whole list, which frees them."""
        self._all = [message for message in self._all if message.id not in self._dropped]
        self._dropped.clear()

    def _trim_largest(self) -> None:
        """Drops the oldest message of the room that holds the most, again and again, until the
        store is back to TRIMMED_TO of its byte budget (of rooms that hold about as much, the
        one with the older message first): a flood into one room evicts that room's own
        history first. A room left empty is gone."""
        target = self._max_bytes * TRIMMED_TO
        rooms = self._by_room
        largest = [
            (-size // SIZE_GRAIN, rooms[name][0].id, name)
            for name, size in self._room_bytes.items()
        ]
        heapq.heapify(largest)
        cuts: Counter[str] = Counter()
        while self.bytes > target and largest:
            name = largest[0][2]
            room, cut = rooms[name], cuts[name]
            self._forget(room[cut])
            self._dropped.add(room[cut].id)
            cuts[name] = cut = cut + 1
            if cut < len(room):
                size = -self._room_bytes[name] // SIZE_GRAIN
                heapq.heapreplace(largest, (size, room[cut].id, name))
            else:
                heapq.heappop(largest)
        for name, cut in cuts.items():
            self._keep(name, rooms[name][cut:])
        self._compact()  # now: what the whole list holds of them is what the budget is about

    def _forget(self, message: Stored) -> None:
        size = message_bytes(message)
        if message.kind == CHAT and not (
            (state := self._states.get(message.id)) is not None and state.deleted
        ):
            self._counted(message.room, -1)
        self.bytes -= size
        self._room_bytes[message.room] -= size
        if message.key and self._keys.get((message.user, message.key)) is message:
            del self._keys[message.user, message.key]
        self._states.pop(message.id, None)

    async def history(
        self, room: str | None, after_id: int = 0, limit: int = 0, *, entries: bool = False
    ) -> AsyncIterator[Stored]:
        if room is not None:
            messages: Sequence[Stored] = self._by_room.get(room, [])
            dropped: Set[int] = frozenset()
        else:
            messages, dropped = self._all, self._dropped
        if not entries:
            async for message in self._as_now(messages, dropped, after_id, limit):
                yield message
            return
        start = bisect.bisect_right(messages, after_id, key=lambda m: m.id)
        if limit and not dropped:
            start = max(start, len(messages) - limit)
        elif limit:  # the newest `limit` kept ones, found from the end
            newest, kept = len(messages), 0
            while newest > start and kept < limit:
                newest -= 1
                kept += messages[newest].id not in dropped
            start = newest
        end = len(messages)
        for index in range(start, end):
            message = messages[index]
            if message.id not in dropped:
                yield message

    async def _as_now(
        self, messages: Sequence[Stored], dropped: Set[int], after_id: int, limit: int
    ) -> AsyncIterator[Stored]:
        """The messages (CHAT) after `after_id` as they are now, the deleted ones left out;
        with `limit`, the newest N of them."""
        start = bisect.bisect_right(messages, after_id, key=lambda m: m.id)
        states = self._states
        if limit:  # found from the end
            newest, kept = len(messages), 0
            while newest > start and kept < limit:
                newest -= 1
                message = messages[newest]
                state = states.get(message.id)
                kept += (
                    message.kind == CHAT
                    and message.id not in dropped
                    and not (state is not None and state.deleted)
                )
            start = newest
        for index in range(start, len(messages)):
            message = messages[index]
            if message.kind != CHAT or message.id in dropped:
                continue
            state = states.get(message.id)
            if state is None:
                yield message
            elif not state.deleted:
                yield dataclasses.replace(message, text=state.text) if state.edited_at else message

    async def message(self, id: int) -> Current | None:
        found = self._find(id)
        if found is None:
            return None
        state = self._states.get(id)
        return state.current(found) if state is not None else Current(found)

    async def page(
        self, room: str, *, before_id: int = 0, after_id: int = 0, limit: int, thread: int = 0
    ) -> tuple[list[Current], bool]:
        messages = self._by_room.get(room, [])

        def wanted(message: Stored) -> bool:
            return message.kind == CHAT and (
                not thread or message.id == thread or message.reply_to == thread
            )

        picked: list[Stored] = []
        more = False
        if after_id:
            index = bisect.bisect_right(messages, after_id, key=lambda m: m.id)
            for message in messages[index:]:
                if wanted(message):
                    if len(picked) == limit:
                        more = True
                        break
                    picked.append(message)
        else:
            end = len(messages)
            if before_id:
                end = bisect.bisect_left(messages, before_id, key=lambda m: m.id)
            for index in range(end - 1, -1, -1):
                if wanted(messages[index]):
                    if len(picked) == limit:
                        more = True
                        break
                    picked.append(messages[index])
            picked.reverse()
        states = self._states
        return [
            state.current(message) if (state := states.get(message.id)) else Current(message)
            for message in picked
        ], more

    async def keyed(self, user: str, key: str) -> tuple[int, datetime] | None:
        first = self._keys.get((user, key))
        return (first.id, first.sent_at) if first is not None else None

    async def reacted(self, id: int, emoji: str, user: str) -> bool:
        state = self._states.get(id)
        return state is not None and user in state.reactions.get(emoji, {})

    async def read_id(self, user: str, room: str) -> int:
        return self._read_ids.get((user, room), 0)

    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, Unread]:
        """Each room's entries after the marker, read until UNREAD_LIMIT are counted."""
        return {room: self._unread(user, room) for room in rooms}

    def _unread(self, user: str, room: str) -> Unread:
        read_id = self._read_ids.get((user, room), 0)
        entries = self._by_room.get(room, [])
        count = 0
        for entry in entries[bisect.bisect_right(entries, read_id, key=lambda m: m.id) :]:
            if entry.kind == CHAT and entry.user != user:
                state = self._states.get(entry.id)
                count += not (state and state.deleted)
                if count == UNREAD_LIMIT:
                    break
        return Unread(read_id, count)

    async def summaries(self, names: Collection[str]) -> list[RoomSummary]:
        rooms = self._by_room
        return [
            RoomSummary(
                name, self._topics.get(name, ""), rooms[name][-1].id, self._messages.get(name, 0)
            )
            for name in names
            if name in rooms
        ]

    async def check(self) -> None:
        return None

    async def count(self, room: str | None = None) -> int:
        return self._count if room is None else self._messages.get(room, 0)

    async def rooms(self) -> Set[str]:
        return self._by_room.keys()

    async def room_count(self) -> int:
        return len(self._by_room)

    async def stored_rooms(self, names: Collection[str]) -> set[str]:
        return {name for name in names if name in self._by_room}

    async def take_token(self, user: str, rate: float, burst: int) -> bool:
        return self._buckets.take(user, rate, burst)

    async def close(self) -> None:
        self._listeners.clear()
