"""The memory store's own bounds: a byte budget for the whole store, and figures kept as
messages come and go."""

from datetime import UTC, datetime

from chat.model import Draft, Stored
from chat.store.memory import MemoryStore, message_bytes

TEXT = "x" * 1000
NOW = datetime.now(UTC)


async def kept(store: MemoryStore, room: str | None = None) -> list[Stored]:
    return [message async for message in store.history(room)]


async def test_the_byte_budget_cuts_the_rooms_that_hold_most_and_keeps_the_newest() -> None:
    one = message_bytes(Stored(1, "a", "ann", TEXT, NOW))
    store = MemoryStore(max_bytes=one * 50)
    quiet = [await store.append(Draft("quiet", "ann", TEXT)) for _ in range(5)]
    for number in range(300):
        await store.append(Draft(f"loud-{number % 2}", "bob", TEXT))
        assert store.bytes <= one * 50
    messages = await kept(store)
    assert await kept(store, "quiet") == quiet  # a flood elsewhere evicts its own history
    for room in ("loud-0", "loud-1"):
        in_room = await kept(store, room)
        assert 15 <= len(in_room) <= 25
        assert [m.id for m in in_room] == list(range(in_room[0].id, 306, 2))  # the newest
        assert await store.count(room) == len(in_room)
    assert messages == sorted(
        await kept(store, "quiet") + await kept(store, "loud-0") + await kept(store, "loud-1"),
        key=lambda m: m.id,
    )
    assert await store.count() == len(messages)
    assert store.bytes == sum(map(message_bytes, messages))


async def test_a_room_the_byte_budget_empties_is_gone() -> None:
    one = message_bytes(Stored(1, "a", "ann", TEXT, NOW))
    store = MemoryStore(max_bytes=one * 10)
    for number in range(100):
        await store.append(Draft(f"room-{number}", "ann", TEXT))
    assert 8 <= len(await store.rooms()) <= 10
    assert set(await store.rooms()) == {m.room for m in await kept(store)}
    assert [m.room for m in await kept(store)][-1] == "room-99"


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
