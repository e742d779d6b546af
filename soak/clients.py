"""A soak client: one user in one room, sending while it listens, hanging up now and then.

Every message has a key. A message whose stream broke before its ACK may or may not be stored;
after reconnecting, the client resumes (`chat-after-id` and `chat-epoch`) and sends it again
with the same key, so the server stores it once either way and acknowledges it with its one id.
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
from chat.contract import ACK_PREFIX, AFTER_ID, EPOCH, ROOM, SEND_AND_RECEIVE, USER
from gen.grpc.chat import MessageReply, MessageReplyKind, MessageRequest
from soak.ledger import Connection, Ledger
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


class HungUp(Exception):
    """The client hung up on purpose."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How many messages a client sends, and how often it hangs up (per message sent)."""

    messages: int
    hang_up_rate: float


class SoakClient:
    """Sends `messages` texts one after another, each after the previous one's ACK, while
    recording every message of its room it is shown; then, told the room's last id, waits to
    have seen it and half-closes."""

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
        self._unacked: tuple[str, str] | None = None  # text and key, until the ACK
        self._acked: asyncio.Future[int] | None = None
        self._last_id: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reached: asyncio.Future[None] | None = None
        self._channel: Channel | None = None

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
        metadata = {USER: self.ledger.user, ROOM: self.ledger.room}
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
            reader = asyncio.create_task(self._read(stream, connection))
            try:
                await self._talk(stream, reader)
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

    async def _talk(self, stream: Stream[MessageRequest, MessageReply], reader: Any) -> None:
        """Sends again what was not acknowledged, then what is left to send; then waits for the
        room's last id and half-closes."""
        await self._until(self._go, reader, seconds=None)  # every client is listening
        while self._unacked is not None or self._next < self._behaviour.messages:
            if self._unacked is None:
                text = f"{self.ledger.user} {self._next}"
                self._unacked = (text, f"{self.ledger.user}-{self._next}")
                self._next += 1
                self.ledger.sent.append(text)
            else:
                self.ledger.resent += 1
            text, key = self._unacked
            acked = self._acked = asyncio.get_running_loop().create_future()
            await stream.send_message(MessageRequest(message=text, key=key))
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

    async def _read(self, stream: Stream[MessageRequest, MessageReply], into: Connection) -> None:
        try:
            await stream.recv_initial_metadata()
            epoch = stream.initial_metadata.get(EPOCH) if stream.initial_metadata else None
            if not isinstance(epoch, str):
                self.ledger.problems.append("a stream without chat-epoch")
                return
            into.epoch = epoch
            if epoch != self.ledger.epoch:
                self.ledger.new_epoch(epoch)
            while (reply := await stream.recv_message()) is not None:
                self._take(reply, into)
        except StreamTerminatedError:
            raise_status(stream)  # reset after the trailers: they say why
            raise
        raise_status(stream)

    def _take(self, reply: MessageReply, into: Connection) -> None:
        """Records one reply: a message of the room (CHAT), or the ACK of the message in flight
        (of a resend: maybe of a message stored, and shown by the resume, already)."""
        if reply.kind == MessageReplyKind.CHAT:
            if reply.room != self.ledger.room:
                self.ledger.problems.append(f"CHAT {reply.id} of room {reply.room!r}")
            self._tally.deliveries += 1
        elif reply.kind == MessageReplyKind.ACK:
            unacked, acked = self._unacked, self._acked
            if (
                unacked is None
                or acked is None
                or acked.done()
                or reply.message != ACK_PREFIX + unacked[0]
                or reply.key != unacked[1]
            ):
                self.ledger.problems.append(f"unexpected ACK {reply.id}: {reply.message!r}")
                return
            self.ledger.acked[reply.id] = unacked[0]
            acked.set_result(reply.id)
            self._tally.ack()
            if reply.id <= self.ledger.last_seen:
                self.ledger.repeats += 1
                return  # stored before the stream broke: the resume showed it
        elif reply.kind == MessageReplyKind.ERROR:
            self.ledger.problems.append(f"ERROR: {reply.message}")
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

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def _unexpected(error: BaseException) -> bool:
    """A failure that no fault explains: a hang, or a status other than UNAVAILABLE."""
    if isinstance(error, GRPCError):
        return error.status is not Status.UNAVAILABLE
    return isinstance(error, TimeoutError)


def _reason(error: BaseException) -> str:
    if isinstance(error, GRPCError):
        return f"{error.status.name}: {error.message}"
    return f"{type(error).__name__}: {error}"
