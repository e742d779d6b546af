"""A soak client: one user in one room, sending while it listens, hanging up now and then.

Every request has a key. A request whose stream broke before its ACK may or may not be stored;
after reconnecting, the client resumes (`chat-after-id` and `chat-epoch`) and sends it again
with the same key, so the server stores it once either way and acknowledges it with its one id.

Some sends are actions instead of messages (`Behaviour.action_rate`): an edit or a delete of one
of the client's own messages, a reaction put on or taken off. The client keeps what it expects
of its messages and reactions, and sends only what the server must accept: it edits and deletes
only its own live messages, deletes only those it marked deletable when it sent them (others
never react to those, so no reaction races a delete), and puts each emoji on a message once and
takes it off once at most, so every action is a new entry with a name of its own
(`action_text`).
"""

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import Any

import h2.exceptions
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from chat.client.status import raise_status
from chat.contract import (
    ACK_PREFIX,
    AFTER_ID,
    EPOCH,
    FEATURES,
    ROOM,
    SEND_AND_RECEIVE,
    USER,
    Action,
    Kind,
)
from gen.grpc.chat import MessageReply, MessageRequest
from soak.ledger import FEATURES_ASKED, Connection, Ledger, Own, action_text
from soak.tally import Tally

ACK_SECONDS = 30.0
"""Longest wait for an ACK, or for the room's last message at the end: beyond it is a hang."""
GIVE_UP = 100
"""Failures in a row (about 100 s of backoff) after which a client stops trying."""
BROKEN = (
    GRPCError,
    StreamTerminatedError,
    ProtocolError,
    OSError,
    TimeoutError,
    h2.exceptions.ProtocolError,
)
"""How a stream breaks when its server, or the server's store, goes away."""
DELETABLE = " (deletable)"
"""Ends the text of a message its author may delete later: others never react to it."""
DELETABLE_RATE = 0.2
"""The share of a client's messages marked DELETABLE."""
SHARED_EMOJI = "+1"
"""The emoji every client may use beside its own (its name), so that reactions gather users."""
RECENT = 16
"""How many of the room's newest messages, its own and others', a client picks targets from."""
VERBS = {
    Action.SAY: "say",
    Action.EDIT: "edit",
    Action.DELETE: "delete",
    Action.REACT: "react",
    Action.UNREACT: "unreact",
}
"""Each action the soak sends, as its records name it (`action_text`)."""
WEIGHTS = {Action.EDIT: 3, Action.REACT: 4, Action.UNREACT: 2, Action.DELETE: 1}
"""How often each action is picked, among those the client may send at that moment."""


class HungUp(Exception):
    """The client hung up on purpose."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How many requests a client sends, how often it hangs up (per request sent) and what share
    of its requests are actions rather than messages."""

    messages: int
    hang_up_rate: float
    action_rate: float = 0.0


@dataclass(slots=True)
class Pending:
    """A request until its ACK: what it asks and how the ledger names it."""

    request: MessageRequest
    record: str
    sends: int = 0

    @property
    def verb(self) -> str:
        return VERBS[self.request.action]


class SoakClient:
    """Sends `messages` requests one after another, each after the previous one's ACK, while
    recording every entry of its room it is shown; then, told the room's last id, waits to have
    seen it and half-closes."""

    def __init__(
        self,
        ledger: Ledger,
        addresses: list[str],
        behaviour: Behaviour,
        rng: random.Random,
        tally: Tally,
        go: "asyncio.Future[None]",
    ) -> None:
        self.ledger = ledger
        self.sent_all = asyncio.Event()
        self._addresses = addresses
        self._behaviour = behaviour
        self._rng = rng
        self._tally = tally
        self._go = go
        self._next = 0
        self._unacked: Pending | None = None
        self._acked: asyncio.Future[int] | None = None
        self._last_id: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reached: asyncio.Future[None] | None = None
        self._channel: Channel | None = None
        # Of the current history: targets to pick from, the reactions ever put on, and the
        # original texts of others' messages reacted to.
        self._own_recent: dict[int, None] = {}  # its live messages
        self._others_recent: dict[int, str] = {}  # others' messages (not deletable): text
        self._reacted: set[tuple[int, str]] = set()
        self._originals: dict[int, str] = {}

    def finish_at(self, last_id: int) -> None:
        """Tells the client the room's last id: once it has seen it, it leaves."""
        self._last_id.set_result(last_id)

    async def run(self) -> None:
        """Chats until done, reconnecting after every hang-up (at once) and failure (backoff)."""
        failures = 0
        choice = 0
        try:
            while True:
                address = self._addresses[choice % len(self._addresses)]
                try:
                    await self._stream_once(address)
                    return
                except HungUp:
                    self.ledger.hang_ups += 1
                    self._tally.hang_ups += 1
                    failures = 0
                except BROKEN as error:
                    if _unexpected(error):
                        self.ledger.problems.append(f"stream broke: {_reason(error)}")
                    if failures == GIVE_UP:
                        self.ledger.problems.append(f"gave up after {failures} failures in a row")
                        return
                    self.ledger.failures += 1
                    self._tally.failures += 1
                    self.ledger.connections[-1].ended = _reason(error)
                    self._close_channel()
                    failures += 1
                    choice += 1  # the other replica, if there is one
                    delay = min(0.05 * 2**failures, 1.0) * (0.5 + self._rng.random())
                    await asyncio.sleep(delay)  # backoff while the server is away
        finally:
            self._close_channel()

    async def _stream_once(self, address: str) -> None:
        """One stream: resume after the last id seen, listen, send; raises when it ends early."""
        metadata = {USER: self.ledger.user, ROOM: self.ledger.room, FEATURES: FEATURES_ASKED}
        after_id = self.ledger.last_seen if self.ledger.connections else None
        if after_id is not None:
            metadata[AFTER_ID] = str(after_id)
            if self.ledger.epoch:
                metadata[EPOCH] = self.ledger.epoch
        connection = Connection(address, after_id)
        self.ledger.connections.append(connection)
        if self._channel is None:
            host, port = address.rsplit(":", 1)
            self._channel = Channel(host, int(port))
        stream = self._channel.request(
            SEND_AND_RECEIVE,
            Cardinality.STREAM_STREAM,
            MessageRequest,
            MessageReply,
            metadata=metadata,
        )
        await stream.__aenter__()
        error: BaseException | None = None
        try:
            await stream.send_request()
            headers = asyncio.get_running_loop().create_future()
            reader = asyncio.create_task(self._read(stream, connection, headers))
            try:
                await self._talk(stream, reader, headers)
                await asyncio.wait_for(reader, ACK_SECONDS)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            connection.ended = "done"
        except BaseException as exc:
            error = exc
            raise
        finally:
            if error is not None:  # a hang-up or failure resets the stream
                with contextlib.suppress(Exception):
                    await stream.__aexit__(type(error), error, None)
            else:
                await stream.__aexit__(None, None, None)

    async def _talk(
        self,
        stream: Stream[MessageRequest, MessageReply],
        reader: Any,
        headers: "asyncio.Future[None]",
    ) -> None:
        """Sends again what was not acknowledged, then what is left to send; then waits for the
        room's last id and half-closes.

        Nothing is sent before the response headers: they say whether the history was replaced,
        and an action meant for the old one must not reach the new one (its ids are others)."""
        await self._until(self._go, reader, seconds=None)  # every client is listening
        await self._until(headers, reader)
        while self._unacked is not None or self._next < self._behaviour.messages:
            if self._unacked is None:
                self._unacked = self._next_request()
                self._next += 1
                self.ledger.sent.append(self._unacked.record)
            else:
                self.ledger.resent += 1
            pending = self._unacked
            pending.sends += 1
            acked = self._acked = asyncio.get_running_loop().create_future()
            await stream.send_message(pending.request)
            self._maybe_hang_up("before its ACK")
            await self._until(acked, reader)
            self._unacked = None
            self._maybe_hang_up("after an ACK")
        self.sent_all.set()
        last_id = await self._until(self._last_id, reader, seconds=None)
        if self.ledger.last_seen < last_id:
            self._reached = asyncio.get_running_loop().create_future()
            await self._until(self._reached, reader)
        await stream.end()

    def _next_request(self) -> Pending:
        """A message, or (at the behaviour's rate, when one is possible) an action."""
        user, n = self.ledger.user, self._next
        key = f"{user}-{n}"
        if self._rng.random() < self._behaviour.action_rate:
            action = self._action(key, f"{user} {n} (edit)")
            if action is not None:
                return action
        text = f"{user} {n}" + (DELETABLE if self._rng.random() < DELETABLE_RATE else "")
        return Pending(MessageRequest(message=text, key=key), text)

    def _action(self, key: str, new_text: str) -> Pending | None:
        """An action the server must accept, picked by WEIGHTS among those possible now (None:
        none is, as before the client's first message)."""
        own = self.ledger.own
        deletable = [id for id in self._own_recent if own[id].deletable]
        reactable = [
            (id, emoji)
            for id in (*self._own_recent, *self._others_recent)
            for emoji in (self.ledger.user, SHARED_EMOJI)
            if (id, emoji) not in self._reacted
        ]
        possible: dict[int, bool] = {
            Action.EDIT: bool(self._own_recent),
            Action.REACT: bool(reactable),
            Action.UNREACT: bool(self.ledger.reactions),
            Action.DELETE: bool(deletable),
        }
        actions = [action for action, ok in possible.items() if ok]
        if not actions:
            return None
        (action,) = self._rng.choices(actions, [WEIGHTS[action] for action in actions])
        if action in (Action.EDIT, Action.DELETE):
            target = self._rng.choice(deletable if action == Action.DELETE else [*self._own_recent])
            text = new_text if action == Action.EDIT else ""
        else:
            pairs = reactable if action == Action.REACT else [*self.ledger.reactions]
            target, text = self._rng.choice(pairs)
        if target in self._others_recent:
            self._originals[target] = self._others_recent[target]
        record = action_text(VERBS[action], self._original(target), text)
        request = MessageRequest(message=text, key=key, action=Action(action), target_id=target)
        return Pending(request, record)

    def _original(self, id: int) -> str:
        """The text message `id` was sent with: how the records name it."""
        own = self.ledger.own.get(id)
        return own.original if own is not None else self._originals[id]

    def _acknowledged(self, pending: Pending, id: int) -> None:
        """What the client expects once `pending` is stored (as `id`, for a message)."""
        request, own = pending.request, self.ledger.own
        action, target = request.action, request.target_id
        if action == Action.SAY:
            own[id] = Own(request.message, request.message, deletable=_deletable(request.message))
            _keep_recent(self._own_recent, id, None)
            return
        self.ledger.actions[pending.verb] = self.ledger.actions.get(pending.verb, 0) + 1
        if action == Action.EDIT:
            own[target].text = request.message
        elif action == Action.DELETE:
            own[target].text, own[target].deleted = "", True
            self._own_recent.pop(target, None)
            for pair in [pair for pair in self.ledger.reactions if pair[0] == target]:
                del self.ledger.reactions[pair]  # a delete takes the reactions with it
        elif action == Action.REACT:
            self.ledger.reactions[target, request.message] = None
            self._reacted.add((target, request.message))
        else:
            self.ledger.reactions.pop((target, request.message), None)

    def _maybe_hang_up(self, when: str) -> None:
        if self._rng.random() < self._behaviour.hang_up_rate / 2:
            self.ledger.connections[-1].ended = f"hung up {when}"
            if self._rng.random() < 0.5:
                self._close_channel()  # the TCP connection drops; else only RST_STREAM
            raise HungUp(when)

    async def _until(
        self, waited: "asyncio.Future[Any]", reader: Any, seconds: float | None = ACK_SECONDS
    ) -> Any:
        """The result of `waited`, unless the stream ends first (its error is raised)."""
        done, _ = await asyncio.wait(
            {waited, reader}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        if waited in done:
            return waited.result()
        if reader in done:
            reader.result()
            raise StreamTerminatedError("the server ended the stream with OK while in use")
        raise TimeoutError(f"no reply within {seconds:.0f}s")

    async def _read(
        self,
        stream: Stream[MessageRequest, MessageReply],
        into: Connection,
        headers: "asyncio.Future[None]",
    ) -> None:
        try:
            await stream.recv_initial_metadata()
            epoch = stream.initial_metadata.get(EPOCH) if stream.initial_metadata else None
            if not isinstance(epoch, str):
                self.ledger.problems.append("a stream without chat-epoch")
                return
            into.epoch = epoch
            if epoch != self.ledger.epoch:
                self._new_history(epoch)
            headers.set_result(None)
            while (reply := await stream.recv_message()) is not None:
                self._take(reply, into)
        except StreamTerminatedError:
            raise_status(stream)  # reset after the trailers: they say why
            raise
        raise_status(stream)

    def _new_history(self, epoch: str) -> None:
        """The server keeps another history than the one the client knew (or its first): the
        client forgets its targets, and an action not ACKed yet is dropped, not sent again
        (its message is gone); a message is sent again, to be stored in the new history."""
        replaced = bool(self.ledger.epoch)
        self.ledger.new_epoch(epoch)
        self._own_recent.clear()
        self._others_recent.clear()
        self._reacted.clear()
        self._originals.clear()
        pending = self._unacked
        if replaced and pending is not None and pending.request.action != Action.SAY:
            self.ledger.forgotten.append(pending.record)  # maybe stored, in the old history
            self.ledger.dropped += 1
            self._unacked = None

    def _take(self, reply: MessageReply, into: Connection) -> None:
        """Records one reply: an entry of the room (CHAT, EDIT, DELETE, REACTION), or the ACK
        (or ERROR) of the request in flight (of a resend: maybe of an entry stored, and shown
        by the resume, already)."""
        if reply.kind in (Kind.CHAT, Kind.EDIT, Kind.DELETE, Kind.REACTION):
            if reply.room != self.ledger.room:
                self.ledger.problems.append(f"{reply.kind.name} {reply.id} of room {reply.room!r}")
            self._tally.deliveries += 1
            self._seen(reply)
        elif reply.kind == Kind.ACK:
            if not self._ack(reply):
                return
        elif reply.kind == Kind.ERROR:
            self._refused(reply)
            return
        else:
            return  # JOIN, LEAVE
        into.ids.append(reply.id)
        self.ledger.last_seen = max(self.ledger.last_seen, reply.id)
        reached = self._reached
        if reached is None or reached.done():
            return
        if self.ledger.last_seen >= self._last_id.result():
            reached.set_result(None)

    def _seen(self, reply: MessageReply) -> None:
        """Keeps others' newest messages as targets for reactions (not those their authors may
        delete); others' entries cannot touch the client's own messages or reactions."""
        if reply.user == self.ledger.user:
            return  # replayed after a reconnect: its ACK (again) says what it did
        if reply.kind == Kind.CHAT and not _deletable(reply.message):
            _keep_recent(self._others_recent, reply.id, reply.message)
        elif reply.kind == Kind.DELETE:
            self._others_recent.pop(reply.target_id, None)

    def _ack(self, reply: MessageReply) -> bool:
        """Takes the ACK of the request in flight; whether it names an entry the client is
        shown (not a repeat the resume showed already, nor an ACK without an id)."""
        pending, acked = self._unacked, self._acked
        if (
            pending is None
            or acked is None
            or acked.done()
            or reply.message != ACK_PREFIX + pending.request.message
            or reply.key != pending.request.key
            or reply.target_id != pending.request.target_id
        ):
            self.ledger.problems.append(f"unexpected ACK {reply.id}: {reply.message!r}")
            return False
        self._tally.ack()
        self._acknowledged(pending, reply.id)
        acked.set_result(reply.id)
        if not reply.id:  # the server says the action changes nothing: it had been stored
            self.ledger.unnumbered.append(pending.record)
            self.ledger.problems.append(
                f"{_sent(pending)} {pending.verb} {pending.request.key} ACKed without an id"
            )
            return False
        self.ledger.acked[reply.id] = pending.record
        if reply.id <= self.ledger.last_seen:
            self.ledger.repeats += 1
            return False  # stored before the stream broke: the resume showed it
        return True

    def _refused(self, reply: MessageReply) -> None:
        """An ERROR: the client sends nothing the server may refuse, so each is a problem. A
        resend's refusal says its first send was stored (the server checked the resend as a new
        action on what the first one changed): the client expects what that one did."""
        pending, acked = self._unacked, self._acked
        if pending is None or acked is None or acked.done() or reply.key != pending.request.key:
            self.ledger.problems.append(f"ERROR: {reply.message}")
            return
        self.ledger.problems.append(
            f"{_sent(pending)} {pending.verb} {pending.request.key} refused: {reply.message}"
        )
        if pending.sends > 1:
            self._acknowledged(pending, 0)
            self.ledger.unnumbered.append(pending.record)
        else:
            self.ledger.sent.remove(pending.record)  # never stored
        acked.set_result(0)

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def _deletable(text: str) -> bool:
    return text.endswith(DELETABLE)


def _keep_recent(recent: dict[int, Any], id: int, value: Any) -> None:
    """Adds `id` to the newest RECENT, the oldest leaving."""
    recent[id] = value
    if len(recent) > RECENT:
        del recent[next(iter(recent))]


def _sent(pending: Pending) -> str:
    return "a resent" if pending.sends > 1 else "a"


def _unexpected(error: BaseException) -> bool:
    """A failure that no fault explains: a hang, or a status other than UNAVAILABLE."""
    if isinstance(error, GRPCError):
        return error.status is not Status.UNAVAILABLE
    return isinstance(error, TimeoutError)


def _reason(error: BaseException) -> str:
    if isinstance(error, GRPCError):
        return f"{error.status.name}: {error.message}"
    return f"{type(error).__name__}: {error}"
