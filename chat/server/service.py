"""ChatService: the RPCs of the contract, thin, over rooms.py and the store.

The handler mapping is built here rather than by betterproto's ServiceBase, whose wrappers hide
the grpclib stream (metadata, peer) and never close a server-streaming generator.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Set
from datetime import UTC, datetime
from typing import Any, TypeGuard, TypeVar

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError

from chat import contract
from chat.errors import ShuttingDown, StoreUnavailable
from chat.model import CHAT, DELETE, EDIT, REACTION, READ, TOPIC, Draft, Stored, stored_from
from chat.server import auth, encoding, http2, rules
from chat.server.calls import Call, Calls
from chat.server.config import Settings
from chat.server.encoding.base import ChatRequest, EncodingCodec, RoomRequest, RoomView, Stats
from chat.server.flood import FloodControl
from chat.server.guard.limits import Guard, file_limit
from chat.server.http2.base import Transport
from chat.server.identity import Identity
from chat.server.reclaim import Reclaimer
from chat.server.refusals import Refusals, Refused
from chat.server.rooms import Delivery, Rooms, Subscriber
from chat.server.throttle import AuthFailures
from chat.server.turns import Turns
from chat.server.writes import StoreWrites
from chat.store import Store
from chat.tasks import cancel_and_wait
from gen.grpc.chat import (
    HistoryReply,
    HistoryRequest,
    MessageReply,
    MessageRequest,
    MessagesRequest,
    RoomsReply,
    RoomsRequest,
    StatsReply,
    StatsRequest,
)

HISTORY_BATCH = 256
"""Stored messages sent in one `send_all` at most."""
HISTORY_BYTES = 64 * 1024
"""Encoded history sent in one `send_all` at most (and one message past it): `send_all` waits
for the client's flow-control window, so a reader that never reads holds this much, not a
batch of long messages."""
PIPELINE = 32
"""Requests of one stream stored together at most; its queue may overshoot by their ACKs."""
INT32_MAX = 2**31 - 1
Request = TypeVar("Request")
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
ACTIONS = {
    contract.Action.SAY: (CHAT, False),
    contract.Action.EDIT: (EDIT, False),
    contract.Action.DELETE: (DELETE, False),
    contract.Action.REACT: (REACTION, False),
    contract.Action.UNREACT: (REACTION, True),
    contract.Action.READ: (READ, False),
    contract.Action.TOPIC: (TOPIC, False),
}
"""Each action a request may ask for: the entry it makes, and whether it takes a reaction off."""
OFFERED = {contract.FEATURES: contract.OFFERED}
"""What every call's response headers say the server offers."""


class ChatService:
    """GetStats, GetMessages and SendAndReceiveMessage, as the contract in DESIGN.md describes."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.encoding, encoding_reason = encoding.select(settings.encoding)
        self.transport, transport_reason = http2.select(settings.http2)
        self.paths = (
            f"encoding {self.encoding.name} ({encoding_reason}), "
            f"http2 {self.transport.name} ({transport_reason})"
        )
        """Which paths run and why, for the startup line."""
        self.codec = EncodingCodec(self.encoding, settings.max_message_bytes)
        self.limits = Guard(settings.limits, file_limit())
        """The HTTP/2 limits and what they count across the server's connections."""
        self.refusals: Refusals[Refused] = Refusals()
        """What the service refused past its limits (rooms, auth failures), by reason."""
        self.writes = StoreWrites()
        """Whether the store's writes succeed: health follows it."""
        guard = auth.from_settings(settings)
        failures = AuthFailures(settings.max_auth_failures, settings.auth_failure_window)
        self.reclaimer = Reclaimer()
        """Trims the heap after a wave of closed connections and cancelled calls."""
        self.calls = Calls(
            self.codec, self.transport, guard, failures, self.refusals, self.reclaimer
        )
        self.flood = FloodControl(store, settings)
        """The buckets a message takes from before it is stored."""
        self.access = f"auth: {guard.name if guard else 'none'}; flood control: {self.flood}"
        """Who may call and how fast, for the startup line."""
        self.store = store
        """Where the messages are kept (health checks it)."""
        self.rooms = Rooms(settings.queue_size, self.encoding, store.presence)
        self.messages_stored = 0  # by this server, since it started
        self._max_text_bytes = settings.max_text_bytes
        self._max_rooms = settings.max_rooms
        self._edit_window = settings.edit_window
        self._turns = Turns()
        self._started = time.monotonic()
        store.listen(self.rooms)

    def shut_down(self) -> None:
        """Refuses new calls and ends every live stream with UNAVAILABLE; open calls then end."""
        self.calls.closing = True
        self.rooms.end_all(ShuttingDown())

    @property
    def connected(self) -> int:
        """This server's open live streams: chats and following readers."""
        return self.rooms.connected()

    @property
    def presence_updates(self) -> int:
        """Round trips to a shared store made to count streams, since the start."""
        return self.rooms.presence.updates

    @property
    def cut_off(self) -> int:
        """Live streams ended for falling too far behind, since the start."""
        return self.rooms.cut_off

    def __mapping__(self) -> dict[str, Handler]:
        return self.handlers(self.transport)

    def handlers(self, transport: Transport[Any]) -> dict[str, Handler]:
        """The methods by path, their calls run over `transport`: the server's own for
        grpclib, the reference one for the web door's streams."""
        methods: list[tuple[str, Callable[[Any], Awaitable[None]], Cardinality, type, type]] = [
            (
                contract.GET_STATS,
                self.get_stats,
                Cardinality.UNARY_UNARY,
                StatsRequest,
                StatsReply,
            ),
            (
                contract.GET_MESSAGES,
                self.get_messages,
                Cardinality.UNARY_STREAM,
                MessagesRequest,
                MessageReply,
            ),
            (
                contract.SEND_AND_RECEIVE,
                self.send_and_receive_message,
                Cardinality.STREAM_STREAM,
                MessageRequest,
                MessageReply,
            ),
            (
                contract.POST_MESSAGE,
                self.post_message,
                Cardinality.UNARY_UNARY,
                MessageRequest,
                MessageReply,
            ),
            (
                contract.GET_HISTORY,
                self.get_history,
                Cardinality.UNARY_UNARY,
                HistoryRequest,
                HistoryReply,
            ),
            (
                contract.LIST_ROOMS,
                self.list_rooms,
                Cardinality.UNARY_UNARY,
                RoomsRequest,
                RoomsReply,
            ),
        ]
        return {
            path: Handler(self.calls.wrap(path, func, transport), kind, request, reply)
            for path, func, kind, request, reply in methods
        }

    async def get_stats(self, call: Call[RoomRequest]) -> None:
        request = await _one_request(call)
        room = _room_filter(request.room, call)
        if room is None and _restricted(call.identity):
            stats = await self._readable_stats(call.identity)
            call.reply_once(self.encoding.stats(stats), self._headers())
            return
        presence = self.store.presence
        messages = await self.store.count(room)
        if room is None:  # stored or listened to: counted without reading every name
            active = await presence.active_rooms()
            stored = await self.store.stored_rooms(active)
            rooms = await self.store.room_count() + len(active) - len(stored)
        else:  # a room of actions alone, or of deleted messages, is a room all the same
            kept = messages or await self.store.stored_rooms([room])
            rooms = 1 if kept or room in await presence.active_rooms() else 0
        stats = Stats(
            messages=min(messages, INT32_MAX),
            rooms=min(rooms, INT32_MAX),
            connected=await presence.connected(room),
            online=await presence.online(room),
            uptime_seconds=time.monotonic() - self._started,
            epoch=self.store.epoch,
        )
        call.reply_once(self.encoding.stats(stats), self._headers())

    async def _readable_stats(self, identity: Identity) -> Stats:
        """The whole server's figures as a token limited to some rooms may see them: only
        those rooms count."""
        presence = self.store.presence
        stored = [room for room in await self.store.rooms() if identity.may_use(room)]
        active = [room for room in await presence.active_rooms() if identity.may_use(room)]
        messages = sum([await self.store.count(room) for room in stored])
        online = [await presence.online(room) for room in active]
        return Stats(
            messages=min(messages, INT32_MAX),
            rooms=min(len({*stored, *active}), INT32_MAX),
            connected=await presence.connected_in(active),
            online=sorted(set().union(*online)),
            uptime_seconds=time.monotonic() - self._started,
            epoch=self.store.epoch,
        )

    async def get_messages(self, call: Call[MessagesRequest]) -> None:
        request = await _one_request(call)
        identity = call.identity
        room = _room_filter(request.room, call)
        kinds = _kinds(call)
        epoch = await self._send_epoch(call)
        after_id = request.after_id if _same_history(call, epoch) else 0
        if room is None and _restricted(identity):
            history = self._readable_history(identity, after_id, request.limit, kinds)
        else:
            history = self.store.history(room, after_id, request.limit, entries=bool(kinds))
            if room is None:  # others' direct conversations are left out
                history = _readable(history, _reader(call))
        if kinds:
            history = _of_kinds(history, kinds, _caller(call))
        if not request.follow:
            await self._send_history(call, history)
            return
        with self.rooms.subscribe(None, kinds) as subscriber:
            if room is None:
                self.rooms.follow_everything(subscriber, _reader(call))
            else:
                self.rooms.join(subscriber, room)
            replay = self._replay_then_live(call, subscriber, history, after_id)
            del history  # the replay's to drop once read (see `_replay_then_live`)
            await _until_ended(subscriber, replay)

    async def send_and_receive_message(self, call: Call[ChatRequest]) -> None:
        identity = call.identity
        user = call.metadata(contract.USER, identity.user if identity else contract.DEFAULT_USER)
        room = call.metadata(contract.ROOM, contract.DEFAULT_ROOM)
        for problem in (rules.name_problem("user", user), rules.name_problem("room", room)):
            if problem:
                raise GRPCError(Status.INVALID_ARGUMENT, f"chat-{problem}")
        if identity is not None and (problem := identity.check_user(user, "chat-user")):
            raise GRPCError(Status.PERMISSION_DENIED, problem)
        if problem := _access_problem(identity, user, room):
            raise GRPCError(Status.PERMISSION_DENIED, problem)
        # Present (0 included: a client that has seen nothing yet), it asks for a replay.
        resume = call.metadata(contract.AFTER_ID, "")
        after_id = _after_id(resume) if resume else None
        kinds = _kinds(call)
        with self.rooms.subscribe(user, kinds) as subscriber:
            self.rooms.join(subscriber, room)
            # The response headers go once the stream is in its room: a client that has them
            # and then asks who is online (GetStats) hears of everyone who comes or goes after.
            epoch = await self._send_epoch(call)
            if not _same_history(call, epoch) and after_id is not None:
                after_id = 0
            replay = _nothing()
            if after_id is not None:
                replay = self.store.history(room, after_id, entries=bool(kinds))
                if kinds:
                    replay = _of_kinds(replay, kinds, user)
            sending = self._replay_then_live(call, subscriber, replay, after_id or 0)
            defaults = Draft(room, user, "", subscriber.id)
            await _until_ended(
                subscriber, sending, call, lambda: self._receive(call, subscriber, defaults)
            )

    async def _receive(
        self, call: Call[ChatRequest], subscriber: Subscriber, defaults: Draft
    ) -> None:
        """Stores each request in turn (the rooms queue its ACK), or answers ERROR, within the
        loop's time budget for a turn (chat/server/turns.py); finishes at half-close.

        Requests are read only once the replay is sent: a message posted meanwhile would be in
        the replay as well as ACKed, and shown to its sender twice. Requests that have already
        arrived are read and stored together (up to PIPELINE), so a client far ahead of the
        server is caught up with one write per listener for many messages, not one each.
        """
        await subscriber.live
        posted: set[str] = set()  # rooms this stream has stored (or is storing) a message in
        while (request := await call.recv()) is not None:
            if self._turns.over():  # the others have their turn before these requests
                await asyncio.sleep(0)
            drafts: list[Draft] = []  # valid, not stored yet: stored together
            failure: GRPCError | None = None
            for read in range(1, PIPELINE + 1):
                draft = _draft(request, defaults)
                # The stream's own names were checked when it opened; only overrides need a look.
                overrides = draft.room is not defaults.room or draft.user is not defaults.user
                answer = await self._answer_now(call, draft, overrides, posted)
                if answer is not None:
                    await self._append(subscriber, drafts)  # their ACKs come first
                    await subscriber.put(0, answer)
                else:
                    self.rooms.join(subscriber, draft.room)
                    posted.add(draft.room)
                    drafts.append(draft)
                    if draft.key:  # a repeat's ACK is the stream's to queue: none may pass it
                        await self._append(subscriber, drafts)
                if read == PIPELINE or not call.request_waiting():
                    break
                try:
                    if (waiting := await call.recv()) is None:
                        break
                except GRPCError as error:  # told once those before it are answered
                    failure = error
                    break
                request = waiting
            if drafts:
                await self._append(subscriber, drafts)
            if not call.sending.locked():  # saves a hop to the sending task
                await _send_queued(call, subscriber, subscriber.take())
            if failure is not None:
                raise failure
            await subscriber.room_to_spare()
        subscriber.finish()

    async def post_message(self, call: Call[ChatRequest]) -> None:
        """One request, answered as the stream answers it: its ACK once stored, or ERROR."""
        request = await _one_request(call)
        identity = call.identity
        defaults = Draft(
            call.metadata(contract.ROOM, contract.DEFAULT_ROOM),
            call.metadata(contract.USER, identity.user if identity else contract.DEFAULT_USER),
            "",
        )
        draft = _draft(request, defaults)
        answer = await self._answer_now(call, draft, True, set())
        if answer is None:
            (stored,) = await self._store([draft])
            self.messages_stored += not stored.repeat
            answer = self.encoding.ack(stored)
        call.reply_once(answer, self._headers())

    async def get_history(self, call: Call[HistoryRequest]) -> None:
        """A page of one room's messages as they are now."""
        request = await _one_request(call)
        if not request.room:
            raise GRPCError(Status.INVALID_ARGUMENT, "GetHistory needs a room")
        room = _room_filter(request.room, call)
        assert room is not None
        if request.before_id and request.after_id:
            raise GRPCError(
                Status.INVALID_ARGUMENT, "a page is before_id or after_id, not both at once"
            )
        limit = min(request.limit or contract.HISTORY_LIMIT, contract.MAX_HISTORY_LIMIT)
        page, more = await self.store.page(
            room,
            before_id=request.before_id,
            after_id=request.after_id,
            limit=limit,
            thread=request.thread,
        )
        messages = [self.encoding.current(now) for now in page]
        call.reply_once(self.encoding.history(messages, more, self.store.epoch), self._headers())

    async def list_rooms(self, call: Call[RoomsRequest]) -> None:
        """The rooms with messages or listeners that the caller may see, by name, with the
        caller's read marker and unread count in each."""
        await _one_request(call)
        may_read = _reader(call)
        presence = self.store.presence
        active = await presence.active_rooms()
        names = {*await self.store.rooms(), *active}
        visible = sorted(name for name in names if may_read(name))
        summaries = {summary.name: summary for summary in await self.store.summaries(visible)}
        unread = await self.store.unread(_caller(call), list(summaries))
        rooms = []
        for name in visible:
            summary = summaries.get(name)
            place = unread.get(name)
            rooms.append(
                RoomView(
                    name,
                    summary.topic if summary else "",
                    summary.last_id if summary else 0,
                    # a room with no stream has no one online: no look-up (a round trip on Redis)
                    min(len(await presence.online(name)), UINT32_MAX) if name in active else 0,
                    min(summary.messages if summary else 0, INT32_MAX),
                    min(place.count, UINT32_MAX) if place else 0,
                    place.read_id if place else 0,
                )
            )
        call.reply_once(self.encoding.rooms(rooms), self._headers())

    def _headers(self) -> dict[str, str]:
        """A unary call's response metadata: the history's epoch and what the server offers."""
        return {contract.EPOCH: self.store.epoch, **OFFERED}

    async def _answer_now(
        self, call: Call[Any], draft: Draft, overrides: bool, posted: Set[str]
    ) -> bytes | None:
        """The reply to a draft that is not to be stored, or None when it is: an ERROR saying
        why it is refused, or the ACK (id 0) of a reaction that changes nothing; but the first
        ACK again for an action its key stored before, which is why its rules no longer let it
        through (a delete resent after a broken stream finds its message deleted, maybe by the
        first attempt landing on another replica a moment ago)."""
        problem = rules.draft_problem(draft, self._max_text_bytes, names=overrides)
        if not problem and (draft.kind != CHAT or draft.reply_to):
            problem = await self._action_problem(call.identity, draft)
        problem = problem or await self._refusal(call, draft, overrides, posted)
        if not problem and not (draft.kind in (REACTION, READ) and await self._unchanged(draft)):
            return None
        identity = call.identity
        if draft.kind != CHAT and draft.key and (identity is None or identity.user == draft.user):
            first = await self.store.keyed(draft.user, draft.key)
            if first is not None:
                return self.encoding.ack(stored_from(draft, *first))
        if problem:
            return self.encoding.error(problem, draft.room, draft.user, draft.key)
        return self.encoding.ack(_unstored(draft))

    async def _action_problem(self, identity: Identity | None, draft: Draft) -> str | None:
        """Why the user may not act on the message (or room) the draft names, or None."""
        room = draft.room
        if draft.kind == TOPIC:
            if identity is not None and not identity.moderates(room):
                return f"only a moderator of {room} may set its topic"
            return None
        target = draft.target_id if draft.kind != CHAT else draft.reply_to
        now = await self.store.message(target)
        if now is None or now.message.room != room:
            return f"no message {target} in {room}"
        if draft.kind in (CHAT, READ):  # a deleted message is read past all the same
            return None
        if now.deleted:
            return f"message {target} was deleted"
        mine = now.message.user == draft.user
        if draft.kind == EDIT and not mine:
            return f"only its author may edit message {target}"
        if draft.kind == EDIT and self._edit_window:
            age = (datetime.now(UTC) - now.message.sent_at).total_seconds()
            if age > self._edit_window:
                return (
                    f"message {target} can no longer be edited: messages may be edited for "
                    f"{self._edit_window:g} seconds"
                )
        if draft.kind == DELETE and not mine and not (identity and identity.moderates(room)):
            return f"only its author or a moderator may delete message {target}"
        return None

    async def _unchanged(self, draft: Draft) -> bool:
        """Whether a reaction or a read changes nothing: put on twice, taken off when not
        there, or a read marker that would not move forward."""
        if draft.kind == READ:
            return await self.store.read_id(draft.user, draft.room) >= draft.target_id
        reacted = await self.store.reacted(draft.target_id, draft.text, draft.user)
        return reacted != draft.removed

    async def _store(self, drafts: list[Draft]) -> list[Stored]:
        """Stores the drafts; a failed write makes the server NOT_SERVING until one succeeds."""
        try:
            results = await self.store.append_all(drafts)
        except StoreUnavailable as error:
            self.writes.failed(error)
            raise
        self.writes.succeeded()
        return results

    async def _append(self, subscriber: Subscriber, drafts: list[Draft]) -> None:
        """Stores the drafts and empties the list (the rooms queue their ACKs, in id order)."""
        if not drafts:
            return
        results = await self._store(drafts)
        for stored in results:
            if stored.repeat:  # stored before: the first ACK again, and nothing for the room
                subscriber.acknowledge(self.encoding.ack(stored))
            else:
                self.messages_stored += 1
        drafts.clear()

    async def _refusal(
        self, call: Call[ChatRequest], draft: Draft, overrides: bool, posted: Set[str]
    ) -> str | None:
        """Why the call may not post a valid draft now, or None: a user or room its token does
        not allow (overrides only: the stream's own were checked when it opened), a new room
        past --max-rooms (not a room in `posted`, where this stream has stored a message), or
        more messages than flood control lets through (chat/server/flood.py)."""
        identity = call.identity
        if overrides:
            problem = identity.check_user(draft.user, "user") if identity is not None else None
            if problem := problem or _access_problem(identity, draft.user, draft.room):
                return problem
        # Flood control first: a flood of messages for new rooms is slowed before it costs a
        # look-up. A room this stream has posted to costs nothing; another with entries is let
        # through on one look-up on every store (a Redis SMISMEMBER, so once per stream and
        # room, not per message); a new room's message costs one more, the count of rooms (a
        # Redis SCARD), never a read of their names.
        if (slow_down := await self.flood.refusal(call, draft.user)) is not None:
            return slow_down
        if (
            self._max_rooms
            and draft.room not in posted
            and not await self.store.stored_rooms([draft.room])
        ):
            kept = await self.store.room_count()
            if kept >= self._max_rooms:
                self.refusals.refuse(
                    Refused.ROOMS,
                    call.address,
                    f"messages for new rooms refused: {kept} rooms kept (--max-rooms)",
                )
                return (
                    f"too many rooms: this server keeps {self._max_rooms} rooms at most, and "
                    f"{draft.room!r} would be a new one; this message was not stored"
                )
        return None

    async def _readable_history(
        self, identity: Identity, after_id: int, limit: int, kinds: Set[int]
    ) -> AsyncIterator[Stored]:
        """The history of every room the identity may use, oldest first; with `limit`, the
        newest `limit` of those (read room by room: at most `limit` from each)."""
        entries = bool(kinds)
        if not limit:
            allowed: dict[str, bool] = {}  # each room's patterns matched once
            async for message in self.store.history(None, after_id, entries=entries):
                readable = allowed.get(message.room)
                if readable is None:
                    readable = allowed[message.room] = identity.may_use(message.room)
                if readable:
                    yield message
            return
        newest: list[Stored] = []
        rooms = [room for room in await self.store.rooms() if identity.may_use(room)]
        for room in rooms:  # a list: the store's rooms may change while each is read
            history = self.store.history(room, after_id, limit, entries=entries)
            newest += [message async for message in history]
        newest.sort(key=lambda message: message.id)
        for message in newest[-limit:]:
            yield message

    async def _send_epoch(self, call: Call[Any]) -> str:
        """Sends a streaming call's response headers, with the store's epoch; returns it."""
        epoch = self.store.epoch
        await call.send_initial_metadata({contract.EPOCH: epoch, **OFFERED})
        return epoch

    async def _send_history(self, call: Call[Any], history: AsyncIterator[Stored]) -> int:
        """Streams stored messages, many per write; returns the last id sent (0 when none)."""
        last = size = 0
        batch: list[bytes] = []
        async for message in history:
            reply = self.encoding.chat(message)
            batch.append(reply)
            size += len(reply)
            last = message.id
            if len(batch) == HISTORY_BATCH or size >= HISTORY_BYTES:
                await call.send_all(batch)
                batch, size = [], 0
        if batch:
            await call.send_all(batch)
        return last

    async def _replay_then_live(
        self,
        call: Call[Any],
        subscriber: Subscriber,
        history: AsyncIterator[Stored],
        after_id: int = 0,
    ) -> None:
        """History first (then the subscriber is `live`), then the live queue without what the
        history already showed or the client had seen (`after_id`).

        The subscriber joined before the history was read, so a message stored meanwhile is in
        both; it is sent once, from the history. A replica still catching up with Redis may queue
        messages the client saw before it resumed; they are not sent again.
        """
        async with call.sending:
            subscriber.replayed = max(after_id, await self._send_history(call, history))
        del history  # read to its end; kept, it would hold its generator for the stream's life
        subscriber.go_live()
        subscriber.sink = call.sink()
        while batch := await subscriber.batch():
            await _send_queued(call, subscriber, batch)


async def _one_request(call: Call[Request]) -> Request:
    request = await call.recv()
    if request is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "the call carried no request message")
    return request


def _room_filter(room: str, call: Call[Any]) -> str | None:
    """The room a read is filtered to (None: all); INVALID_ARGUMENT for a bad name,
    PERMISSION_DENIED for a room the caller may not read (the call's token does not allow
    it, or a direct conversation that does not name them)."""
    if not room:
        return None
    problem = rules.name_problem("room", room)
    if problem:
        raise GRPCError(Status.INVALID_ARGUMENT, problem)
    if problem := _access_problem(call.identity, _caller(call), room):
        raise GRPCError(Status.PERMISSION_DENIED, problem)
    return room


def _caller(call: Call[Any]) -> str:
    """Who reads: the token's user, or the name the call gives (no privacy without tokens)."""
    identity = call.identity
    return identity.user if identity else call.metadata(contract.USER, contract.DEFAULT_USER)


def _access_problem(identity: Identity | None, user: str, room: str) -> str | None:
    """Why `user` may not use `room`, or None: a room the token does not allow, or a direct
    conversation that does not name them."""
    if identity is not None:
        return identity.check_room(room)
    users = contract.members(room)
    if users is not None and user not in users:
        return f"{room} is a direct conversation of others: only they may use it"
    return None


def _reader(call: Call[Any]) -> Callable[[str], bool]:
    """Which rooms the caller may read, of all the server's."""
    identity = call.identity
    if identity is not None:
        return identity.may_use
    user = _caller(call)
    return lambda room: room[0] != "@" or user in room[1:].split(",")


async def _readable(
    history: AsyncIterator[Stored], may_read: Callable[[str], bool]
) -> AsyncIterator[Stored]:
    async for message in history:
        if message.room[0] != "@" or may_read(message.room):
            yield message


def _kinds(call: Call[Any]) -> frozenset[int]:
    """The kinds of entries besides CHAT the call asked for (`chat-features`)."""
    return contract.features(call.metadata(contract.FEATURES, ""))


async def _of_kinds(
    history: AsyncIterator[Stored], kinds: Set[int], reader: str
) -> AsyncIterator[Stored]:
    """The entries a call with `kinds` sees: messages, and the actions it asked for (of READ,
    only the reader's own)."""
    async for entry in history:
        if not entry.kind or (entry.kind in kinds and (entry.kind != READ or entry.user == reader)):
            yield entry


def _draft(request: ChatRequest, defaults: Draft) -> Draft:
    """What the request asks to store, with the stream's (or call's) defaults; an unknown
    action is kept as it came, for its refusal (kind -1)."""
    if not request.action and not request.reply_to:  # a message: the tutorial's fields only
        return Draft(
            request.room or defaults.room,
            request.user or defaults.user,
            request.message,
            defaults.origin,
            request.key,
        )
    kind, removed = ACTIONS.get(request.action, (-1, False))
    return Draft(
        room=request.room or defaults.room,
        user=request.user or defaults.user,
        text=request.message,
        origin=defaults.origin,
        key=request.key,
        kind=kind,
        target_id=request.target_id if kind not in (CHAT, TOPIC) else 0,
        reply_to=request.reply_to if kind == CHAT else 0,
        removed=removed,
    )


def _unstored(draft: Draft) -> Stored:
    """An action that changed nothing, as its ACK tells it: no id."""
    return Stored(
        0,
        draft.room,
        draft.user,
        draft.text,
        datetime.now(UTC),
        key=draft.key,
        target_id=draft.target_id,
    )


def _restricted(identity: Identity | None) -> TypeGuard[Identity]:
    """Whether the call's token lists the rooms it may use (so the others must not show)."""
    return identity is not None and identity.rooms is not None


def _after_id(raw: str) -> int:
    """A message id (uint64, as on the wire) from metadata; INVALID_ARGUMENT for anything else."""
    # Length first: int() refuses strings of over 4,300 digits with a ValueError of its own.
    if len(raw) > 20 or not (raw.isascii() and raw.isdigit()) or int(raw) > UINT64_MAX:
        raise GRPCError(
            Status.INVALID_ARGUMENT, f"chat-after-id {rules.shown(raw)} is not a message id"
        )
    return int(raw)


def _same_history(call: Call[Any], epoch: str) -> bool:
    """Whether the ids a client resumes after belong to the history of `epoch`: yes, unless its
    `chat-epoch` names another one (the history was replaced, and every id of it is new to the
    client); INVALID_ARGUMENT for a value that is no epoch."""
    theirs = call.metadata(contract.EPOCH, "")
    if theirs and not contract.NAME.fullmatch(theirs):
        raise GRPCError(
            Status.INVALID_ARGUMENT, f"chat-epoch {rules.shown(theirs)} is not an epoch"
        )
    return not theirs or theirs == epoch


async def _nothing() -> AsyncIterator[Stored]:
    return
    yield


async def _send_queued(call: Call[Any], subscriber: Subscriber, replies: list[Delivery]) -> None:
    if replies and not subscriber.write_now(replies):
        async with call.sending:
            await call.send_all([data for _, data in replies])


async def _until_ended(
    subscriber: Subscriber,
    sending: Awaitable[None],
    call: Call[Any] | None = None,
    receiving: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Runs the sending side (and the receiving side of `call`) until done, failed, or the
    subscriber ends.

    Sending ends once the receiver finished and the queue is drained (client half-close: OK).
    An ended subscriber (slow consumer, shutdown, store lost) ends the call with its reason.
    """
    sides = _Sides(subscriber, sending)
    if call is not None and receiving is not None:
        sides.receive_when_readable(call, receiving)
    try:
        await sides.outcome
        sides.raise_reason()
    finally:
        await sides.close()


class _Sides:
    """A live call's sending side and receiving side, each a task, and the future the call's
    own task waits on: done when the sender is done, the subscriber ended, or a side failed.

    The receiving task starts once the client has sent something (when the transport can tell:
    `Call.when_readable`), so an idle stream holds no task parked deep in a read. The call's
    task waits on one future settled by callbacks, not on asyncio.wait, which would hold two
    coroutines, a set and a future of its own for each idle stream.
    """

    __slots__ = ("_disarm", "_ended", "_receiving", "_sender", "_tasks", "outcome")

    def __init__(self, subscriber: Subscriber, sending: Awaitable[None]) -> None:
        self.outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended = subscriber.ended
        self._sender = asyncio.ensure_future(sending)
        self._tasks: list[asyncio.Future[None]] = [self._sender]
        self._receiving: Callable[[], Awaitable[None]] | None = None
        self._disarm: Callable[[], None] | None = None
        self._ended.add_done_callback(self._settle)
        self._sender.add_done_callback(self._settle)

    def receive_when_readable(
        self, call: Call[Any], receiving: Callable[[], Awaitable[None]]
    ) -> None:
        self._receiving = receiving
        self._disarm = call.when_readable(self._start_receiving)

    def _start_receiving(self) -> None:
        receiving, self._receiving = self._receiving, None
        if receiving is None or self.outcome.done():
            return  # the call is ending: nothing more is read
        task = asyncio.ensure_future(receiving())
        self._tasks.append(task)
        task.add_done_callback(self._settle)

    def _settle(self, side: asyncio.Future[Any]) -> None:
        """A receiver that finished at half-close changes nothing: sending drains the queue."""
        if not self.outcome.done() and (
            side is self._sender
            or side is self._ended
            or side.cancelled()
            or side.exception() is not None
        ):
            self.outcome.set_result(None)

    def raise_reason(self) -> None:
        """The ended subscriber's reason, or a failed side's error; nothing when sending ended
        as it should."""
        if self._ended.done():
            raise self._ended.result()
        for task in self._tasks:
            if task.done():
                task.result()

    async def close(self) -> None:
        """Stops both sides; nothing is read once this starts."""
        self._receiving = None
        if self._disarm is not None:
            self._disarm()
        self._ended.remove_done_callback(self._settle)
        for task in self._tasks:
            task.remove_done_callback(self._settle)
        await cancel_and_wait(self._tasks)
