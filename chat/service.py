"""ChatService: the three RPCs of the contract, thin, over rooms.py and the store.

The handler mapping is built here rather than by betterproto's ServiceBase, whose wrappers hide
the grpclib stream (metadata, peer) and never close a server-streaming generator.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError

from chat import rules, wire
from chat.auth import TokenAuth
from chat.calls import WRITE_BATCH, Call, Calls
from chat.codec import ChatCodec
from chat.config import Settings
from chat.errors import ShuttingDown
from chat.model import Draft, Stored
from chat.rooms import Delivery, Rooms, Subscriber
from chat.store import Store
from chat.tasks import cancel_and_wait
from gen.grpc.chat import MessageReply, MessageRequest, MessagesRequest, StatsReply, StatsRequest

SERVICE = "/grpc.chat.ChatService/"
INT32_MAX = 2**31 - 1
UINT64_MAX = 2**64 - 1


class ChatService:
    """GetStats, GetMessages and SendAndReceiveMessage, as the contract in DESIGN.md describes."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.codec = ChatCodec()
        auth = TokenAuth(settings.token) if settings.token else None
        self.calls = Calls(self.codec, settings.max_message_bytes, auth)
        self._store = store
        self._rooms = Rooms(settings.queue_size)
        self.messages_stored = 0  # by this server, since it started
        self._max_text_bytes = settings.max_text_bytes
        self._started = time.monotonic()
        store.listen(self._rooms)

    def shut_down(self) -> None:
        """Refuses new calls and ends every live stream with UNAVAILABLE; open calls then end."""
        self.calls.closing = True
        self._rooms.end_all(ShuttingDown())

    @property
    def connected(self) -> int:
        """Open live streams: chats and following readers."""
        return self._rooms.connected()

    @property
    def cut_off(self) -> int:
        """Live streams ended for falling too far behind, since the start."""
        return self._rooms.cut_off

    def __mapping__(self) -> dict[str, Handler]:
        methods: list[tuple[str, Callable[[Call], Awaitable[None]], Cardinality, type, type]] = [
            ("GetStats", self.get_stats, Cardinality.UNARY_UNARY, StatsRequest, StatsReply),
            (
                "GetMessages",
                self.get_messages,
                Cardinality.UNARY_STREAM,
                MessagesRequest,
                MessageReply,
            ),
            (
                "SendAndReceiveMessage",
                self.send_and_receive_message,
                Cardinality.STREAM_STREAM,
                MessageRequest,
                MessageReply,
            ),
        ]
        return {
            SERVICE + name: Handler(self.calls.wrap(SERVICE + name, func), kind, request, reply)
            for name, func, kind, request, reply in methods
        }

    async def get_stats(self, call: Call) -> None:
        request: wire.Request = await _one_request(call)
        room = _room_filter(request.room)
        messages = await self._store.count(room)
        if room is None:
            rooms = len(await self._store.rooms() | self._rooms.active_rooms())
        else:
            rooms = 1 if messages or room in self._rooms.active_rooms() else 0
        reply = wire.stats(
            messages=min(messages, INT32_MAX),
            rooms=min(rooms, INT32_MAX),
            connected=self._rooms.connected(room),
            online=self._rooms.online(room),
            uptime_seconds=time.monotonic() - self._started,
        )
        call.reply_once(reply)

    async def get_messages(self, call: Call) -> None:
        request: MessagesRequest = await _one_request(call)
        room = _room_filter(request.room)
        history = self._store.history(room, request.after_id, request.limit)
        if not request.follow:
            await _send_history(call, history)
            return
        with self._rooms.subscribe(user=None) as subscriber:
            if room is None:
                self._rooms.follow_everything(subscriber)
            else:
                self._rooms.join(subscriber, room)
            replay = _replay_then_live(call, subscriber, history, request.after_id)
            await _until_ended(subscriber, replay)

    async def send_and_receive_message(self, call: Call) -> None:
        user = call.metadata("chat-user", "anonymous")
        room = call.metadata("chat-room", "general")
        for problem in (rules.name_problem("user", user), rules.name_problem("room", room)):
            if problem:
                raise GRPCError(Status.INVALID_ARGUMENT, f"chat-{problem}")
        # Present (0 included: a client that has seen nothing yet), it asks for a replay.
        resume = call.metadata("chat-after-id", "")
        after_id = _after_id(resume) if resume else None
        with self._rooms.subscribe(user=user) as subscriber:
            self._rooms.join(subscriber, room)
            history = self._store.history(room, after_id) if after_id is not None else _nothing()
            sending = _replay_then_live(call, subscriber, history, after_id or 0)
            receiving = self._receive(call, subscriber, Draft(room, user, "", subscriber.id))
            await _until_ended(subscriber, sending, receiving)

    async def _receive(self, call: Call, subscriber: Subscriber, defaults: Draft) -> None:
        """Stores each request in turn (the rooms queue its ACK), or answers ERROR; finishes at
        half-close.

        Requests are read only once the replay is sent: a message posted meanwhile would be in
        the replay as well as ACKed, and shown to its sender twice.
        """
        await subscriber.live.wait()
        while (request := await call.recv()) is not None:
            draft = Draft(
                room=request.room or defaults.room,
                user=request.user or defaults.user,
                text=request.message,
                origin=defaults.origin,
            )
            # The stream's own names were checked when it opened; only overrides need a look.
            overrides = draft.room is not defaults.room or draft.user is not defaults.user
            problem = rules.draft_problem(draft, self._max_text_bytes, names=overrides)
            if problem:
                await subscriber.put(0, wire.error(problem, draft.room, draft.user))
                continue
            self._rooms.join(subscriber, draft.room)
            await self._store.append(draft)  # the rooms queue its ACK, in order with the room
            self.messages_stored += 1
            if not call.sending.locked():
                await _send_queued(call, subscriber.take())  # saves a hop to the sending task
            await subscriber.room_to_spare()
        subscriber.finish()


async def _one_request(call: Call) -> Any:
    request = await call.recv()
    if request is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "the call carried no request message")
    return request


def _room_filter(room: str) -> str | None:
    if not room:
        return None
    problem = rules.name_problem("room", room)
    if problem:
        raise GRPCError(Status.INVALID_ARGUMENT, problem)
    return room


def _after_id(raw: str) -> int:
    """A message id (uint64, as on the wire) from metadata; INVALID_ARGUMENT for anything else."""
    if not (raw.isascii() and raw.isdigit()) or int(raw) > UINT64_MAX:
        raise GRPCError(Status.INVALID_ARGUMENT, f"chat-after-id {raw!r} is not a message id")
    return int(raw)


async def _nothing() -> AsyncIterator[Stored]:
    return
    yield


async def _send_history(call: Call, history: AsyncIterator[Stored]) -> int:
    """Streams stored messages, many per write; returns the last id sent (0 when none)."""
    last = 0
    batch: list[bytes] = []
    async for message in history:
        batch.append(wire.chat(message))
        last = message.id
        if len(batch) == WRITE_BATCH:
            await call.send_all(batch)
            batch = []
    if batch:
        await call.send_all(batch)
    return last


async def _replay_then_live(
    call: Call, subscriber: Subscriber, history: AsyncIterator[Stored], after_id: int = 0
) -> None:
    """History first (then the subscriber is `live`), then the live queue without what the
    history already showed or the client had seen (`after_id`).

    The subscriber joined before the history was read, so a message stored meanwhile is in
    both; it is sent once, from the history. A replica still catching up with Redis may queue
    messages the client saw before it resumed; they are not sent again.
    """
    async with call.sending:
        subscriber.replayed = max(after_id, await _send_history(call, history))
    subscriber.live.set()
    while batch := await subscriber.batch():
        await _send_queued(call, batch)


async def _send_queued(call: Call, replies: list[Delivery]) -> None:
    if replies:
        encoded = [data for _, data in replies]
        if not call.send_now(encoded):
            async with call.sending:
                await call.send_all(encoded)


async def _until_ended(
    subscriber: Subscriber, sending: Awaitable[None], *others: Awaitable[None]
) -> None:
    """Runs the sending side (and the receiving side) until done, failed, or the subscriber ends.

    Sending ends once the receiver finished and the queue is drained (client half-close: OK).
    An ended subscriber (slow consumer, shutdown, store lost) ends the call with its reason.
    """
    tasks = [asyncio.ensure_future(sending), *map(asyncio.ensure_future, others)]
    sender = tasks[0]
    try:
        pending: set[asyncio.Future[Any]] = {*tasks, subscriber.ended}
        while sender in pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if subscriber.ended in done:
                raise subscriber.ended.result()
            for task in done:
                task.result()  # a failed side ends the call with its error
    finally:
        await cancel_and_wait(tasks)
