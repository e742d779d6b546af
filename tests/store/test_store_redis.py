"""The Redis store shared by replicas: one id sequence, one order, and recovery after Redis dies."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from test_store import Recorder

from chat.contract import Kind
from chat.errors import StoreUnavailable
from chat.model import Draft, Stored
from chat.store.redis import RedisStore
from harness import RedisProcess, free_port


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[list[RedisStore]]:
    """Two stores on one redis-server or one cluster, as two server replicas would have."""
    stores = [await RedisStore.open(redis_url) for _ in range(2)]
    yield stores
    for store in stores:
        await store.close()


async def test_replicas_posting_at_once_share_one_id_sequence_and_one_order(
    replicas: list[RedisStore],
) -> None:
    recorders = [Recorder(), Recorder()]
    for store, recorder in zip(replicas, recorders, strict=True):
        store.listen(recorder)
    overtaken: list[int] = []

    async def post(store: RedisStore, recorder: Recorder, number: int) -> int:
        stored = await store.append(Draft(f"room{number % 3}", "u", str(number), origin=number))
        if stored.id not in {message.id for message in recorder.messages}:
            overtaken.append(stored.id)  # acknowledged before its own replica delivered it
        return stored.id

    ids = await asyncio.gather(*(post(replicas[n % 2], recorders[n % 2], n) for n in range(400)))
    assert sorted(ids) == list(range(1, 401))
    assert overtaken == []
    heard = [await recorder.wait_for(400) for recorder in recorders]
    assert [m.id for m in heard[0]] == [m.id for m in heard[1]] == list(range(1, 401))
    for replica, messages in enumerate(heard):
        # The origin (the posting stream) is known only on the replica that posted.
        assert {m.id for m in messages if m.origin} == {
            id_ for n, id_ in enumerate(ids) if n % 2 == replica and n
        }


async def test_history_and_counts_are_the_same_seen_from_either_replica(
    replicas: list[RedisStore],
) -> None:
    first, second = replicas
    await first.append(Draft("a", "ann", "from the first"))
    await second.append(Draft("a", "bob", "from the second"))
    for store in replicas:
        assert [m.text async for m in store.history("a")] == ["from the first", "from the second"]
        assert (await store.count(), await store.rooms()) == (2, {"a"})


@pytest.fixture
async def heard(redis_server: RedisProcess) -> AsyncIterator[tuple[RedisStore, Recorder]]:
    """One store on the test's redis-server, and a recorder of what its listener hears."""
    store = await RedisStore.open(redis_server.url)
    recorder = Recorder()
    store.listen(recorder)
    yield store, recorder
    await store.close()


async def test_redis_going_away_fails_appends_and_recovery_needs_no_restart(
    redis_server: RedisProcess, heard: tuple[RedisStore, Recorder]
) -> None:
    store, recorder = heard
    epoch = store.epoch
    assert (await store.append(Draft("r", "u", "before"))).id == 1
    redis_server.stop()
    with pytest.raises(StoreUnavailable):
        await store.append(Draft("r", "u", "while away"))
    with pytest.raises(StoreUnavailable):
        await store.check()
    await recorder.wait_for_loss()
    redis_server.start()  # returns once it accepts connections
    await store.check()
    after = await store.append(Draft("r", "u", "after"))
    assert after.id == 2  # the append-only file kept the id sequence
    messages = await recorder.wait_for(2)
    assert [m.text for m in messages] == ["before", "after"]
    assert len(recorder.losses) == 1
    assert store.epoch == epoch  # the same history: resuming clients skip what they saw


async def test_a_redis_url_nobody_answers_at_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="does not answer"):
        await RedisStore.open(f"redis://127.0.0.1:{free_port()}/0")


async def test_a_redis_that_comes_back_empty_is_followed_anew(
    redis_server: RedisProcess, heard: tuple[RedisStore, Recorder]
) -> None:
    store, recorder = heard
    epoch = store.epoch
    for text in ("one", "two", "three"):
        await store.append(Draft("r", "u", text))
    redis_server.stop()
    redis_server.wipe()
    await recorder.wait_for_loss()
    redis_server.start()
    await store.check()
    again = await store.append(Draft("r", "u", "after the loss"))
    assert again.id == 1
    messages = await recorder.wait_for(4)
    assert [m.text for m in messages] == ["one", "two", "three", "after the loss"]
    assert store.epoch != epoch  # a resuming client is shown the new history from its start


async def test_one_key_posted_on_two_replicas_at_once_is_stored_once(
    replicas: list[RedisStore],
) -> None:
    posts = [
        replica.append(Draft("r", "ann", "once", origin=n, key="k"))
        for n in range(10)
        for replica in replicas
    ]
    results = await asyncio.gather(*posts)
    assert len({(m.id, m.sent_at) for m in results}) == 1
    assert sum(not m.repeat for m in results) == 1
    assert await replicas[0].count() == 1
    assert replicas[0].epoch == replicas[1].epoch


async def test_ids_going_backwards_after_redis_lost_its_data_are_delivered_in_order(
    volatile_redis: RedisProcess,
) -> None:
    """Redis without persistence, killed with appends in flight: each of those is ACKed or
    refused, and after its return the ids start at 1 again under a new epoch, every ACK after
    its replica's listener heard the message."""
    store = await RedisStore.open(volatile_redis.url)
    recorder = Recorder()
    store.listen(recorder)
    try:
        epoch = store.epoch
        for number in range(5):
            await store.append(Draft("r", "u", f"old {number}"))
        in_flight = [
            asyncio.create_task(store.append(Draft("r", "u", "racing"))) for _ in range(50)
        ]
        volatile_redis.stop()  # SIGKILL: what it held is gone
        for outcome in await asyncio.gather(*in_flight, return_exceptions=True):
            assert isinstance(outcome, Stored | StoreUnavailable), repr(outcome)
        await recorder.wait_for_loss()
        volatile_redis.start()
        await store.check()
        heard_before = len(recorder.messages)
        overtaken: list[int] = []

        async def post(number: int) -> int:
            stored = await store.append(Draft("r", "u", f"new {number}"))
            if stored.id not in {m.id for m in recorder.messages[heard_before:]}:
                overtaken.append(stored.id)  # acknowledged before its replica delivered it
            return stored.id

        ids = await asyncio.gather(*(post(number) for number in range(40)))
        assert sorted(ids) == list(range(1, 41))
        assert overtaken == []
        assert store.epoch != epoch
        heard = await recorder.wait_for(heard_before + 40)
        assert [m.id for m in heard[heard_before:]] == list(range(1, 41))
    finally:
        await store.close()


class Moves:
    """A presence watcher that keeps the JOIN and LEAVE it hears, and wakes waiters."""

    def __init__(self) -> None:
        self.heard: list[tuple[int, str, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, kind: int, room: str, user: str, stream: int) -> None:
        self.heard.append((kind, room, user))
        self.changed.set()

    async def until(self, done: Callable[[list[tuple[int, str, str]]], bool]) -> None:
        async with asyncio.timeout(10):
            while not done(self.heard):
                self.changed.clear()
                await self.changed.wait()


async def test_one_join_for_a_user_on_two_replicas_and_one_leave_heard_by_both(
    replicas: list[RedisStore],
) -> None:
    moves = [Moves(), Moves()]
    for store, watcher in zip(replicas, moves, strict=True):
        store.presence.watch(watcher)
    for stream, store in enumerate(replicas, start=1):
        store.presence.opened(stream)
        store.presence.entered("r", "ann", stream)
    for store in replicas:
        assert await store.presence.online("r") == ["ann"]
    first, second = (store.presence for store in replicas)
    assert (await first.connected(), await second.connected("r")) == (2, 2)
    for stream, store in enumerate(replicas, start=1):
        store.presence.left("r", "ann", stream)
        store.presence.closed(stream)
    for watcher in moves:
        await watcher.until(lambda heard: len(heard) == 2)
        assert watcher.heard == [(Kind.JOIN, "r", "ann"), (Kind.LEAVE, "r", "ann")]
    assert await replicas[1].presence.online() == []


async def test_presence_changed_while_redis_was_away_is_sent_when_it_returns(
    redis_server: RedisProcess,
) -> None:
    store = await RedisStore.open(redis_server.url, presence_interval=0.2, presence_timeout=1)
    moves = Moves()
    store.presence.watch(moves)
    try:
        store.presence.opened(1)
        store.presence.entered("r", "ann", 1)
        await moves.until(lambda heard: heard == [(Kind.JOIN, "r", "ann")])
        redis_server.stop()
        store.presence.left("r", "ann", 1)  # not sent: Redis is away
        store.presence.closed(1)
        redis_server.start()  # with its data: ann is still online there
        await moves.until(lambda heard: heard[1:] == [(Kind.LEAVE, "r", "ann")])
        assert (await store.presence.online(), await store.presence.connected()) == ([], 0)
    finally:
        await store.close()
