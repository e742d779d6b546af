"""`sqlite:///path`: the default store. WAL mode and group commit: every message that arrives
while the event loop is busy goes into the same transaction, acknowledged only after its commit.

Writes run on the event loop's own thread with the standard `sqlite3` module: in WAL mode with
synchronous=NORMAL a commit appends to the log in the OS's page cache and never waits for the
disk, which costs less than a trip to aiosqlite's thread and back (about half of the server's CPU
per message went to that trip). What does wait for the disk, the checkpoint that copies the log
into the database, runs on aiosqlite's thread, as do the history reads.

An action (edit, delete, reaction, topic) is a row of `messages` like a message; in the same
transaction it, and a reply, change the state kept beside the log: `states` (a message's text
now, its reactions summed up, its replies), `reactions` (who put which emoji on), `topics`.
"""

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Collection, Sequence, Set
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from chat.errors import StoreUnavailable
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
from chat.store.base import (
    DEDUPE_WINDOW,
    FIRST_PAGE,
    SLACK,
    UNREAD_LIMIT,
    Listener,
    new_epoch,
    next_page_size,
)
from chat.store.buckets import TokenBuckets
from chat.store.presence import LocalPresence

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id      INTEGER PRIMARY KEY,
    room    TEXT    NOT NULL,
    user    TEXT    NOT NULL,
    text    TEXT    NOT NULL,
    sent_at INTEGER NOT NULL  -- microseconds since the epoch, UTC
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS message_keys (
    id      INTEGER PRIMARY KEY,  -- the message's id
    user    TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    sent_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS message_keys_by_user ON message_keys (user, key);
CREATE TABLE IF NOT EXISTS states (
    id        INTEGER PRIMARY KEY,  -- a message acted on or answered
    text      TEXT,                 -- its text now, when an edit or a delete changed it
    edited_at INTEGER,              -- microseconds, like sent_at
    deleted   INTEGER NOT NULL DEFAULT 0,
    replies   INTEGER NOT NULL DEFAULT 0,
    reactions TEXT                  -- JSON: [[emoji, count, [first users]], ...]
);
CREATE TABLE IF NOT EXISTS reactions (
    id    INTEGER NOT NULL,  -- the message
    emoji TEXT    NOT NULL,
    user  TEXT    NOT NULL,
    seq   INTEGER NOT NULL,  -- the id of the entry that put it there: the users' order
    PRIMARY KEY (id, emoji, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (
    room  TEXT PRIMARY KEY,
    topic TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS read_markers (
    user    TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    read_id INTEGER NOT NULL,  -- the message the user has read up to: only ever larger
    PRIMARY KEY (user, room)
) WITHOUT ROWID;
"""
ADDED_COLUMNS = {
    "kind": "INTEGER NOT NULL DEFAULT 0",
    "target_id": "INTEGER",
    "reply_to": "INTEGER",
    "removed": "INTEGER NOT NULL DEFAULT 0",
}
"""Columns of `messages` added after its first version: a database made before them gets
them when it is opened (NULL: none)."""
THREADS = """
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages (reply_to, id)
    WHERE reply_to IS NOT NULL;
"""
"""Only replies are in it, so a plain message costs no more to insert."""
ACTIONS_BY_ROOM = f"""
CREATE INDEX IF NOT EXISTS actions_by_room ON messages (room) WHERE kind != {CHAT};
"""
"""Only actions are in it: the count of a room's messages, made at open, reads them alone."""

INSERTED = "id, room, user, text, sent_at, kind, target_id, reply_to, removed"
COLUMNS = "m.id, m.room, m.user, m.text, m.sent_at, m.kind, m.target_id, m.reply_to, m.removed"
"""An entry as logged, from `messages AS m`."""
NOW = (
    "m.id, m.room, m.user, COALESCE(s.text, m.text), m.sent_at, m.kind, m.target_id,"
    " m.reply_to, m.removed"
)
"""A message with its text now, from `messages AS m LEFT JOIN states AS s`."""
STATE = "s.edited_at, s.deleted, s.replies, s.reactions"
WITH_STATE = "messages AS m LEFT JOIN states AS s ON s.id = m.id"

Pending = tuple[Draft, "asyncio.Future[Stored]"]
MAX_ID = 2**63 - 1
"""The largest SQLite INTEGER: no message has an id beyond it (ids on the wire are uint64)."""
MAX_ROOMS_READ = 10_000
"""Rooms whose unread counts one query reads at most: within SQLite's 32,766 parameters."""
MAX_BATCH = 1000
"""Messages per transaction at most: 9,000 parameters, well within SQLite's 32,766."""
CHECKPOINT_EVERY = 200
"""Transactions between checkpoints: the log stays around a thousand pages, as SQLite's own."""
WAL_KEPT_BYTES = 64 * 1024 * 1024
"""What the log file is cut back to once a checkpoint has copied it: a burst of large messages
grows it (a full transaction of 8 KiB texts is 8 MB), and the disk gets that room back after,
where a full disk would see the log keep whatever it once took."""
MIN_EXPIRY = 1000
"""Keys past the dedupe window deleted at least per checkpoint (twice as many as were added
since the last one): the oldest first, so each deletion reads only what it deletes."""


Row = tuple[Any, ...]
Summary = list[list[Any]]
"""A message's reactions as `states.reactions` keeps them: [emoji, count, [first users]]."""


def _time(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1e6, UTC)


def _row_to_stored(row: Row) -> Stored:
    """An entry from the columns of COLUMNS or NOW."""
    id_, room, user, text, micros, kind, target_id, reply_to, removed = row[:9]
    return Stored(
        id_,
        room,
        user,
        text,
        _time(micros),
        0,
        "",
        False,
        kind,
        target_id or 0,
        reply_to or 0,
        bool(removed),
    )


def _rows_to_current(rows: list[Row]) -> list[Current]:
    """Messages from the columns of NOW and STATE. Entries stored together share their time,
    made once for them."""
    page: list[Current] = []
    micros, sent_at = -1, _time(0)
    for row in rows:
        id_, room, user, text, at, kind, _, reply_to, _, edited_at, deleted, replies, reactions = (
            row
        )
        if at != micros:
            micros, sent_at = at, _time(at)
        message = Stored(id_, room, user, text, sent_at, 0, "", False, kind, 0, reply_to or 0)
        if replies is None:  # no state: nothing acted on it
            page.append(Current(message))
            continue
        page.append(
            Current(
                message,
                _time(edited_at) if edited_at is not None else None,
                bool(deleted),
                tuple(
                    Reaction(emoji, count, tuple(users))
                    for emoji, count, users in json.loads(reactions or "[]")
                ),
                replies,
            )
        )
    return page


class SqliteStore:
    """A writer connection on the loop's thread, a reader connection on aiosqlite's thread."""

    def __init__(
        self,
        writer: sqlite3.Connection,
        reader: aiosqlite.Connection,
        max_history: int,
        dedupe_window: float = DEDUPE_WINDOW,
        epoch: str = "",
    ) -> None:
        self.presence = LocalPresence()  # one process: its streams are all there are
        self.epoch = epoch
        self._max_history = max_history
        self._dedupe_micros = int(dedupe_window * 1e6)
        self._keys_added = 0  # since the last expiry
        self._writer: sqlite3.Connection | None = writer
        self._reader = reader
        self._loop = asyncio.get_running_loop()
        self._listeners: list[Listener] = []
        self._buckets = TokenBuckets()  # flood control: one process, so kept here
        self._pending: list[Pending] = []
        self._counts: dict[str, int] = {}  # entries by room, actions too: what trimming counts
        self._messages: dict[str, int] = {}  # by room: its messages (CHAT) not deleted
        self._newest: dict[str, int] = {}  # the newest id by room
        self._topics: dict[str, str] = {}
        self._total = 0  # the sum of _messages, kept as they change
        self._next_id = 1
        self._commits = 0
        self._checkpoint: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: str,
        max_history: int = 0,
        dedupe_window: float = DEDUPE_WINDOW,
        wal_kept_bytes: int = WAL_KEPT_BYTES,
    ) -> "SqliteStore":
        """Opens (creating if needed) the database file; a new file gets a new epoch."""
        try:
            # Autocommit: each batch is one multi-row INSERT, its own transaction.
            writer = sqlite3.connect(path, isolation_level=None)
            writer.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit is in the OS before it returns, so it survives the
            # server being killed; only a power loss can take the last commits.
            writer.execute("PRAGMA synchronous=NORMAL")
            writer.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run off the loop
            writer.execute(f"PRAGMA journal_size_limit={int(wal_kept_bytes)}")
            writer.executescript(SCHEMA)
            _add_columns(writer)
            writer.executescript(THREADS)
            writer.executescript(ACTIONS_BY_ROOM)
            writer.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('epoch', ?)", [new_epoch()]
            )
            (epoch,) = writer.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
            reader = await aiosqlite.connect(path)
        except Exception as error:
            raise StoreUnavailable(f"cannot open SQLite database {path!r}: {error}") from error
        store = cls(writer, reader, max_history, dedupe_window, str(epoch))
        await store._load_counts()
        store._expire_keys()
        return store

    async def _load_counts(self) -> None:
        """The rooms' entries and messages (entries less actions less deleted messages), read
        once at open and kept by `_commit` and `_trim` since: the actions from their own index,
        the deleted messages from the states (none in a database made before actions)."""
        async with self._reader.execute(
            "SELECT room, COUNT(*), MAX(id) FROM messages GROUP BY room"
        ) as cursor:
            async for room, count, max_id in cursor:
                self._counts[room] = self._messages[room] = count
                self._newest[room] = max_id
                self._next_id = max(self._next_id, max_id + 1)
        not_messages = await self._read(
            f"SELECT room, COUNT(*) FROM messages WHERE kind != {CHAT} GROUP BY room", []
        ) + await self._read(
            # CROSS JOIN: from the states, as SQLite would rather read every message
            f"SELECT m.room, COUNT(*) FROM states AS s CROSS JOIN messages AS m ON m.id = s.id"
            f" WHERE s.deleted = 1 AND m.kind = {CHAT} GROUP BY m.room",
            [],
        )
        for room, count in not_messages:
            self._messages[room] -= count
        self._total = sum(self._messages.values())
        self._topics.update(await self._read("SELECT room, topic FROM topics", []))

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def append(self, draft: Draft) -> Stored:
        return (await self.append_all([draft]))[0]

    async def append_all(self, drafts: Sequence[Draft]) -> list[Stored]:
        """Together: in the same batch, committed in one transaction."""
        if self._writer is None:
            raise StoreUnavailable("the SQLite store is closed")
        futures: list[asyncio.Future[Stored]] = [self._loop.create_future() for _ in drafts]
        first = not self._pending
        self._pending += zip(drafts, futures, strict=True)
        if first and self._checkpoint is None:
            # The first messages of a batch commit it, one turn of the loop later: what other
            # streams sent meanwhile joins the batch. Committing here rather than from a
            # callback saves the sender a turn of the loop.
            try:
                await asyncio.sleep(0)
            finally:  # cancelled too: the others' messages must not wait for nobody
                self._commit_pending()
        if len(futures) == 1:
            return [await futures[0]]
        return await asyncio.gather(*futures)  # a failed batch: every failure retrieved

    def _commit_pending(self) -> None:
        if self._checkpoint is not None:
            return  # the checkpoint commits what waited for it when it is done
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if self._pending:
            self._loop.call_soon(self._commit_pending)
        if batch:
            self._commit(batch)

    def _commit(self, batch: list[Pending]) -> None:
        now = datetime.now(UTC)
        micros = int(now.timestamp() * 1e6)
        stored: list[Stored] = []
        results: list[Stored] = []  # one per draft of the batch: stored now, or a repeat
        keyed: dict[tuple[str, str], Stored] = {}
        for draft, _ in batch:
            first = self._first_with_key(draft, keyed) if draft.key else None
            if first is not None:
                results.append(first)
                continue
            message = stored_from(draft, self._next_id + len(stored), now)
            stored.append(message)
            results.append(message)
            if draft.key:
                keyed[draft.user, draft.key] = message
        try:
            taken = self._insert(stored, keyed, micros)
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable(f"SQLite write failed: {error}"))
            return
        self._next_id += len(stored)
        for room in taken:
            self._counted(room, -1)
        for message in stored:
            self._counts[message.room] = self._counts.get(message.room, 0) + 1
            if message.kind == CHAT:
                self._counted(message.room, 1)
            self._newest[message.room] = message.id
            if message.kind == TOPIC:
                self._topics[message.room] = message.text
            for listener in self._listeners:
                listener.stored(message)
        for result, (_, future) in zip(results, batch, strict=True):
            if not future.done():
                future.set_result(result)
        if self._max_history:
            self._trim({message.room for message in stored})
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0 and self._checkpoint is None:
            self._expire_keys()
            self._checkpoint = self._loop.create_task(self._checkpoint_log())

    def _counted(self, room: str, change: int) -> None:
        """Adds `change` to the messages `room` has (and the store)."""
        self._messages[room] = self._messages.get(room, 0) + change
        self._total += change

    def _first_with_key(self, draft: Draft, keyed: dict[tuple[str, str], Stored]) -> Stored | None:
        """The message stored first with the draft's (user, key), in this batch or before it,
        as a repeat for this draft; None when the key is new."""
        first = keyed.get((draft.user, draft.key))
        if first is not None:
            return dataclasses.replace(first, origin=draft.origin, repeat=True)
        assert self._writer is not None
        row = self._writer.execute(
            "SELECT id, sent_at FROM message_keys WHERE user = ? AND key = ?",
            [draft.user, draft.key],
        ).fetchone()
        if row is None:
            return None
        return dataclasses.replace(stored_from(draft, row[0], _time(row[1])), repeat=True)

    def _insert(
        self, stored: list[Stored], keyed: dict[tuple[str, str], Stored], micros: int
    ) -> list[str]:
        """Writes the batch's entries, their keys and what they change of the messages'
        state, in the same transaction; returns the room of each message a DELETE took."""
        assert self._writer is not None
        if not stored:
            return []
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(stored))
        values = [
            v
            for s in stored
            for v in (
                s.id,
                s.room,
                s.user,
                s.text,
                micros,
                s.kind,
                s.target_id or None,
                s.reply_to or None,
                s.removed,
            )
        ]
        insert = f"INSERT INTO messages ({INSERTED}) VALUES {rows}"
        changes = [s for s in stored if s.kind != CHAT or s.reply_to]
        if not keyed and not changes:
            self._writer.execute(insert, values)  # one statement: its own transaction
            return []
        taken: list[str] = []
        self._writer.execute("BEGIN")
        try:
            self._writer.execute(insert, values)
            if keyed:
                keys = ", ".join(["(?, ?, ?, ?)"] * len(keyed))
                key_values = [
                    v for (user, key), s in keyed.items() for v in (s.id, user, key, micros)
                ]
                self._writer.execute(
                    f"INSERT INTO message_keys (id, user, key, sent_at) VALUES {keys}", key_values
                )
            for change in changes:
                if (room := self._apply(change, micros)) is not None:
                    taken.append(room)
            self._writer.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                self._writer.execute("ROLLBACK")
            raise
        self._keys_added += len(keyed)
        return taken

    def _apply(self, entry: Stored, micros: int) -> str | None:
        """Folds an action (or a reply) into the state of the message it is about, as the
        memory store does: nothing when that is no message (CHAT) it keeps. The room of the
        message when a DELETE took it (it was not deleted yet), else None."""
        writer = self._writer
        assert writer is not None
        if entry.kind == TOPIC:
            writer.execute(
                "INSERT INTO topics (room, topic) VALUES (?, ?)"
                " ON CONFLICT (room) DO UPDATE SET topic = excluded.topic",
                [entry.room, entry.text],
            )
            return None
        id_ = entry.reply_to if entry.kind == CHAT else entry.target_id
        row = writer.execute(
            f"SELECT s.id, s.reactions, s.deleted, m.room FROM {WITH_STATE}"
            f" WHERE m.id = ? AND m.kind = {CHAT}",
            [id_],
        ).fetchone()
        if row is None:
            return None
        if entry.kind == READ:
            writer.execute(
                "INSERT INTO read_markers (user, room, read_id) VALUES (?, ?, ?)"
                " ON CONFLICT (user, room) DO UPDATE"
                " SET read_id = MAX(read_id, excluded.read_id)",
                [entry.user, entry.room, id_],
            )
            return None
        if row[0] is None:
            writer.execute("INSERT INTO states (id) VALUES (?)", [id_])
        if entry.kind == CHAT:
            writer.execute("UPDATE states SET replies = replies + 1 WHERE id = ?", [id_])
        elif entry.kind == EDIT:
            writer.execute(
                "UPDATE states SET text = ?, edited_at = ? WHERE id = ?", [entry.text, micros, id_]
            )
        elif entry.kind == DELETE:
            writer.execute(
                "UPDATE states SET text = '', deleted = 1, reactions = NULL WHERE id = ?", [id_]
            )
            writer.execute("DELETE FROM reactions WHERE id = ?", [id_])
            return None if row[2] else str(row[3])
        elif entry.kind == REACTION:
            summary = self._react(entry, id_, json.loads(row[1] or "[]"))
            if summary is not None:
                writer.execute(
                    "UPDATE states SET reactions = ? WHERE id = ?",
                    [json.dumps(summary, ensure_ascii=False) if summary else None, id_],
                )
        return None

    def _react(self, entry: Stored, id_: int, summary: Summary) -> Summary | None:
        """The message's reactions once `entry` put its emoji on or took it off; None when
        that changes nothing (the user's reaction was there already, or was not)."""
        writer = self._writer
        assert writer is not None
        emoji, user = entry.text, entry.user
        found = next((reaction for reaction in summary if reaction[0] == emoji), None)
        if not entry.removed:
            added = writer.execute(
                "INSERT OR IGNORE INTO reactions (id, emoji, user, seq) VALUES (?, ?, ?, ?)",
                [id_, emoji, user, entry.id],
            )
            if not added.rowcount:
                return None
            if found is None:
                found = [emoji, 0, []]
                summary.append(found)
            found[1] += 1
            if len(found[2]) < REACTION_USERS:
                found[2].append(user)
            return summary
        taken = writer.execute(
            "DELETE FROM reactions WHERE id = ? AND emoji = ? AND user = ?", [id_, emoji, user]
        )
        if not taken.rowcount or found is None:
            return None
        found[1] -= 1
        if not found[1]:
            summary.remove(found)
        elif user in found[2]:  # the next user in line takes its place
            found[2] = [
                first
                for (first,) in writer.execute(
                    "SELECT user FROM reactions WHERE id = ? AND emoji = ? ORDER BY seq LIMIT ?",
                    [id_, emoji, REACTION_USERS],
                )
            ]
        return summary

    def _expire_keys(self) -> None:
        """Deletes the oldest keys past the dedupe window (housekeeping: errors wait)."""
        assert self._writer is not None
        limit = max(MIN_EXPIRY, 2 * self._keys_added)
        self._keys_added = 0
        cutoff = int(datetime.now(UTC).timestamp() * 1e6) - self._dedupe_micros
        with contextlib.suppress(sqlite3.Error):
            self._writer.execute(
                "DELETE FROM message_keys WHERE sent_at < ? AND id IN"
                " (SELECT id FROM message_keys ORDER BY id LIMIT ?)",
                [cutoff, limit],
            )

    async def _checkpoint_log(self) -> None:
        """Copies the log into the database on aiosqlite's thread (this is what fsyncs).

        Commits wait meanwhile (they gather into one batch): a checkpoint that has copied the
        whole log lets the next commit start it again from the beginning, so it stays small.
        """
        try:
            await self._read("PRAGMA wal_checkpoint(PASSIVE)", [])
        except Exception:  # a checkpoint is housekeeping: the next one catches up
            pass
        finally:
            self._checkpoint = None
            if self._pending:
                self._loop.call_soon(self._commit_pending)

    def _trim(self, rooms: set[str]) -> None:
        """Deletes a room's oldest entries once it holds SLACK times its limit (amortised),
        and the state of the messages among them; the room's messages count those no more."""
        writer = self._writer
        assert writer is not None
        for room in rooms:
            if self._counts[room] > self._max_history * SLACK:
                dropped = "SELECT id FROM messages WHERE room = ? AND id <= ?"
                try:
                    (last,) = writer.execute(
                        "SELECT id FROM messages WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                        [room, self._max_history],
                    ).fetchone()
                    writer.execute("BEGIN")
                    try:
                        (messages,) = writer.execute(
                            f"SELECT COUNT(*) FROM {WITH_STATE} WHERE m.room = ? AND m.id <= ?"
                            f" AND m.kind = {CHAT} AND s.deleted IS NOT 1",
                            [room, last],
                        ).fetchone()
                        writer.execute(f"DELETE FROM states WHERE id IN ({dropped})", [room, last])
                        writer.execute(
                            f"DELETE FROM reactions WHERE id IN ({dropped})", [room, last]
                        )
                        writer.execute(
                            "DELETE FROM messages WHERE room = ? AND id <= ?", [room, last]
                        )
                        writer.execute("COMMIT")
                    except BaseException:  # rolled back whatever ended it, then raised again
                        with contextlib.suppress(sqlite3.Error):
                            writer.execute("ROLLBACK")
                        raise
                except sqlite3.Error:  # retention is best effort: they stay until next time
                    continue
                self._counts[room] = self._max_history
                self._counted(room, -messages)

    async def history(
        self, room: str | None, after_id: int = 0, limit: int = 0, *, entries: bool = False
    ) -> AsyncIterator[Stored]:
        after_id = min(after_id, MAX_ID)  # SQLite cannot even compare with a larger number
        where, args = ("m.room = ? AND m.id > ?", [room]) if room is not None else ("m.id > ?", [])
        if entries:
            query = f"SELECT {COLUMNS} FROM messages AS m WHERE {where} ORDER BY m.id LIMIT ?"
        else:
            where += f" AND m.kind = {CHAT} AND s.deleted IS NOT 1"
            query = f"SELECT {NOW} FROM {WITH_STATE} WHERE {where} ORDER BY m.id LIMIT ?"
        if limit:
            after_id = max(after_id, await self._id_before_newest(room, limit, entries))
        size = FIRST_PAGE
        while True:
            rows = await self._read(query, [*args, after_id, size])
            page = [_row_to_stored(row) for row in rows]
            del rows  # the page holds what it needs of them
            for message in page:
                yield message
            if len(page) < size:
                return
            after_id = page[-1].id
            size = next_page_size(page)

    async def _id_before_newest(self, room: str | None, limit: int, entries: bool) -> int:
        """The id just before the newest `limit` entries, or messages as `history` gives them
        without `entries` (0 when there are fewer)."""
        where, args = (["m.room = ?"], [room]) if room is not None else ([], [])
        if not entries:
            where += [f"m.kind = {CHAT}", "s.deleted IS NOT 1"]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(
            f"SELECT m.id FROM {WITH_STATE if not entries else 'messages AS m'} {clause}"
            " ORDER BY m.id DESC LIMIT 1 OFFSET ?",
            [*args, limit],
        )
        return int(rows[0][0]) if rows else 0

    async def message(self, id: int) -> Current | None:
        rows = await self._read(
            f"SELECT {NOW}, {STATE} FROM {WITH_STATE} WHERE m.id = ? AND m.kind = {CHAT}",
            [min(id, MAX_ID)],
        )
        return _rows_to_current(rows)[0] if rows else None

    async def page(
        self, room: str, *, before_id: int = 0, after_id: int = 0, limit: int, thread: int = 0
    ) -> tuple[list[Current], bool]:
        """One query on the room's index (a thread's: on the replies' index), a row more than
        the page to know whether there are more."""
        if after_id >= MAX_ID:
            return [], False
        where = f"m.room = ? AND m.kind = {CHAT}"
        args: list[object] = [room]
        if thread:  # `+`: not the room's index, which would read the whole room
            where = "+" + where
            where += " AND m.id IN (SELECT ? UNION ALL SELECT id FROM messages WHERE reply_to = ?)"
            args += [min(thread, MAX_ID)] * 2
        if after_id:
            where += " AND m.id > ? ORDER BY m.id"
            args.append(after_id)
        else:
            where += " AND m.id < ? ORDER BY m.id DESC"
            args.append(min(before_id, MAX_ID) if before_id else MAX_ID)
        rows = await self._read(
            f"SELECT {NOW}, {STATE} FROM {WITH_STATE} WHERE {where} LIMIT ?", [*args, limit + 1]
        )
        more = len(rows) > limit
        page = _rows_to_current(rows[:limit])
        if not after_id:
            page.reverse()
        return page, more

    async def keyed(self, user: str, key: str) -> tuple[int, datetime] | None:
        rows = await self._read(
            "SELECT id, sent_at FROM message_keys WHERE user = ? AND key = ?", [user, key]
        )
        return (rows[0][0], _time(rows[0][1])) if rows else None

    async def reacted(self, id: int, emoji: str, user: str) -> bool:
        rows = await self._read(
            "SELECT 1 FROM reactions WHERE id = ? AND emoji = ? AND user = ?",
            [min(id, MAX_ID), emoji, user],
        )
        return bool(rows)

    async def read_id(self, user: str, room: str) -> int:
        rows = await self._read(
            "SELECT read_id FROM read_markers WHERE user = ? AND room = ?", [user, room]
        )
        return int(rows[0][0]) if rows else 0

    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, Unread]:
        """One query for them all: each room's marker, and its messages after it read from the
        room's index, the count stopping at UNREAD_LIMIT."""
        unread = {room: Unread() for room in rooms}
        for start in range(0, len(unread), MAX_ROOMS_READ):
            names = list(unread)[start : start + MAX_ROOMS_READ]
            rows = await self._read(
                f"WITH wanted (room) AS (VALUES {', '.join(['(?)'] * len(names))})"
                " SELECT w.room, COALESCE(r.read_id, 0), (SELECT COUNT(*) FROM ("
                f"   SELECT 1 FROM {WITH_STATE} WHERE m.room = w.room"
                f"     AND m.id > COALESCE(r.read_id, 0) AND m.kind = {CHAT} AND m.user != ?"
                f"     AND s.deleted IS NOT 1 LIMIT {UNREAD_LIMIT}))"
                " FROM wanted AS w LEFT JOIN read_markers AS r ON r.user = ? AND r.room = w.room",
                [*names, user, user],
            )
            unread.update((room, Unread(read_id, count)) for room, read_id, count in rows)
        return unread

    async def summaries(self, names: Collection[str]) -> list[RoomSummary]:
        """From what the store keeps in memory: no query."""
        messages = self._messages
        return [
            RoomSummary(name, self._topics.get(name, ""), self._newest[name], messages.get(name, 0))
            for name in names
            if name in self._counts
        ]

    async def _read(self, sql: str, args: list[object]) -> list[Any]:
        """All rows of one query, run and finished in one trip to the reader's thread.

        A statement left open between trips (execute now, fetch later) holds the reader
        connection's read transaction, and a query another task runs meanwhile sees that older
        snapshot: a message stored before the query began would be missing from a replay.
        """
        return list(await self._reader.execute_fetchall(sql, args))

    async def check(self) -> None:
        if self._writer is None:
            raise StoreUnavailable("the SQLite store is closed")
        try:
            await self._read("SELECT 1", [])
        except Exception as error:
            raise StoreUnavailable(f"SQLite does not answer: {error}") from error

    async def count(self, room: str | None = None) -> int:
        return self._total if room is None else self._messages.get(room, 0)

    async def rooms(self) -> Set[str]:
        return self._counts.keys()

    async def room_count(self) -> int:
        return len(self._counts)

    async def stored_rooms(self, names: Collection[str]) -> set[str]:
        return {name for name in names if name in self._counts}

    async def take_token(self, user: str, rate: float, burst: int) -> bool:
        return self._buckets.take(user, rate, burst)

    async def close(self) -> None:
        """Commits what is pending, then closes both connections."""
        if self._writer is None:
            return
        if self._checkpoint is not None:
            await self._checkpoint
        while self._pending:
            self._commit_pending()
        self._listeners.clear()
        self._writer.close()  # the last connection out checkpoints the log
        self._writer = None
        await self._reader.close()


def _add_columns(writer: sqlite3.Connection) -> None:
    """Adds to `messages` the columns a database made by an earlier version lacks."""
    present = {row[1] for row in writer.execute("PRAGMA table_info(messages)")}
    for name, declaration in ADDED_COLUMNS.items():
        if name not in present:
            writer.execute(f"ALTER TABLE messages ADD COLUMN {name} {declaration}")
