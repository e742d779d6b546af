"""`memory://`: a list and a dict, for tests and demos; nothing survives a restart."""

import bisect
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from chat.model import Draft, Stored
from chat.store import Listener


class MemoryStore:
    """Keeps every message in process memory; appends are durable the moment they return."""

    def __init__(self) -> None:
        self._all: list[Stored] = []
        self._by_room: dict[str, list[Stored]] = {}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def append(self, draft: Draft) -> Stored:
        stored = Stored(
            id=len(self._all) + 1,
            room=draft.room,
            user=draft.user,
            text=draft.text,
            sent_at=datetime.now(UTC),
            origin=draft.origin,
        )
        self._all.append(stored)
        self._by_room.setdefault(draft.room, []).append(stored)
        for listener in self._listeners:
            listener.stored(stored)
        return stored

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

    async def close(self) -> None:
        self._listeners.clear()
