"""`memory://`: a list and a dict, for tests and demos; nothing survives a restart."""

import bisect
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from chat.model import Draft, Stored
from chat.store.base import SLACK, Listener, new_epoch
from chat.store.buckets import TokenBuckets
from chat.store.presence import LocalPresence


class MemoryStore:
    """Keeps every message in process memory; appends are durable the moment they return.
    Message keys are remembered for the process's lifetime."""

    def __init__(self, max_history: int = 0) -> None:
        self.presence = LocalPresence()  # one process: its streams are all there are
        self.epoch = new_epoch()
        self._keys: dict[tuple[str, str], Stored] = {}
        self._max_history = max_history
        self._all: list[Stored] = []
        self._by_room: dict[str, list[Stored]] = {}
        self._listeners: list[Listener] = []
        self._buckets = TokenBuckets()  # flood control: one process, so kept here
        self._next_id = 1

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def append(self, draft: Draft) -> Stored:
        if draft.key:
            first = self._keys.get((draft.user, draft.key))
            if first is not None:
                return dataclasses.replace(first, origin=draft.origin, repeat=True)
        stored = Stored(
            id=self._next_id,
            room=draft.room,
            user=draft.user,
            text=draft.text,
            sent_at=datetime.now(UTC),
            origin=draft.origin,
            key=draft.key,
        )
        self._next_id += 1
        if draft.key:
            self._keys[draft.user, draft.key] = stored
        self._all.append(stored)
        room = self._by_room.setdefault(draft.room, [])
        room.append(stored)
        if self._max_history and len(room) > self._max_history * SLACK:
            self._trim(room)
        for listener in self._listeners:
            listener.stored(stored)
        return stored

    def _trim(self, room: list[Stored]) -> None:
        dropped = {message.id for message in room[: len(room) - self._max_history]}
        del room[: len(dropped)]
        self._all = [message for message in self._all if message.id not in dropped]

    async def history(
        self, room: str | None, after_id: int = 0, limit: int = 0
    ) -> AsyncIterator[Stored]:
        messages: Sequence[Stored] = self._all if room is None else self._by_room.get(room, [])
        start = bisect.bisect_right(messages, after_id, key=lambda m: m.id)
        if limit:
            start = max(start, len(messages) - limit)
        end = len(messages)
        for index in range(start, end):
            yield messages[index]

    async def check(self) -> None:
        return None

    async def count(self, room: str | None = None) -> int:
        return len(self._all) if room is None else len(self._by_room.get(room, ()))

    async def rooms(self) -> set[str]:
        return set(self._by_room)

    async def take_token(self, user: str, rate: float, burst: int) -> bool:
        return self._buckets.take(user, rate, burst)

    async def close(self) -> None:
        self._listeners.clear()
