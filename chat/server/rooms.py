"""Live fan-out: who is in which room, and a bounded queue per listener.

`Rooms` is the store's listener: every committed message is encoded once and queued for each
subscriber of its room, and its ACK for the stream that posted it, in the same id order. A
subscriber that falls `capacity` messages behind is ended, so neither the room nor the server's
memory ever waits or grows for it. Who is online is the store's presence to count (across
replicas with Redis); the rooms tell it of every stream, and deliver the JOIN and LEAVE it
announces.
"""

import asyncio
import itertools
from collections.abc import Callable

from chat.errors import SlowConsumer, StoreUnavailable
from chat.model import READ, Stored
from chat.server.encoding.base import Encoding
from chat.server.http2.base import Sink, grpc_message, grpc_messages
from chat.store.presence import LocalPresence, Presence

Delivery = tuple[int, bytes]
"""An encoded MessageReply and the stored id a history replay may also show (0: none)."""


class Subscriber:
    """One live listener: a bounded queue between the rooms and the stream that drains it."""

    __slots__ = (
        "_capacity",
        "_finished",
        "_loop",
        "_on_cut_off",
        "_queue",
        "_space",
        "_waiter",
        "ended",
        "held",
        "id",
        "kinds",
        "last_id",
        "live",
        "reads",
        "replayed",
        "rooms",
        "sink",
        "user",
    )

    def __init__(
        self,
        id: int,
        user: str | None,
        capacity: int,
        on_cut_off: Callable[[], None],
        kinds: frozenset[int] = frozenset(),
    ) -> None:
        self.id = id
        self.user = user  # None: a history follower, which is not shown as online
        self.reads: Callable[[str], bool] | None = None  # the rooms it may see; None: all
        self.kinds = kinds
        """The kinds of entries besides CHAT it asked for (`chat-features`): the others
        never reach it."""
        self.rooms: set[str] = set()
        self.last_id = 0  # the newest stored id handed to the stream
        self.replayed = 0  # the newest id a history replay sent: the queue may repeat it
        self.sink: Sink | None = None
        """Set once the stream is live on a transport that can write at once: a delivery
        that finds the queue empty is written straight to the stream, with no wake-up of its
        sending task (the queue is for when the stream cannot take it now)."""
        self._loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[Exception] = self._loop.create_future()
        self.live: asyncio.Future[None] = self._loop.create_future()
        """Done once the replay (if any) is sent: requests may be read now. (A future, not an
        Event: an idle stream's Event holds an empty deque of 760 bytes.)"""
        self._capacity = capacity
        self._on_cut_off = on_cut_off
        self._queue: list[Delivery] = []  # a list: an idle stream's empty deque costs 600 B
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._finished = False
        self.held = False  # queued without a wake-up: the rooms `flush` it at the turn's end

    def go_live(self) -> None:
        """The replay is sent (`live`)."""
        if not self.live.done():
            self.live.set_result(None)

    def deliver(self, id: int, data: bytes, message: bytes) -> None:
        """Hands a room's message to the stream (`data` encoded, `message` that as a gRPC
        message): written at once when nothing is queued before it and the stream can take
        it, queued (`push`) otherwise."""
        sink = self.sink
        if (
            sink is not None
            and not self._queue
            and id > self.replayed
            and not self._finished
            and not self.ended.done()
            and sink(message, 1)
        ):
            self.last_id = id
            return
        self.push(id, data)

    def hold(self, id: int, data: bytes) -> bool:
        """Queues a room's message without waking the sending task: the rooms write what
        piles up in one loop turn with one `flush`. True when the rooms must flush this
        subscriber; a stream that cannot be written at once is pushed to as usual."""
        first = not self.held
        if first and (self._queue or self.sink is None):
            self.push(id, data)  # its sending task has (or will have) the queue
            return False
        self.push(id, data, wake=False)
        if first and self._queue:
            self.held = True
            return True
        return False

    def flush(self) -> None:
        """Writes everything held as one write when the stream can take it now; wakes the
        sending task for it otherwise."""
        self.held = False
        queue = self._queue
        if not queue:
            return
        if not self._finished and not self.ended.done() and self.write_now(self._fresh(queue)):
            self._taken(queue)
            return
        self._wake()

    def write_now(self, replies: list[Delivery]) -> bool:
        """Writes replies to the stream at once through its sink (the stream's own replies
        too, saving its sending task a wake-up); False when the stream cannot take them now,
        or the transport never writes at once: then they go by the sending task."""
        sink = self.sink
        if sink is None:
            return False
        return sink(grpc_messages([data for _, data in replies]), len(replies))

    def push(self, id: int, data: bytes, *, own: bool = False, wake: bool = True) -> None:
        """Queues a reply; ends the subscriber instead when its queue is full.

        `own`: a reply to the stream's own request, queued even when full, since its request
        waited for space (`room_to_spare`) and one stream has one request in hand at a time.
        `wake`: False when the rooms `flush` it at the end of the loop turn.
        """
        if self._finished or self.ended.done():
            return
        if len(self._queue) >= self._capacity and not own:
            self.end(SlowConsumer(self.last_id, self._capacity))
            self._on_cut_off()
            return
        self._queue.append((id, data))
        if wake:
            self._wake()

    def acknowledge(self, data: bytes) -> None:
        """Queues the ACK of the stream's own message, in id order with the room's messages.

        Never cut off for it: the stream then waits in `room_to_spare` before it reads its
        next requests, so the queue overshoots by the ACKs of one batch of them at most (the
        service's PIPELINE).
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
        items = self._fresh(queue)
        self._taken(queue)
        return items

    def _fresh(self, queue: list[Delivery]) -> list[Delivery]:
        """What is queued (a copy), but what a replayed history already showed."""
        replayed = self.replayed
        if not replayed or queue[0][0] > replayed:  # ids grow along the queue (0: no message)
            return queue.copy()
        return [item for item in queue if not item[0] or item[0] > replayed]

    def _taken(self, queue: list[Delivery]) -> None:
        """The queue went to the stream: the newest id in it is handed over, and it has room."""
        for id, _ in reversed(queue):
            if id:
                self.last_id = max(self.last_id, id)
                break
        queue.clear()
        self._make_space()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _make_space(self) -> None:
        if self._space is not None and not self._space.done():
            self._space.set_result(None)


class Rooms:
    """Room membership and delivery; the store calls `stored` in id order, its presence
    `announce` with JOIN and LEAVE."""

    def __init__(self, capacity: int, encoding: Encoding, presence: Presence | None = None) -> None:
        self.cut_off = 0  # subscribers ended for falling behind, since the start
        self._capacity = capacity
        self._encoding = encoding
        self._ids = itertools.count(1)
        self._subscribers: dict[int, Subscriber] = {}
        self._members: dict[str, set[Subscriber]] = {}
        self._everywhere: set[Subscriber] = set()
        self._readers: dict[str, set[Subscriber]] = {}
        """By user: their streams that asked for READ, in whatever room, which alone hear of
        the user's read marker moving."""
        self.presence: Presence = presence or LocalPresence()
        self.presence.watch(self.announce)
        self._delivered_this_turn = 0  # messages delivered to listeners in this loop turn
        self._crowded = False  # the last turn delivered more than one: hold them all
        self._held: list[Subscriber] = []

    def subscribe(self, user: str | None, kinds: frozenset[int] = frozenset()) -> "Subscription":
        """A new subscriber in no room yet, given the `kinds` of entries besides CHAT it asked
        for; leaving the `with` block takes it out of every room."""
        subscriber = Subscriber(next(self._ids), user, self._capacity, self._count_cut_off, kinds)
        self._subscribers[subscriber.id] = subscriber
        if user is not None and READ in kinds:
            self._readers.setdefault(user, set()).add(subscriber)
        self.presence.opened(subscriber.id)
        return Subscription(self, subscriber)

    def join(self, subscriber: Subscriber, room: str) -> None:
        """Delivers `room` to the subscriber from now on; JOIN when a user's first stream enters."""
        if room in subscriber.rooms:
            return
        subscriber.rooms.add(room)
        self._members.setdefault(room, set()).add(subscriber)
        self.presence.entered(room, subscriber.user, subscriber.id)

    def follow_everything(
        self, subscriber: Subscriber, reads: Callable[[str], bool] | None = None
    ) -> None:
        """Delivers every room's messages to the subscriber (GetMessages without a room), or
        those of the rooms `reads` allows."""
        subscriber.reads = reads
        self._everywhere.add(subscriber)

    def stored(self, message: Stored) -> None:
        """Queues the message for its room and the ACK for its sender, in the same id order.

        A message alone in its loop turn is written to each listener at once. When several are
        stored in one turn (a backlog: the server is behind its senders), every listener gets
        them in one write at the turn's end, and so does every message while the backlog
        lasts: a write per listener per turn, not per message, so a busy room catches up.
        """
        data = framed = b""  # encoded once, and only when someone besides the sender listens
        hold = False
        kind = message.kind
        listeners = (
            itertools.chain(self._members.get(message.room, ()), self._everywhere)
            if kind != READ
            else self._readers.get(message.user, ())  # the reader's own streams, no one else
        )
        for subscriber in listeners:
            if subscriber.id != message.origin:
                if subscriber.reads is not None and not subscriber.reads(message.room):
                    continue
                if kind and kind not in subscriber.kinds:
                    continue
                if not data:
                    data = self._encoding.chat(message)
                    framed = grpc_message(data)
                    hold = self._hold_this_one()
                if not hold:
                    subscriber.deliver(message.id, data, framed)
                elif subscriber.hold(message.id, data):
                    self._held.append(subscriber)
        sender = self._subscribers.get(message.origin)
        if sender is not None:
            sender.acknowledge(self._encoding.ack(message))

    def _hold_this_one(self) -> bool:
        """Whether this turn's deliveries wait for its end (`_turn_ended`)."""
        if not self._delivered_this_turn:
            asyncio.get_running_loop().call_soon(self._turn_ended)
        self._delivered_this_turn += 1
        return self._crowded or self._delivered_this_turn > 1

    def _turn_ended(self) -> None:
        self._crowded = self._delivered_this_turn > 1
        self._delivered_this_turn = 0
        held, self._held = self._held, []
        for subscriber in held:
            subscriber.flush()

    def lost(self, error: StoreUnavailable) -> None:
        self.end_all(error)

    def end_all(self, error: Exception) -> None:
        """Ends every subscriber with `error` (shutdown, or the store's live feed broke)."""
        for subscriber in self._subscribers.values():
            subscriber.end(error)

    def connected(self) -> int:
        """This process's open subscribers (the presence counts every replica's)."""
        return len(self._subscribers)

    def _count_cut_off(self) -> None:
        self.cut_off += 1

    def remove(self, subscriber: Subscriber) -> None:
        """Takes the subscriber out of every room (LEAVE when a user's last stream leaves)."""
        self._subscribers.pop(subscriber.id, None)
        self._everywhere.discard(subscriber)
        if subscriber.user is not None and READ in subscriber.kinds:
            readers = self._readers[subscriber.user]
            readers.discard(subscriber)
            if not readers:
                del self._readers[subscriber.user]
        for room in subscriber.rooms:
            members = self._members[room]
            members.discard(subscriber)
            if not members:
                del self._members[room]
            self.presence.left(room, subscriber.user, subscriber.id)
        subscriber.rooms.clear()
        self.presence.closed(subscriber.id)

    def announce(self, kind: int, room: str, user: str, stream: int) -> None:
        """Tells the room's chatters, but the stream that moved, that `user` came or went."""
        data = self._encoding.presence(kind, room, user)
        for subscriber in self._members.get(room, ()):
            if subscriber.id != stream and subscriber.user is not None:
                subscriber.push(0, data)


class Subscription:
    """A subscriber for the length of a `with` block. (Not a generator-based context manager:
    that holds a generator and its frame for as long as a stream is open, about 400 bytes.)"""

    __slots__ = ("_rooms", "_subscriber")

    def __init__(self, rooms: Rooms, subscriber: Subscriber) -> None:
        self._rooms = rooms
        self._subscriber = subscriber

    def __enter__(self) -> Subscriber:
        return self._subscriber

    def __exit__(self, *exc_info: object) -> None:
        self._rooms.remove(self._subscriber)
