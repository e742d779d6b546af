"""Every store keeps actions as log entries and the messages' state beside them: edits,
deletes, reactions, replies and topics; pages back through a room; the rooms' summaries."""

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from chat.model import CHAT, DELETE, EDIT, REACTION, TOPIC, Draft, Stored
from chat.store import Store, open_store
from chat.store.base import SLACK
from chat.store.redis_keys import Keys, client
from harness import RedisProcess

Open = Callable[..., Awaitable[Store]]


async def say(store: Store, text: str, room: str = "r", user: str = "ann", **kw: int) -> Stored:
    return await store.append(Draft(room, user, text, **kw))  # type: ignore[arg-type]


async def act(
    store: Store, kind: int, target: int, text: str = "", user: str = "ann", **kw: bool
) -> Stored:
    return await store.append(
        Draft("r", user, text, kind=kind, target_id=target, **kw)  # type: ignore[arg-type]
    )


async def entries(history: AsyncIterator[Stored]) -> list[tuple[int, int, str]]:
    return [(message.id, message.kind, message.text) async for message in history]


async def test_actions_are_entries_of_the_log_and_old_readers_see_messages_as_they_are_now(
    open_backend: Open,
) -> None:
    store = await open_backend()
    one, two, three = [await say(store, text) for text in ("one", "two", "three")]
    edit = await act(store, EDIT, one.id, "one, fixed")
    delete = await act(store, DELETE, two.id)
    react = await act(store, REACTION, three.id, "👍", user="bob")
    topic = await store.append(Draft("r", "ann", "about r", kind=TOPIC))
    assert [edit.id, delete.id, react.id, topic.id] == [4, 5, 6, 7]
    assert await entries(store.history("r", entries=True)) == [
        (1, CHAT, "one"),
        (2, CHAT, "two"),
        (3, CHAT, "three"),
        (4, EDIT, "one, fixed"),
        (5, DELETE, ""),
        (6, REACTION, "👍"),
        (7, TOPIC, "about r"),
    ]
    assert await entries(store.history("r")) == [(1, CHAT, "one, fixed"), (3, CHAT, "three")]
    assert await entries(store.history(None)) == [(1, CHAT, "one, fixed"), (3, CHAT, "three")]
    assert await entries(store.history("r", limit=1)) == [(3, CHAT, "three")]
    assert await entries(store.history("r", after_id=1)) == [(3, CHAT, "three")]
    assert await entries(store.history("r", after_id=3, entries=True)) == [
        (4, EDIT, "one, fixed"),
        (5, DELETE, ""),
        (6, REACTION, "👍"),
        (7, TOPIC, "about r"),
    ]
    logged = [message async for message in store.history("r", entries=True)]
    assert (logged[3].target_id, logged[4].target_id, logged[5].target_id) == (1, 2, 3)
    assert logged[5].user == "bob"


async def test_a_message_now_folds_in_its_edit_delete_reactions_and_replies(
    open_backend: Open,
) -> None:
    store = await open_backend()
    root, gone = await say(store, "root"), await say(store, "gone")
    await say(store, "answer 1", user="bob", reply_to=root.id)
    await say(store, "answer 2", user="cy", reply_to=root.id)
    edit = await act(store, EDIT, root.id, "root, fixed")
    for user in ("bob", "cy", "dee"):
        await act(store, REACTION, root.id, "👍", user=user)
    await act(store, REACTION, root.id, "🎉", user="bob")
    await act(store, REACTION, root.id, "👍", user="cy", removed=True)
    await act(store, REACTION, root.id, "🎉", user="bob", removed=True)
    await act(store, DELETE, gone.id)
    now = await store.message(root.id)
    assert now is not None
    assert now.message.text == "root, fixed"
    assert now.message.user == "ann"
    assert now.edited_at == edit.sent_at
    assert not now.deleted
    assert now.replies == 2
    assert [(r.emoji, r.count, r.users) for r in now.reactions] == [("👍", 2, ("bob", "dee"))]
    assert await store.reacted(root.id, "👍", "dee")
    assert not await store.reacted(root.id, "👍", "cy")
    assert not await store.reacted(root.id, "🎉", "bob")
    deleted = await store.message(gone.id)
    assert deleted is not None and deleted.deleted and deleted.message.text == ""
    answer = await store.message(3)
    assert answer is not None and answer.message.reply_to == root.id
    assert await store.message(edit.id) is None  # an action is not a message
    assert await store.message(10_000) is None


async def test_a_reaction_names_twenty_users_and_counts_them_all(
    open_backend: Open,
) -> None:
    store = await open_backend()
    message = await say(store, "popular")
    users = [f"u{n:02}" for n in range(25)]
    for user in users:
        await act(store, REACTION, message.id, "❤", user=user)
    now = await store.message(message.id)
    assert now is not None
    assert [(r.emoji, r.count, r.users) for r in now.reactions] == [("❤", 25, tuple(users[:20]))]


async def test_pages_go_back_and_forth_through_a_room_and_a_thread(
    open_backend: Open,
) -> None:
    store = await open_backend()
    for n in range(1, 11):
        await say(store, f"m{n}", reply_to=3 if n in (5, 8) else 0)
        await say(store, f"elsewhere {n}", room="other")
    await act(store, EDIT, 1, "m1, fixed")  # entries are not messages of a page
    await act(store, DELETE, 3)
    room = [message.id async for message in store.history("r")] + [3]
    room.sort()  # the messages of r, the deleted one too: 1, 3, 5, ..., 19

    async def ids(**kw: int) -> tuple[list[int], bool]:
        page, more = await store.page("r", **kw)
        return [now.message.id for now in page], more

    assert await ids(limit=3) == (room[-3:], True)
    assert await ids(limit=20) == (room, False)
    assert await ids(before_id=room[-3], limit=3) == (room[-6:-3], True)
    assert await ids(before_id=room[3], limit=3) == (room[:3], False)
    assert await ids(before_id=room[2], limit=3) == (room[:2], False)
    assert await ids(after_id=room[0], limit=3) == (room[1:4], True)
    assert await ids(after_id=room[-4], limit=3) == (room[-3:], False)
    assert await ids(after_id=room[-1], limit=3) == ([], False)
    assert await ids(thread=room[1], limit=10) == ([room[1], room[4], room[7]], False)
    assert await ids(thread=room[1], limit=2) == ([room[4], room[7]], True)
    page, _ = await store.page("r", limit=20)
    first, deleted = page[0], page[1]
    assert (first.message.text, first.edited_at is not None) == ("m1, fixed", True)
    assert (deleted.message.text, deleted.deleted) == ("", True)
    assert await store.page("nowhere", limit=5) == ([], False)


async def test_paging_back_through_ten_thousand_messages_gives_each_once_in_order(
    open_backend: Open,
) -> None:
    store = await open_backend()
    total = 10_000
    for start in range(0, total, 500):
        await store.append_all([Draft("r", "u", f"m{n}") for n in range(start, start + 500)])
    seen: list[int] = []
    before, more = 0, True
    while more:
        page, more = await store.page("r", before_id=before, limit=500)
        seen[:0] = [now.message.id for now in page]
        before = page[0].message.id
    assert seen == list(range(1, total + 1))


async def test_rooms_sum_up_with_their_topic_newest_id_and_messages(
    open_backend: Open,
) -> None:
    store = await open_backend()
    await say(store, "hello", room="a")
    await say(store, "hi", room="b")
    await store.append(Draft("a", "ann", "first topic", kind=TOPIC))
    topic = await store.append(Draft("a", "ann", "what a is for", kind=TOPIC))
    summaries = sorted(await store.summaries(["a", "b", "none"]), key=lambda room: room.name)
    assert [(s.name, s.topic, s.last_id, s.messages) for s in summaries] == [
        ("a", "what a is for", topic.id, 1),
        ("b", "", 2, 1),
    ]
    assert await store.summaries([]) == []


async def test_the_state_is_shared_by_every_store_on_the_same_data(
    open_backend: Open,
    request: pytest.FixtureRequest,
) -> None:
    first = await open_backend()
    message = await say(first, "hello")
    await act(first, EDIT, message.id, "hello, fixed")
    await act(first, REACTION, message.id, "👍", user="bob")
    await first.append(Draft("r", "ann", "topic", kind=TOPIC))
    # A memory store keeps its data to itself: the same one is read again.
    second = first if "memory" in request.node.name else await open_backend()
    now = await second.message(message.id)
    assert now is not None
    assert now.message.text == "hello, fixed"
    assert [(r.emoji, r.users) for r in now.reactions] == [("👍", ("bob",))]
    assert [s.topic for s in await second.summaries(["r"])] == ["topic"]


async def test_sqlite_opens_a_database_made_before_conversations_and_adds_what_it_lacks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE messages (id INTEGER PRIMARY KEY, room TEXT NOT NULL, user TEXT NOT NULL,
                               text TEXT NOT NULL, sent_at INTEGER NOT NULL);
        CREATE INDEX messages_by_room ON messages (room, id);
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('epoch', '0123456789abcdef');
        INSERT INTO messages VALUES (1, 'r', 'ann', 'from before', 1700000000000000);
        """
    )
    old.close()
    store = await open_store(f"sqlite:///{path}")
    try:
        assert store.epoch == "0123456789abcdef"
        assert (await store.count(), await store.count("r")) == (1, 1)
        await say(store, "answer", user="bob", reply_to=1)
        await act(store, EDIT, 1, "from before, fixed")
        page, more = await store.page("r", limit=10)
        assert [(now.message.id, now.message.text, now.replies) for now in page] == [
            (1, "from before, fixed", 1),
            (2, "answer", 0),
        ]
        assert not more
        assert await entries(store.history("r", entries=True)) == [
            (1, CHAT, "from before"),
            (2, CHAT, "answer"),
            (3, EDIT, "from before, fixed"),
        ]
        assert await store.count() == 2
    finally:
        await store.close()


async def test_a_thread_pages_back_to_replies_far_apart_in_a_busy_room(
    open_backend: Open,
) -> None:
    store = await open_backend()
    root = await say(store, "root")
    replies = []
    for n in range(5):
        await store.append_all([Draft("r", "u", f"busy {n}.{m}") for m in range(100)])
        replies.append((await say(store, f"answer {n}", reply_to=root.id)).id)
    page, more = await store.page("r", limit=2, thread=root.id)
    assert ([now.message.id for now in page], more) == (replies[-2:], True)
    page, more = await store.page("r", after_id=root.id, limit=2, thread=root.id)
    assert ([now.message.id for now in page], more) == (replies[:2], True)
    page, more = await store.page("r", before_id=replies[1], limit=5, thread=root.id)
    assert ([now.message.id for now in page], more) == ([root.id, replies[0]], False)
    now = await store.message(root.id)
    assert now is not None and now.replies == 5


async def test_an_action_posted_twice_with_one_key_is_one_entry_and_counts_once(
    open_backend: Open,
) -> None:
    store = await open_backend()
    message = await say(store, "hello")
    first = await store.append(
        Draft("r", "bob", "👍", key="k", kind=REACTION, target_id=message.id)
    )
    again = await store.append(
        Draft("r", "bob", "👍", key="k", kind=REACTION, target_id=message.id)
    )
    assert (again.id, again.repeat, again.kind, again.target_id) == (first.id, True, REACTION, 1)
    assert len([entry async for entry in store.history("r", entries=True)]) == 2
    now = await store.message(message.id)
    assert now is not None and [(r.emoji, r.count) for r in now.reactions] == [("👍", 1)]


async def test_a_key_tells_the_id_and_time_of_what_it_stored(
    open_backend: Open,
) -> None:
    store = await open_backend()
    message = await say(store, "one")
    reaction = await store.append(
        Draft("r", "bob", "👍", key="k1", kind=REACTION, target_id=message.id)
    )
    assert await store.keyed("bob", "k1") == (reaction.id, reaction.sent_at)
    assert await store.keyed("ann", "k1") is None
    assert await store.keyed("bob", "k2") is None


async def counts(store: Store, *rooms: str) -> tuple[int, ...]:
    """The whole store's count, then each room's, and each room's summary's."""
    summaries = {s.name: s.messages for s in await store.summaries(rooms)}
    return (
        await store.count(),
        *[await store.count(room) for room in rooms],
        *[summaries.get(room, 0) for room in rooms],
    )


async def test_counts_are_the_messages_an_old_client_reads_not_the_actions_on_them(
    open_backend: Open,
) -> None:
    store = await open_backend()
    one, two = await say(store, "one"), await say(store, "two")
    await say(store, "elsewhere", room="other")
    assert await counts(store, "r", "other") == (3, 2, 1, 2, 1)
    await act(store, REACTION, one.id, "👍", user="bob")
    await act(store, REACTION, one.id, "👍", user="bob", removed=True)
    await act(store, EDIT, one.id, "one, fixed")
    await store.append(Draft("r", "ann", "about r", kind=TOPIC))
    await say(store, "an answer", reply_to=one.id)
    assert await counts(store, "r", "other") == (4, 3, 1, 3, 1)
    await act(store, DELETE, two.id)
    await act(store, DELETE, two.id)  # the service refuses it; here it takes nothing more
    await act(store, DELETE, 10_000)  # no such message
    assert await counts(store, "r", "other") == (3, 2, 1, 2, 1)
    assert await store.count("r") == len([m async for m in store.history("r")])
    assert await store.count("nowhere") == 0


async def test_a_room_of_actions_and_deleted_messages_is_stored_and_counts_none(
    open_backend: Open,
) -> None:
    store = await open_backend()
    gone = await say(store, "gone")
    await act(store, DELETE, gone.id)
    await store.append(Draft("t", "ann", "a topic alone", kind=TOPIC))
    assert await counts(store, "r", "t") == (0, 0, 0, 0, 0)
    assert await store.stored_rooms(["r", "t", "nowhere"]) == {"r", "t"}
    assert await store.room_count() == 2
    assert [s.name for s in await store.summaries(["r", "t"])] == ["r", "t"]


async def test_counts_are_the_same_for_a_store_opened_again_on_the_data(
    open_backend: Open,
    request: pytest.FixtureRequest,
) -> None:
    first = await open_backend()
    messages = [await say(first, f"m{n}") for n in range(4)]
    await act(first, EDIT, messages[0].id, "m0, fixed")
    await act(first, REACTION, messages[1].id, "👍")
    await act(first, DELETE, messages[2].id)
    await say(first, "elsewhere", room="other")
    if "memory" in request.node.name:
        return  # a memory store keeps its data to itself
    if "sqlite" in request.node.name:
        await first.close()  # one writer at a time
    second = await open_backend()
    assert await counts(second, "r", "other") == (4, 3, 1, 3, 1)
    await act(second, DELETE, messages[3].id)
    await act(second, DELETE, messages[2].id)
    assert await counts(second, "r", "other") == (3, 2, 1, 2, 1)


async def test_counts_follow_the_trimming_of_each_room_to_its_newest_entries(
    open_backend: Open,
) -> None:
    store = await open_backend(max_history=10)
    messages = [await say(store, f"m{n}") for n in range(10)]
    for message in messages[:5]:
        await act(store, DELETE, message.id)
    for n in range(10):
        await act(store, REACTION, messages[9].id, "👍", user=f"u{n}")
    await say(store, "elsewhere", room="other")
    for n in range(30):  # each room's oldest entries go, actions and messages alike
        await say(store, f"more {n}")
        kept = [m async for m in store.history("r", entries=True)]
        assert len(kept) <= 10 * SLACK
        now = len([m async for m in store.history("r")])
        assert await counts(store, "r", "other") == (now + 1, now, 1, now, 1)
    await act(store, DELETE, messages[9].id)  # trimmed already: nothing to take
    assert await store.count("r") == len([m async for m in store.history("r")])


async def test_a_redis_written_before_the_counts_has_them_made_from_its_streams(
    redis_server: RedisProcess,
) -> None:
    url, keys = redis_server.url, Keys.for_url(redis_server.url)
    raw = client(url)
    first = await open_store(url)
    second: Store | None = None
    try:
        one, two = await say(first, "one"), await say(first, "two")
        await act(first, EDIT, one.id, "one, fixed")
        await act(first, DELETE, two.id)
        await say(first, "elsewhere", room="other")
        await raw.delete(keys.counts, keys.total)  # as an earlier version left its data
        await say(first, "unseen by the counts")
        assert await counts(first, "r", "other") == (3, 2, 1, 2, 1)  # the first count makes them
        await raw.delete(keys.counts, keys.total)
        second = await open_store(url)  # which makes them at once
        await act(second, DELETE, one.id)
        assert await counts(first, "r", "other") == (2, 1, 1, 1, 1)
    finally:
        await first.close()
        if second is not None:
            await second.close()
        await raw.aclose()
