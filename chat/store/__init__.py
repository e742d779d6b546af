"""The storage interface and the one place where a `--store` URL picks a backend."""

from collections.abc import AsyncIterator
from typing import Protocol

from chat.errors import ConfigError, StoreUnavailable
from chat.model import Draft, Stored


class Listener(Protocol):
    """Who hears what a store commits (chat/rooms.py): the live fan-out of every replica."""

    def stored(self, message: Stored) -> None:
        """A message was committed; called in id order, with nothing skipped."""
        ...

    def lost(self, error: StoreUnavailable) -> None:
        """Live delivery broke (the store went away): messages from now on may be missed."""
        ...


PAGE_SIZE = 500
"""Rows fetched per history query: memory stays flat however long the history is."""
SLACK = 1.1
"""With a retention limit N, a room may grow to N x SLACK before it is trimmed back to N."""


class Store(Protocol):
    """What the server keeps; every backend tells its listener of commits in id order."""

    def listen(self, listener: Listener) -> None:
        """Tells `listener` of every message committed from now on, on any replica, in id order."""
        ...

    async def check(self) -> None:
        """Returns when the store answers; raises StoreUnavailable when it does not (health)."""
        ...

    async def append(self, draft: Draft) -> Stored:
        """Stores the draft; returns only once it is durable and the listeners have heard of it
        (so its ACK, queued by the listener, comes in id order among the room's messages)."""
        ...

    def history(self, room: str | None, after_id: int = 0, limit: int = 0) -> AsyncIterator[Stored]:
        """Stored messages oldest first, read page by page; `limit` keeps the newest N."""
        ...

    async def count(self, room: str | None = None) -> int:
        """How many messages are stored, in one room or in all of them."""
        ...

    async def rooms(self) -> set[str]:
        """The names of the rooms that have stored messages."""
        ...

    async def close(self) -> None:
        """Flushes pending writes and releases the backend."""
        ...


async def open_store(url: str, *, max_history: int = 0) -> Store:
    """Opens the backend a URL names: `memory://`, `sqlite:///path/chat.db`, `redis://host/db`.

    `max_history` keeps about the newest N messages per room (0: all).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"store URL {url!r} has no scheme; try sqlite:///chat.db or memory://")
    if scheme == "memory":
        from chat.store.memory import MemoryStore

        return MemoryStore(max_history)
    if scheme == "sqlite":
        from chat.store.sqlite import SqliteStore

        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigError(f"store URL {url!r} names no file; try sqlite:///chat.db")
        return await SqliteStore.open(path, max_history)
    if scheme == "redis":
        from chat.store.redis import RedisStore

        return await RedisStore.open(url, max_history)
    raise ConfigError(
        f"unknown store {scheme!r} in {url!r}; use memory://, sqlite:///path or redis://host:port/db"
    )
