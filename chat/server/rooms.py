"""Live fan-out: who is in which room, and a bounded queue per listener.

`Rooms` is the store's listener: every committed message is encoded once and queued for each
subscriber of its room, and its ACK for the stream that posted it, in the same id order. A
subscriber that falls `capacity` messages behind is ended, so neither the room nor the server's
memory ever waits or grows for it.
"""

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Set

from chat.contract import Kind
from chat.errors import SlowConsumer, StoreUnavailable
from chat.model import Stored
from chat.server.encoding.base import Encoding
from chat.server.http2.base import grpc_message

Delivery = tuple[int, bytes]
"""An encoded MessageReply and the stored id a history replay may also show (0: none)."""
Sink = Callable[[bytes], bool]
"""Writes one gRPC message to a stream at once; False when it would have to wait."""


class Subscriber:
    """One live listener: a bounded queue between the rooms and the stream that drains it."""

    def __init__(
        self, id: int, user: str | None, capacity: int, on_cut_off: Callable[[], None]
    ) -> None:
        self.id = id
        self.user = user  # None: a history follower, which is not shown as online
        self.reads: Callable[[str], bool] | None = None  # the rooms it may see; None: all
        self.rooms: set[str] = set()
        self.last_id = 0  # the newest stored id handed to the stream
        self.replayed = 0  # the newest id a history replay sent: the queue may repeat it
        self.live = asyncio.Event()  # the replay (if any) is sent: requests may be read now
        self.sink: Sink | None = None
        """Set once the stream is live on a transport that can write at once: a delivery
        that finds the queue empty is written straight to the stream, with no wake-up of its
        sending task (the queue is for when the stream cannot take it now)."""
        self._loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[Exception] = self._loop.create_future()
        self._capacity = capacity
        self._on_cut_off = on_cut_off
        self._queue: list[Delivery] = []  # a list: an idle stream's empty deque costs 600 B
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._finished = False

    def deliver(self, id: int, data: bytes, message: bytes) -> None:
        """Hands a room's message to the stream (`data` encoded, `message` that as a gRPC
        message): written at once when nothing is queued before it and the stream can take
        it, queued (`push`) otherwise."""
        if (
            self.sink is not None
            and not self._queue
            and id > self.replayed
            and not self._finished
            and not self.ended.done()
            and self._sink_took(self.sink, message)
        ):
            self.last_id = id
            return
        self.push(id, data)

    @staticmethod
    def _sink_took(sink: Sink, message: bytes) -> bool:
        """Whether the sink wrote the message. The rooms call it for every listener in turn,
        from whichever task stored the message: a stream whose connection broke must not
        break delivery to the others, so its failure leaves the message to the queue (and
        the stream's own task finds the connection gone)."""
        try:
            return sink(message)
        except Exception:
            return False

    def push(self, id: int, data: bytes, *, own: bool = False) -> None:
        """Queues a reply; ends the subscriber instead when its queue is full.

        `own`: a reply to the stream's own request, queued even when full, since its request
        waited for space (`room_to_spare`) and one stream has one request in hand at a time.
        """
        if self._finished or self.ended.done():
            return
        if len(self._queue) >= self._capacity and not own:
            self.end(SlowConsumer(self.last_id, self._capacity))
            self._on_cut_off()
            return
        self._queue.append((id, data))
        self._wake()

    def acknowledge(self, data: bytes) -> None:
        """Queues the ACK of the stream's own message, in id order with the room's messages.

        Never cut off for it: the stream then waits in `room_to_spare` before it reads its
        next request, so the queue overshoots by one ACK at most.
        """
        if not self._finished and not self.ended.done():
            self._queue.append((0, data))  # 0: never mistaken for a replayed message
            # No wake-up: the stream's receiving side sends it right after the append, or
            # whoever is sending takes it with the next batch.

    async def put(self, id: int, data: bytes) -> None:
        """Queues a reply to the stream's own request, waiting while the queue is full."""
        await self.room_to_spare()
        self.push(id, data, own=True)

    async def room_to_spare(self) -> None:
        """Waits while the queue is full: a client that sends faster than it reads its
        replies is slowed down (through flow control), not cut off."""
        while len(self._queue) >= self._capacity and not self.ended.done():
            self._space = self._loop.create_future()
            try:
                await self._space
            finally:
                self._space = None

    def end(self, error: Exception) -> None:
        """Stops delivery now, dropping what is queued; `ended` tells the stream why."""
        if not self.ended.done():
            self.ended.set_result(error)
            self._queue.clear()
            self._wake()
            self._make_space()

    def finish(self) -> None:
        """No more replies will be pushed: `batch` drains what is queued, then returns []."""
        self._finished = True
        self._wake()

    async def batch(self) -> list[Delivery]:
        """What `take` gives, waiting for at least one; [] once finished or ended."""
        while not (items := self.take()):
            if self._finished or self.ended.done():
                return []
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return items

    def take(self) -> list[Delivery]:
        """Everything queued right now, maybe nothing, without waiting; only what a replayed
        history did not already show."""
        queue = self._queue
        if not queue:
            return []
        items = [item for item in queue if not item[0] or item[0] > self.replayed]
        self.last_id = max(self.last_id, *(id for id, _ in queue))
        queue.clear()
        self._make_space()
        return items

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _make_space(self) -> None:
        if self._space is not None and not self._space.done():
            self._space.set_result(None)


class Rooms:
    """Room membership, presence and delivery; the store calls `stored` in id order."""

    def __init__(self, capacity: int, encoding: Encoding) -> None:
        self.cut_off = 0  # subscribers ended for falling behind, since the start
        self._capacity = capacity
        self._encoding = encoding
        self._ids = itertools.count(1)
        self._subscribers: dict[int, Subscriber] = {}
        self._members: dict[str, set[Subscriber]] = {}
        self._everywhere: set[Subscriber] = set()
        self._online: dict[str, Counter[str]] = {}

    @contextlib.contextmanager
    def subscribe(self, user: str | None) -> Iterator[Subscriber]:
        """A new subscriber in no room yet; leaving the block takes it out of every room."""
        subscriber = Subscriber(next(self._ids), user, self._capacity, self._count_cut_off)
        self._subscribers[subscriber.id] = subscriber
        try:
            yield subscriber
        finally:
            self._remove(subscriber)

    def join(self, subscriber: Subscriber, room: str) -> None:
        """Delivers `room` to the subscriber from now on; JOIN when a user's first stream enters."""
        if room in subscriber.rooms:
            return
        subscriber.rooms.add(room)
        self._members.setdefault(room, set()).add(subscriber)
        if subscriber.user is None:
            return
        online = self._online.setdefault(room, Counter())
        online[subscriber.user] += 1
        if online[subscriber.user] == 1:
            self._announce(room, Kind.JOIN, subscriber)

    def follow_everything(
        self, subscriber: Subscriber, reads: Callable[[str], bool] | None = None
    ) -> None:
        """Delivers every room's messages to the subscriber (GetMessages without a room), or
        those of the rooms `reads` allows."""
        subscriber.reads = reads
        self._everywhere.add(subscriber)

    def stored(self, message: Stored) -> None:
        """Queues the message for its room and the ACK for its sender, in the same id order."""
        data = framed = b""  # encoded once, and only when someone besides the sender listens
        for subscriber in itertools.chain(self._members.get(message.room, ()), self._everywhere):
            if subscriber.id != message.origin:
                if subscriber.reads is not None and not subscriber.reads(message.room):
                    continue
                if not data:
                    data = self._encoding.chat(message)
                    framed = grpc_message(data)
                subscriber.deliver(message.id, data, framed)
        sender = self._subscribers.get(message.origin)
        if sender is not None:
            sender.acknowledge(self._encoding.ack(message))

    def lost(self, error: StoreUnavailable) -> None:
        self.end_all(error)

    def end_all(self, error: Exception) -> None:
        """Ends every subscriber with `error` (shutdown, or the store's live feed broke)."""
        for subscriber in self._subscribers.values():
            subscriber.end(error)

    def connected(self, room: str | None = None) -> int:
        """Open subscribers, in one room or in all."""
        if room is None:
            return len(self._subscribers)
        return len(self._members.get(room, ()))

    def connected_in(self, rooms: Iterable[str]) -> int:
        """Open subscribers in any of `rooms`, each counted once."""
        return len(set().union(*(self._members.get(room, ()) for room in rooms)))

    def online(self, room: str | None = None) -> list[str]:
        """Users with an open stream, in one room or anywhere, sorted."""
        if room is not None:
            return sorted(self._online.get(room, ()))
        return sorted(set().union(*self._online.values()))

    def active_rooms(self) -> Set[str]:
        """Rooms someone is listening to right now: a live view (read it before the next await)."""
        return self._members.keys()

    def _count_cut_off(self) -> None:
        self.cut_off += 1

    def _remove(self, subscriber: Subscriber) -> None:
        self._subscribers.pop(subscriber.id, None)
        self._everywhere.discard(subscriber)
        for room in subscriber.rooms:
            members = self._members[room]
            members.discard(subscriber)
            if not members:
                del self._members[room]
            if subscriber.user is None:
                continue
            online = self._online[room]
            online[subscriber.user] -= 1
            if online[subscriber.user] == 0:
                del online[subscriber.user]
                if not online:
                    del self._online[room]
                self._announce(room, Kind.LEAVE, subscriber)
        subscriber.rooms.clear()

    def _announce(self, room: str, kind: int, subject: Subscriber) -> None:
        assert subject.user is not None
        data = self._encoding.presence(kind, room, subject.user)
        for subscriber in self._members.get(room, ()):
            if subscriber is not subject and subscriber.user is not None:
                subscriber.push(0, data)
