"""Every store keeps the same promises: ids, order, filters, counts, listeners, retention,
epochs and message keys."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chat.errors import StoreUnavailable
from chat.model import Draft, Stored
from chat.store import PAGE_SIZE, Store, open_store
from chat.store.base import FIRST_PAGE, PAGE_BYTES, SLACK, next_page_size
from chat.store.memory import MemoryStore
from chat.store.sqlite import CHECKPOINT_EVERY, SqliteStore

Open = Callable[..., Awaitable[Store]]


class Recorder:
    """A listener that keeps what it hears, and wakes waiters on each message."""

    def __init__(self) -> None:
        self.messages: list[Stored] = []
        self.losses: list[StoreUnavailable] = []
        self.changed = asyncio.Event()

    def stored(self, message: Stored) -> None:
        self.messages.append(message)
        self.changed.set()

    def lost(self, error: StoreUnavailable) -> None:
        self.losses.append(error)
        self.changed.set()

    async def wait_for(self, count: int) -> list[Stored]:
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.messages

    async def wait_for_loss(self) -> None:
        async with asyncio.timeout(10):
            while not self.losses:
                self.changed.clear()
                await self.changed.wait()


async def texts(history: AsyncIterator[Stored]) -> list[str]:
    return [message.text async for message in history]


async def test_ids_start_at_1_and_history_filters_resumes_and_keeps_the_newest(
    open_backend: Open,
) -> None:
    store = await open_backend()
    stored = [
        await store.append(Draft("odd" if n % 2 else "even", "ann", f"m{n}")) for n in range(1, 8)
    ]
    assert [m.id for m in stored] == list(range(1, 8))
    assert all(m.sent_at.tzinfo is not None for m in stored)
    assert await texts(store.history(None)) == [f"m{n}" for n in range(1, 8)]
    assert await texts(store.history("odd")) == ["m1", "m3", "m5", "m7"]
    assert await texts(store.history(None, after_id=5)) == ["m6", "m7"]
    assert await texts(store.history("odd", limit=2)) == ["m5", "m7"]
    assert await texts(store.history("even", after_id=2, limit=5)) == ["m4", "m6"]
    assert await texts(store.history("nowhere")) == []
    assert (await store.count(), await store.count("odd"), await store.count("none")) == (7, 4, 0)
    assert await store.rooms() == {"odd", "even"}
    assert await store.room_count() == 2
    assert await store.stored_rooms(["odd", "none", "even"]) == {"odd", "even"}
    assert await store.stored_rooms([]) == set()
    await store.check()


async def test_history_longer_than_a_page_comes_whole_and_in_order(open_backend: Open) -> None:
    store = await open_backend()
    total = PAGE_SIZE * 2 + 7
    await asyncio.gather(*(store.append(Draft("r", "u", str(n))) for n in range(total)))
    ids = [message.id async for message in store.history("r")]
    assert ids == list(range(1, total + 1))


async def test_a_history_of_short_and_long_messages_comes_whole_in_pages_of_bounded_text(
    open_backend: Open,
) -> None:
    store = await open_backend()
    texts = ["s"] * 40 + ["L" * 8000] * 90 + ["s"] * (PAGE_SIZE + 3) + ["L" * 8000] * 5
    for text in texts:  # one at a time: the ids follow the list
        await store.append(Draft("r", "u", text))
    read = [message async for message in store.history("r")]
    assert [message.id for message in read] == list(range(1, len(texts) + 1))
    assert [message.text for message in read] == texts


def test_a_page_after_long_messages_holds_about_a_page_of_text_and_short_ones_fill_it() -> None:
    def page(text: str, rows: int) -> list[Stored]:
        return [Stored(n, "r", "u", text, datetime.now(UTC)) for n in range(rows)]

    after_long = next_page_size(page("L" * 8000, FIRST_PAGE))
    assert after_long * 8000 <= PAGE_BYTES
    assert after_long >= FIRST_PAGE
    assert next_page_size(page("s", FIRST_PAGE)) == PAGE_SIZE
    assert next_page_size([]) == PAGE_SIZE


@pytest.mark.parametrize("limit", [1, PAGE_SIZE, PAGE_SIZE + 1, PAGE_SIZE * 2 + 6, 2**32 - 1])
async def test_the_newest_n_of_a_history_longer_than_a_page_come_in_order(
    open_backend: Open, limit: int
) -> None:
    store = await open_backend()
    total = PAGE_SIZE * 2 + 7
    await asyncio.gather(*(store.append(Draft("r", "u", str(n))) for n in range(total)))
    ids = [message.id async for message in store.history("r", limit=limit)]
    assert ids == list(range(max(1, total - limit + 1), total + 1))


async def test_the_listener_hears_every_commit_in_id_order(open_backend: Open) -> None:
    store = await open_backend()
    recorder = Recorder()
    store.listen(recorder)
    acked = await asyncio.gather(
        *(store.append(Draft(f"room{n % 3}", "u", str(n), origin=n)) for n in range(300))
    )
    heard = await recorder.wait_for(300)
    assert [m.id for m in heard] == sorted(m.id for m in acked) == list(range(1, 301))
    assert {(m.id, m.origin) for m in heard} == {(m.id, m.origin) for m in acked}


async def test_drafts_stored_together_keep_their_order_and_their_repeats(
    open_backend: Open,
) -> None:
    store = await open_backend()
    recorder = Recorder()
    store.listen(recorder)
    first = await store.append(Draft("r", "ann", "keyed", origin=1, key="k1"))
    drafts = [
        Draft("r", "ann", "a", origin=1),
        Draft("s", "bob", "b", origin=2),
        Draft("r", "ann", "keyed", origin=1, key="k1"),
        Draft("r", "ann", "c", origin=1, key="k2"),
    ]
    results = await store.append_all(drafts)
    assert [(m.id, m.repeat) for m in results] == [
        (first.id + 1, False),
        (first.id + 2, False),
        (first.id, True),
        (first.id + 3, False),
    ]
    assert [m.origin for m in results] == [1, 2, 1, 1]
    heard = await recorder.wait_for(4)
    assert [(m.id, m.text) for m in heard] == [
        (first.id, "keyed"),
        (first.id + 1, "a"),
        (first.id + 2, "b"),
        (first.id + 3, "c"),
    ]
    assert await texts(store.history(None)) == ["keyed", "a", "b", "c"]


async def test_max_history_keeps_about_the_newest_per_room(open_backend: Open) -> None:
    store = await open_backend(max_history=10)
    for n in range(300):
        await store.append(Draft("busy", "u", str(n)))
    await store.append(Draft("quiet", "u", "only"))
    kept = [int(text) async for text in _texts_of(store, "busy")]
    assert 10 <= len(kept) <= 10 * SLACK  # "about": every store trims in steps of 10%
    assert kept == list(range(300 - len(kept), 300))
    assert await texts(store.history("quiet")) == ["only"]


async def _texts_of(store: Store, room: str) -> AsyncIterator[str]:
    async for message in store.history(room):
        yield message.text


async def test_sqlite_keeps_messages_and_ids_across_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    store = await open_store(url)
    await asyncio.gather(*(store.append(Draft("r", "u", str(n))) for n in range(1000)))
    await store.close()
    again = await open_store(url)
    try:
        assert await again.count() == 1000
        assert (await again.append(Draft("r", "u", "next"))).id == 1001
    finally:
        await again.close()


async def test_sqlite_checkpoints_keep_the_write_ahead_log_small(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        for n in range(2000):  # one transaction each: about 17 MB of log without checkpoints
            await store.append(Draft("r", "u", f"message {n:05}" * 4))
        assert path.with_name("chat.db-wal").stat().st_size < 4 * 1024 * 1024
        assert [m.id async for m in store.history("r")] == list(range(1, 2001))
    finally:
        await store.close()


async def test_sqlite_cuts_its_log_back_after_a_burst_once_a_checkpoint_copied_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    log = path.with_name("chat.db-wal")
    store = await SqliteStore.open(str(path), wal_kept_bytes=1024 * 1024)
    try:
        # One transaction of a thousand 8 KB texts: an 8 MB log.
        await asyncio.gather(*(store.append(Draft("r", "u", "x" * 8000)) for _ in range(1000)))
        assert log.stat().st_size > 4 * 1024 * 1024
        for n in range(2 * CHECKPOINT_EVERY):  # a checkpoint, then commits that restart the log
            await store.append(Draft("r", "u", f"small {n}"))
        assert log.stat().st_size <= 1024 * 1024
        assert await store.count("r") == 1000 + 2 * CHECKPOINT_EVERY
    finally:
        await store.close()


async def test_history_after_the_largest_id_on_the_wire_is_empty(open_backend: Open) -> None:
    store = await open_backend()
    await store.append(Draft("r", "u", "only"))
    for after_id in (2**63 - 1, 2**63, 2**64 - 1):  # beyond SQLite's INTEGER from 2**63 on
        assert await texts(store.history("r", after_id)) == []
        assert await texts(store.history(None, after_id, limit=5)) == []


async def test_a_history_read_sees_every_message_stored_before_it_began(
    open_backend: Open,
) -> None:
    """The seam between a replay and live delivery rests on this, with many readers at once
    (as when every client resumes after a restart)."""
    store = await open_backend()

    async def write_then_read(writer: int) -> list[int]:
        missed = []
        for number in range(20):
            stored = await store.append(Draft("seam", f"w{writer}", str(number)))
            seen = [m.id async for m in store.history("seam", stored.id - 1)]
            if not seen or seen[0] != stored.id:
                missed.append(stored.id)
        return missed

    missed = await asyncio.gather(*(write_then_read(n) for n in range(40)))
    assert not [id for ids in missed for id in ids], "a reader saw an older snapshot"


async def test_a_history_has_an_epoch_that_every_store_on_its_data_shares(
    open_backend: Open,
) -> None:
    first = await open_backend()
    await first.append(Draft("r", "u", "m"))
    second = await open_backend()
    assert len(first.epoch) == 16 and int(first.epoch, 16) >= 0
    if isinstance(first, MemoryStore):  # a memory store's history is its own
        assert second.epoch != first.epoch
    else:
        assert second.epoch == first.epoch


async def test_a_key_posted_twice_is_stored_once_and_repeats_the_first_id_and_time(
    open_backend: Open,
) -> None:
    store = await open_backend()
    recorder = Recorder()
    store.listen(recorder)
    first = await store.append(Draft("r", "ann", "hello", origin=1, key="k1"))
    again = await store.append(Draft("r", "ann", "hello", origin=2, key="k1"))
    assert (first.repeat, again.repeat) == (False, True)
    assert (again.id, again.sent_at, again.key, again.origin) == (first.id, first.sent_at, "k1", 2)
    after = await store.append(Draft("r", "ann", "next", key="k2"))
    assert after.id == first.id + 1
    assert [m.id for m in await recorder.wait_for(2)] == [first.id, after.id]
    assert await texts(store.history("r")) == ["hello", "next"]


async def test_keys_belong_to_their_user(open_backend: Open) -> None:
    store = await open_backend()
    ann = await store.append(Draft("r", "ann", "hi", key="same"))
    bob = await store.append(Draft("r", "bob", "hi", key="same"))
    assert not bob.repeat and bob.id == ann.id + 1
    unkeyed = [await store.append(Draft("r", "ann", "hi")) for _ in range(2)]
    assert not any(m.repeat for m in unkeyed)
    assert await store.count("r") == 4


async def test_one_key_posted_many_times_at_once_is_stored_once(open_backend: Open) -> None:
    store = await open_backend()
    results = await asyncio.gather(
        *(store.append(Draft("r", "ann", "once", origin=n, key="k")) for n in range(20)),
        *(store.append(Draft("r", "ann", f"other {n}", key=f"o{n}")) for n in range(20)),
    )
    keyed = results[:20]
    assert len({(m.id, m.sent_at) for m in keyed}) == 1
    assert sum(not m.repeat for m in keyed) == 1
    stored = await texts(store.history("r"))
    assert sorted(stored) == sorted(["once"] + [f"other {n}" for n in range(20)])


async def test_sqlite_remembers_keys_across_a_reopen_for_the_dedupe_window(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    store = await open_store(url)
    first = await store.append(Draft("r", "ann", "hi", key="k"))
    await store.close()
    again = await open_store(url)
    try:
        repeat = await again.append(Draft("r", "ann", "hi", key="k"))
        assert repeat.repeat and (repeat.id, repeat.sent_at) == (first.id, first.sent_at)
    finally:
        await again.close()
    expired = await open_store(url, dedupe_window=0)  # opening deletes keys past the window
    try:
        assert not (await expired.append(Draft("r", "ann", "hi", key="k"))).repeat
    finally:
        await expired.close()
