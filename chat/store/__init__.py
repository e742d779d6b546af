"""The one place where a `--store` URL picks a backend (chat/store/base.py has the interface)."""

from pathlib import Path

from chat.errors import ConfigError
from chat.store.base import (
    DEDUPE_WINDOW,
    PAGE_SIZE,
    PRESENCE_INTERVAL,
    PRESENCE_TIMEOUT,
    Listener,
    Store,
    presence_problem,
)

__all__ = [
    "DEDUPE_WINDOW",
    "PAGE_SIZE",
    "PRESENCE_INTERVAL",
    "PRESENCE_TIMEOUT",
    "Listener",
    "Store",
    "open_store",
    "presence_problem",
    "sqlite_path",
    "url_problem",
]


SCHEMES = ("memory", "sqlite", "redis", "redis+cluster")
"""The schemes of a store URL, each a backend."""
SQLITE_FORMS = (
    "sqlite:///chat.db is chat.db in the working directory; four slashes make a path absolute: "
    "sqlite:////var/lib/chat/chat.db"
)


async def open_store(
    url: str,
    *,
    max_history: int = 0,
    dedupe_window: float = DEDUPE_WINDOW,
    presence_interval: float = PRESENCE_INTERVAL,
    presence_timeout: float = PRESENCE_TIMEOUT,
    max_memory_bytes: int = 0,
) -> Store:
    """Opens the backend a URL names: `memory://`, `sqlite:///path/chat.db`, `redis://host/db`,
    `redis+cluster://host:port`.

    `max_history` keeps about the newest N messages per room (0: all); `dedupe_window` is how
    many seconds a message key is remembered at least (memory: as long as its message is kept);
    `max_memory_bytes` bounds what `memory://` holds in all (0: no bound; the largest rooms lose
    their oldest first).
    With Redis, a replica beats every `presence_interval` seconds, and one silent for
    `presence_timeout` seconds is gone, its users with it.
    """
    if problem := url_problem(url):
        raise ConfigError(f"store URL {problem}")
    scheme = url.partition("://")[0]
    if scheme == "memory":
        from chat.store.memory import MemoryStore

        return MemoryStore(max_history, max_memory_bytes)
    if scheme == "sqlite":
        from chat.store.sqlite import SqliteStore

        return await SqliteStore.open(str(sqlite_path(url)), max_history, dedupe_window)
    if scheme in ("redis", "redis+cluster"):
        from chat.store.redis import RedisStore

        return await RedisStore.open(
            url, max_history, dedupe_window, presence_interval, presence_timeout
        )
    raise AssertionError(f"url_problem passed {url!r}")


def url_problem(url: str) -> str | None:
    """Why `url` names no store (no scheme, an unknown one), or None: checked with the other
    settings, before anything opens."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        return f"{url!r} has no scheme; try sqlite:///chat.db or memory://"
    if scheme not in SCHEMES:
        return (
            f"{url!r} names no store; use memory://, sqlite:///path, redis://host:port/db or "
            "redis+cluster://host:port"
        )
    return None


def sqlite_path(url: str) -> Path:
    """The database file of a `sqlite://` URL, as SQLAlchemy reads one: three slashes and a
    relative path, four for an absolute one. Raises ConfigError, with both forms, when the URL
    names no file or its folder does not exist (SQLite makes the file, not its folders)."""
    rest = url.partition("://")[2]
    path = Path(rest[1:] if rest.startswith("/") else rest)
    if not rest.strip("/"):
        raise ConfigError(f"store URL {url!r} names no file; {SQLITE_FORMS}")
    if not path.parent.is_dir():
        where = path.resolve()
        absolute = Path("/", path)
        meant = (
            f"; for {absolute} write sqlite:///{absolute}"
            if not path.is_absolute() and absolute.parent.is_dir()
            else ""
        )
        raise ConfigError(
            f"store URL {url!r} is the file {where}, whose folder {where.parent} does not exist"
            f"{meant} ({SQLITE_FORMS})"
        )
    return path
