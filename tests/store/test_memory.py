"""The memory store's own bounds: a byte budget for the whole store, figures kept as messages
come and go, and a turn for every other task before each append."""

import asyncio
from datetime import UTC, datetime

from chat.model import Draft, Stored
from chat.store.memory import MemoryStore, message_bytes

TEXT = "x" * 1000
NOW = datetime.now(UTC)


async def kept(store: MemoryStore, room: str | None = None) -> list[Stored]:
    return [message async for message in store.history(room)]


async def test_the_byte_budget_drops_the_oldest_messages_of_any_room_and_empty_rooms() -> None:
    one = message_bytes(Stored(1, "a", "ann", TEXT, NOW, key=""))
    store = MemoryStore(max_bytes=one * 50)
    await store.append(Draft("early", "ann", TEXT))  # the oldest: its room goes with it
    for number in range(200):
        await store.append(Draft(f"room-{number % 3}", "ann", TEXT))
        assert store.bytes <= one * 50
    messages = await kept(store)
    assert 40 <= len(messages) <= 50
    assert [m.id for m in messages] == list(range(202 - len(messages), 202))  # the newest
    assert await store.count() == len(messages)
    assert set(await store.rooms()) == {"room-0", "room-1", "room-2"}
    for room in ("room-0", "room-1", "room-2"):
        in_room = await kept(store, room)
        assert in_room == [m for m in messages if m.room == room]
        assert await store.count(room) == len(in_room)


async def test_a_dropped_message_s_key_is_forgotten_with_it() -> None:
    one = message_bytes(Stored(1, "a", "ann", TEXT, NOW, key="k-0"))
    store = MemoryStore(max_bytes=one * 10)
    first = await store.append(Draft("a", "ann", TEXT, key="k-0"))
    assert (await store.append(Draft("a", "ann", TEXT, key="k-0"))).repeat
    for number in range(1, 20):
        await store.append(Draft("a", "ann", TEXT, key=f"k-{number}"))
    again = await store.append(Draft("a", "ann", TEXT, key="k-0"))
    assert not again.repeat and again.id > first.id


async def test_per_room_retention_keeps_every_figure_and_the_whole_history_right() -> None:
    store = MemoryStore(max_history=10)
    for number in range(300):
        await store.append(Draft(f"room-{number % 4}", "ann", f"m{number}"))
    rooms = {f"room-{n}" for n in range(4)}
    everything = await kept(store)
    assert everything == sorted(everything, key=lambda m: m.id)
    assert await store.count() == len(everything)
    for room in rooms:
        in_room = await kept(store, room)
        assert 10 <= len(in_room) <= 11
        assert in_room == [m for m in everything if m.room == room]
    newest = [m async for m in store.history(None, limit=5)]
    assert newest == everything[-5:]
    assert store.bytes == sum(map(message_bytes, everything))


async def test_a_history_read_under_way_is_not_disturbed_by_trims() -> None:
    store = MemoryStore(max_history=5)
    for number in range(20):
        await store.append(Draft("a", "ann", f"m{number}"))
    read = store.history("a")
    first = await anext(read)
    for number in range(20, 40):
        await store.append(Draft("a", "ann", f"m{number}"))
    rest = [message.id async for message in read]
    assert rest == list(range(first.id + 1, first.id + 1 + len(rest)))


async def test_an_append_lets_every_other_ready_task_run_first() -> None:
    store = MemoryStore()
    others_ran = asyncio.Event()

    async def other() -> None:
        others_ran.set()

    task = asyncio.create_task(other())
    await store.append(Draft("a", "ann", "hi"))
    assert others_ran.is_set()
    await task
