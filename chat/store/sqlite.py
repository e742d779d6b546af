"""`sqlite:///path`: the default store. WAL mode and group commit: every message waiting while a
transaction commits goes into the next one, and each is acknowledged only after its commit."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from chat.errors import StoreUnavailable
from chat.model import Draft, Stored
from chat.store import PAGE_SIZE, SLACK, Listener

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id      INTEGER PRIMARY KEY,
    room    TEXT    NOT NULL,
    user    TEXT    NOT NULL,
    text    TEXT    NOT NULL,
    sent_at INTEGER NOT NULL  -- microseconds since the epoch, UTC
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
"""

COLUMNS = "id, room, user, text, sent_at"

Pending = tuple[Draft, "asyncio.Future[Stored]"]
MAX_ID = 2**63 - 1
"""The largest SQLite INTEGER: no message has an id beyond it (ids on the wire are uint64)."""
MAX_BATCH = 1000
"""Messages per transaction at most: 5,000 parameters, well within SQLite's 32,766."""
CLOSE = None  # queued by close(): the committer commits what came before it, then stops


def _row_to_stored(row: aiosqlite.Row | tuple[int, str, str, str, int]) -> Stored:
    id_, room, user, text, micros = row
    return Stored(id_, room, user, text, datetime.fromtimestamp(micros / 1e6, UTC))


class SqliteStore:
    """One writer connection that group-commits, one reader connection for history."""

    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, max_history: int
    ) -> None:
        self._max_history = max_history
        self._writer = writer
        self._reader = reader
        self._listeners: list[Listener] = []
        self._pending: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._counts: dict[str, int] = {}
        self._next_id = 1
        self._committer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str, max_history: int = 0) -> "SqliteStore":
        """Opens (creating if needed) the database file and starts the committer."""
        try:
            # Autocommit: each batch is one multi-row INSERT, its own transaction, committed in
            # one trip to the connection's thread.
            writer = await aiosqlite.connect(path, isolation_level=None)
            await writer.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit is in the OS before it returns, so it survives the
            # server being killed; only a power loss can take the last commits.
            await writer.execute("PRAGMA synchronous=NORMAL")
            await writer.executescript(SCHEMA)
            reader = await aiosqlite.connect(path)
        except Exception as error:
            raise StoreUnavailable(f"cannot open SQLite database {path!r}: {error}") from error
        store = cls(writer, reader, max_history)
        await store._load_counts()
        store._committer = asyncio.create_task(store._commit_forever(), name="sqlite-committer")
        return store

    async def _load_counts(self) -> None:
        async with self._writer.execute(
            "SELECT room, COUNT(*), MAX(id) FROM messages GROUP BY room"
        ) as cursor:
            async for room, count, max_id in cursor:
                self._counts[room] = count
                self._next_id = max(self._next_id, max_id + 1)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def append(self, draft: Draft) -> Stored:
        if self._committer is None:
            raise StoreUnavailable("the SQLite store is closed")
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((draft, future))
        return await future

    async def _commit_forever(self) -> None:
        while True:
            batch: list[Pending] = []
            item = await self._pending.get()
            while item is not CLOSE:
                batch.append(item)
                if self._pending.empty() or len(batch) == MAX_BATCH:
                    break
                item = self._pending.get_nowait()
            if batch:
                await self._commit(batch)
            if item is CLOSE:
                return

    async def _commit(self, batch: list[Pending]) -> None:
        now = datetime.now(UTC)
        micros = int(now.timestamp() * 1e6)
        stored = [
            Stored(self._next_id + n, d.room, d.user, d.text, now, d.origin)
            for n, (d, _) in enumerate(batch)
        ]
        rows = ", ".join(["(?, ?, ?, ?, ?)"] * len(stored))
        values = [v for s in stored for v in (s.id, s.room, s.user, s.text, micros)]
        try:
            await self._writer.execute(f"INSERT INTO messages ({COLUMNS}) VALUES {rows}", values)
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable(f"SQLite write failed: {error}"))
            return
        self._next_id += len(stored)
        for message, (_, future) in zip(stored, batch, strict=True):
            self._counts[message.room] = self._counts.get(message.room, 0) + 1
            for listener in self._listeners:
                listener.stored(message)
            if not future.done():
                future.set_result(message)
        if self._max_history:
            await self._trim({message.room for message in stored})

    async def _trim(self, rooms: set[str]) -> None:
        """Deletes a room's oldest messages once it holds SLACK times its limit (amortised)."""
        for room in rooms:
            if self._counts[room] > self._max_history * SLACK:
                try:
                    await self._writer.execute(
                        "DELETE FROM messages WHERE room = ? AND id <= (SELECT id FROM messages"
                        " WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        [room, room, self._max_history],
                    )
                except Exception:  # retention is best effort: the messages stay until next time
                    continue
                self._counts[room] = self._max_history

    async def history(
        self, room: str | None, after_id: int = 0, limit: int = 0
    ) -> AsyncIterator[Stored]:
        after_id = min(after_id, MAX_ID)  # SQLite cannot even compare with a larger number
        if limit:
            after_id = max(after_id, await self._id_before_newest(room, limit))
        where, args = ("room = ? AND id > ?", [room]) if room is not None else ("id > ?", [])
        while True:
            rows = await self._read(
                f"SELECT {COLUMNS} FROM messages WHERE {where} ORDER BY id LIMIT {PAGE_SIZE}",
                [*args, after_id],
            )
            page = [_row_to_stored(row) for row in rows]
            for message in page:
                yield message
            if len(page) < PAGE_SIZE:
                return
            after_id = page[-1].id

    async def _id_before_newest(self, room: str | None, limit: int) -> int:
        """The id just before the newest `limit` messages (0 when there are fewer)."""
        where, args = ("WHERE room = ?", [room]) if room is not None else ("", [])
        rows = await self._read(
            f"SELECT id FROM messages {where} ORDER BY id DESC LIMIT 1 OFFSET ?", [*args, limit]
        )
        return int(rows[0][0]) if rows else 0

    async def _read(self, sql: str, args: list[object]) -> list[Any]:
        """All rows of one query, run and finished in one trip to the reader's thread.

        A statement left open between trips (execute now, fetch later) holds the reader
        connection's read transaction, and a query another task runs meanwhile sees that older
        snapshot: a message stored before the query began would be missing from a replay.
        """
        return list(await self._reader.execute_fetchall(sql, args))

    async def check(self) -> None:
        if self._committer is None:
            raise StoreUnavailable("the SQLite store is closed")
        try:
            await self._read("SELECT 1", [])
        except Exception as error:
            raise StoreUnavailable(f"SQLite does not answer: {error}") from error

    async def count(self, room: str | None = None) -> int:
        return sum(self._counts.values()) if room is None else self._counts.get(room, 0)

    async def rooms(self) -> set[str]:
        return set(self._counts)

    async def close(self) -> None:
        """Commits what is pending, then closes both connections."""
        if self._committer is not None:
            committer, self._committer = self._committer, None
            self._pending.put_nowait(CLOSE)
            await committer
        self._listeners.clear()
        await self._writer.close()
        await self._reader.close()
