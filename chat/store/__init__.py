"""The one place where a `--store` URL picks a backend (chat/store/base.py has the interface)."""

from chat.errors import ConfigError
from chat.store.base import DEDUPE_WINDOW, PAGE_SIZE, Listener, Store

__all__ = ["DEDUPE_WINDOW", "PAGE_SIZE", "Listener", "Store", "open_store"]


async def open_store(
    url: str, *, max_history: int = 0, dedupe_window: float = DEDUPE_WINDOW
) -> Store:
    """Opens the backend a URL names: `memory://`, `sqlite:///path/chat.db`, `redis://host/db`.

    `max_history` keeps about the newest N messages per room (0: all); `dedupe_window` is how
    many seconds a message key is remembered at least (memory: as long as the process runs).
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
        return await SqliteStore.open(path, max_history, dedupe_window)
    if scheme == "redis":
        from chat.store.redis import RedisStore

        return await RedisStore.open(url, max_history, dedupe_window)
    raise ConfigError(
        f"unknown store {scheme!r} in {url!r}; use memory://, sqlite:///path or redis://host:port/db"
    )
