"""Every store keeps each user's read marker per room as READ entries move it, only forward,
and counts what the user has not read: others' messages after the marker, deleted ones not."""

from collections.abc import Awaitable, Callable

import pytest

from chat.model import CHAT, DELETE, READ, Draft, Stored, Unread
from chat.store import Store
from chat.store.base import UNREAD_LIMIT

Open = Callable[..., Awaitable[Store]]


async def say(store: Store, text: str, user: str = "ann", room: str = "r") -> Stored:
    return await store.append(Draft(room, user, text))


async def read(store: Store, target: int, user: str = "ann", room: str = "r") -> Stored:
    return await store.append(Draft(room, user, "", kind=READ, target_id=target))


async def test_a_read_is_an_entry_that_moves_its_readers_marker_forward_only(
    open_backend: Open,
) -> None:
    store = await open_backend()
    one, two, three = [await say(store, text, user="bob") for text in ("one", "two", "three")]
    assert await store.read_id("ann", "r") == 0
    marked = await read(store, two.id)
    assert (marked.kind, marked.target_id, marked.user) == (READ, two.id, "ann")
    assert await store.read_id("ann", "r") == two.id
    await read(store, one.id)  # behind the marker: logged, but the marker stays
    assert await store.read_id("ann", "r") == two.id
    assert await store.read_id("bob", "r") == 0
    assert await store.read_id("ann", "elsewhere") == 0
    entries = [(entry.kind, entry.user) async for entry in store.history("r", entries=True)]
    assert entries[-2:] == [(READ, "ann"), (READ, "ann")]
    messages = [message.id async for message in store.history("r")]
    assert messages == [one.id, two.id, three.id]
    assert await store.count("r") == 3
    assert [summary.messages for summary in await store.summaries(["r"])] == [3]
    assert await store.message(marked.id) is None


async def test_unread_counts_others_messages_after_the_marker_but_not_deleted_ones(
    open_backend: Open,
) -> None:
    store = await open_backend()
    first = await say(store, "hi", user="bob")
    await say(store, "mine", user="ann")
    gone = await say(store, "oops", user="bob")
    await say(store, "hello", user="cy")
    await say(store, "elsewhere", user="bob", room="s")
    assert await store.unread("ann", ["r", "s", "none"]) == {
        "r": Unread(0, 3),
        "s": Unread(0, 1),
        "none": Unread(0, 0),
    }
    await read(store, first.id)
    await store.append(Draft("r", "bob", "", kind=DELETE, target_id=gone.id))
    assert await store.unread("ann", ["r"]) == {"r": Unread(first.id, 1)}
    assert await store.unread("bob", ["r"]) == {"r": Unread(0, 2)}
    last = [entry async for entry in store.history("r") if entry.kind == CHAT][-1]
    await read(store, last.id)
    assert await store.unread("ann", ["r", "s"]) == {
        "r": Unread(last.id, 0),
        "s": Unread(0, 1),
    }


async def test_markers_are_shared_by_every_store_on_the_same_data_and_survive_reopening(
    open_backend: Open, request: pytest.FixtureRequest
) -> None:
    first = await open_backend()
    one, two = [await say(first, text, user="bob") for text in ("one", "two")]
    await read(first, one.id)
    if "memory" in request.node.name:
        return  # a memory store keeps its data to itself
    if "sqlite" in request.node.name:
        await first.close()  # one writer at a time
    second = await open_backend()
    assert await second.unread("ann", ["r"]) == {"r": Unread(one.id, 1)}
    await read(second, two.id)
    assert await second.read_id("ann", "r") == two.id


async def test_an_unread_count_stops_at_its_limit(open_backend: Open) -> None:
    store = await open_backend()
    drafts = [Draft("r", "bob", f"m{n}") for n in range(UNREAD_LIMIT + 5)]
    await store.append_all(drafts)
    assert await store.unread("ann", ["r"]) == {"r": Unread(0, UNREAD_LIMIT)}
