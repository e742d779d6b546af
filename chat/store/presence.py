"""Presence: who has a live stream in which room, and the JOIN and LEAVE that changes bring.

The rooms (chat/server/rooms.py) tell a store's presence of every stream that opens, closes,
enters or leaves a room; it counts them and calls back with JOIN on a user's first stream in a
room and LEAVE on the last. `LocalPresence` counts one process's streams (memory and SQLite
stores); the Redis store's counts every replica's (chat/store/redis_presence.py).
"""

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from chat.contract import Kind

Announce = Callable[[int, str, str, int], None]
"""JOIN or LEAVE, room, user, and the stream that moved when it is one of this process's (0:
another replica's): the rooms tell everyone in the room but that stream."""


class Presence(Protocol):
    """Counts streams by room and user; reads answer for every replica sharing the store."""

    @property
    def updates(self) -> int:
        """Round trips made to a shared store to count streams, since the start (Redis); 0
        for presence kept in process."""
        ...

    def watch(self, announce: Announce) -> None:
        """Calls `announce` with every JOIN and LEAVE from now on."""
        ...

    def opened(self, stream: int) -> None:
        """A live stream opened (it counts in `connected()` until `closed`)."""
        ...

    def closed(self, stream: int) -> None: ...

    def entered(self, room: str, user: str | None, stream: int) -> None:
        """The stream takes `room`'s messages from now on; `user` None: a history follower,
        counted as connected but not shown online."""
        ...

    def left(self, room: str, user: str | None, stream: int) -> None: ...

    async def online(self, room: str | None = None) -> list[str]:
        """Users with a live stream, in one room or anywhere, sorted."""
        ...

    async def connected(self, room: str | None = None) -> int:
        """Live streams, in one room or in all."""
        ...

    async def connected_in(self, rooms: Iterable[str]) -> int:
        """Live streams in any of `rooms`."""
        ...

    async def active_rooms(self) -> set[str]:
        """Rooms someone is listening to right now."""
        ...


class LocalPresence:
    """One process's streams: what it counts is all there is (memory and SQLite stores)."""

    def __init__(self) -> None:
        self.updates = 0  # none: nothing is shared
        self._announce: list[Announce] = []
        self._streams: set[int] = set()
        self._members: dict[str, set[int]] = {}
        self._online: dict[str, Counter[str]] = {}

    def watch(self, announce: Announce) -> None:
        self._announce.append(announce)

    def opened(self, stream: int) -> None:
        self._streams.add(stream)

    def closed(self, stream: int) -> None:
        self._streams.discard(stream)

    def entered(self, room: str, user: str | None, stream: int) -> None:
        self._members.setdefault(room, set()).add(stream)
        if user is None:
            return
        online = self._online.setdefault(room, Counter())
        online[user] += 1
        if online[user] == 1:
            self._tell(Kind.JOIN, room, user, stream)

    def left(self, room: str, user: str | None, stream: int) -> None:
        members = self._members.get(room)
        if members is not None:
            members.discard(stream)
            if not members:
                del self._members[room]
        if user is None:
            return
        online = self._online[room]
        online[user] -= 1
        if online[user] == 0:
            del online[user]
            if not online:
                del self._online[room]
            self._tell(Kind.LEAVE, room, user, stream)

    async def online(self, room: str | None = None) -> list[str]:
        if room is not None:
            return sorted(self._online.get(room, ()))
        return sorted(set().union(*self._online.values()))

    async def connected(self, room: str | None = None) -> int:
        if room is None:
            return len(self._streams)
        return len(self._members.get(room, ()))

    async def connected_in(self, rooms: Iterable[str]) -> int:
        return len(set().union(*(self._members.get(room, ()) for room in rooms)))

    async def active_rooms(self) -> set[str]:
        return set(self._members)

    def _tell(self, kind: int, room: str, user: str, stream: int) -> None:
        for announce in self._announce:
            announce(kind, room, user, stream)
