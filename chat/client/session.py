"""A chat stream that survives the server: reconnects with backoff, resumes, and resends.

Pure asyncio (the terminal UI sits on top): every reply goes to `show` exactly once, in order,
across reconnects, because the stream reopens with `chat-after-id` and the history's
`chat-epoch`, and replays are deduplicated. Every message gets a key and stays pending until
its ACK (or ERROR); after a reconnect the pending ones are sent again, in order, with the same
keys, so the server stores each once however often it is sent.
"""

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from h2.exceptions import StreamClosedError

from chat import contract
from chat.client.status import raise_status
from chat.tasks import cancel_and_wait
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessageRequestAction,
    StatsRequest,
)

FIRST_DELAY, MAX_DELAY = 0.5, 10.0
SEEN_MAX_DELAY = 2.0
"""The longest wait between attempts once a stream has reached the server: it is most likely
restarting, and back within seconds."""
PROBE_TIMEOUT = 5.0
"""Seconds a reconnect waits for the server's answer before it counts as another failure."""
FINAL = {
    Status.INVALID_ARGUMENT,
    Status.UNAUTHENTICATED,
    Status.PERMISSION_DENIED,
    Status.UNIMPLEMENTED,
    Status.FAILED_PRECONDITION,
}
"""Statuses that reconnecting cannot change."""

ChatStream = Stream[MessageRequest, MessageReply]
LOGGED = frozenset(
    (
        MessageReplyKind.CHAT,
        MessageReplyKind.ACK,
        MessageReplyKind.EDIT,
        MessageReplyKind.DELETE,
        MessageReplyKind.REACTION,
        MessageReplyKind.TOPIC,
    )
)
"""The kinds of replies that are entries of the room's log: a resume goes on after the last."""


class ChatSession:
    """One user in one room, for as long as `run` runs; `send` never drops a message."""

    def __init__(
        self,
        connect: Callable[[], Channel],
        user: str,
        room: str,
        show: Callable[[MessageReply], None],
        status: Callable[[str], None],
        in_room: Callable[[], None] | None = None,
        features: str = "",
    ) -> None:
        self.user = user
        self.room = room
        self.last_id = 0
        self.epoch = ""
        """The epoch of the history `last_id` belongs to ('' until the server told it)."""
        self.refused = 0
        """Messages the server answered with ERROR: not stored, and not sent again."""
        self._connect = connect
        self._show = show
        self._status = status
        self._in_room = in_room
        """Told each time a stream is in the room (the server's headers came), before any of
        its replies is shown: who is online, asked from then on, misses nobody's JOIN."""
        self._features = features
        """What the stream asks for (`chat-features`): '' gets the tutorial's kinds only."""
        self._prefix = uuid.uuid4().hex
        self._count = 0
        self._pending: dict[str, MessageRequest] = {}  # by key, in the order they were sent
        self._written: list[str] = []  # keys written on the current stream, not yet answered
        self._changed = asyncio.Event()
        self._stream: ChatStream | None = None
        self._reached = False  # a stream got the server's headers since the last failure
        self._closing = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._stream is not None

    @property
    def pending(self) -> list[str]:
        """The texts sent and not acknowledged yet, oldest first: they go (again) as soon as
        there is a stream."""
        return [request.message for request in self._pending.values()]

    def send(
        self,
        text: str,
        action: int = MessageRequestAction.SAY,
        target_id: int = 0,
        reply_to: int = 0,
    ) -> str:
        """Posts `text` (or the action on message `target_id`) now, or as soon as the stream is
        back; returns its key. It stays pending until the server acknowledges or refuses it."""
        self._count += 1
        key = f"{self._prefix}-{self._count}"
        self._pending[key] = MessageRequest(
            message=text,
            key=key,
            action=MessageRequestAction(action),
            target_id=target_id,
            reply_to=reply_to,
        )
        self._changed.set()
        return key

    async def close(self) -> None:
        """Half-closes once every pending message is written: the server sends the
        outstanding ACKs, then `run` returns (after resending, should the stream break). Returns
        at once; a backoff wait with nothing pending is cut short."""
        self._closing.set()
        self._changed.set()

    async def run(self, retries: int | None = None) -> None:
        """Chats until `close` and every message is answered, reconnecting after every failure
        with a growing delay; raises the last error after `retries` failed attempts in a row
        (None: never), and at once, with `retries`, when the server was never reached.

        An outage is told once, when it begins, and its end once the server answers again: a
        server that keeps failing does not make the status flap.
        """
        delay = FIRST_DELAY
        attempt = failures = 0
        seen = False  # a stream has reached the server
        while True:
            try:
                await self._connect_once(attempt)
                return
            except (TimeoutError, OSError, GRPCError, StreamTerminatedError) as error:
                if self._done():
                    return
                if isinstance(error, GRPCError) and error.status in FINAL:
                    raise  # asking again would get the same answer
                seen = seen or self._reached
                if not seen and retries is not None:
                    raise  # never reached: nothing to come back to
                # A server that answers that its store fails is not an outage that ends when
                # it is reached again: such failures count in a row.
                begins = (self._reached and not store_down(error)) or not attempt
                if begins:
                    delay, failures, self._reached = FIRST_DELAY, 0, False
                failures += 1
                if retries is not None and failures > retries:
                    raise
                if begins:
                    self._status(f"disconnected: {_reason(error)}; reconnecting")
            await self._back_off(delay)
            if self._done():
                return
            delay = min(delay * 2, SEEN_MAX_DELAY if seen else MAX_DELAY)
            attempt += 1

    def _done(self) -> bool:
        """Whether `close` was called and nothing is left to send or to hear back about."""
        return self._closing.is_set() and not self._pending

    async def _back_off(self, delay: float) -> None:
        """The wait before the next attempt, cut short by `close`: leaving while the server is
        down takes no time. Messages still pending when closing keep the whole wait."""
        if self._closing.is_set():
            await asyncio.sleep(delay)  # the backoff itself, not a synchronisation
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    async def _connect_once(self, attempt: int) -> None:
        """One stream, until it ends with OK after `close` with nothing pending."""
        metadata = {contract.USER: self.user, contract.ROOM: self.room}
        if self._features:
            metadata[contract.FEATURES] = self._features
        if self.last_id:
            metadata[contract.AFTER_ID] = str(self.last_id)
            if self.epoch:
                metadata[contract.EPOCH] = self.epoch
        channel = self._connect()
        try:
            if attempt:  # back only once the server answers, not when a socket opens
                await ChatServiceStub(channel, timeout=PROBE_TIMEOUT).get_stats(
                    StatsRequest(room=self.room)
                )
            stream = channel.request(
                contract.SEND_AND_RECEIVE,
                Cardinality.STREAM_STREAM,
                MessageRequest,
                MessageReply,
                metadata=metadata,
            )
            async with stream:
                await stream.send_request()
                self._stream = stream
                self._written = []
                reader = asyncio.create_task(self._read(stream, attempt))
                writer = asyncio.create_task(self._write(stream))
                try:
                    running: set[asyncio.Task[None]] = {reader, writer}
                    while reader in running:
                        done, running = await asyncio.wait(
                            running, return_when=asyncio.FIRST_COMPLETED
                        )
                        for task in done:
                            task.result()  # a broken stream, from either side
                finally:
                    self._stream = None
                    await cancel_and_wait([reader, writer])
        finally:
            channel.close()

    async def _write(self, stream: ChatStream) -> None:
        """Writes the pending messages in order, then each new one; half-closes on `close`.

        A stream that breaks under a write stops the writing only: the reader hears why (a
        refusal's status arrives as the server closes the stream, maybe while a message is on
        its way), and what was written goes again on the next stream.
        """
        try:
            while True:
                self._changed.clear()
                for key, request in list(self._pending.items()):
                    if key not in self._written:
                        self._written.append(key)
                        await stream.send_message(request)
                if self._closing.is_set() and all(key in self._written for key in self._pending):
                    await stream.end()
                    return
                await self._changed.wait()
        except (OSError, StreamTerminatedError, StreamClosedError):
            return

    async def _read(self, stream: ChatStream, attempt: int) -> None:
        try:
            await stream.recv_initial_metadata()
            self._learn_epoch(stream)
            self._reached = True
            if attempt:  # the first connection goes unsaid: the caller tells the user it
                self._status("reconnected")
            if self._in_room is not None:
                self._in_room()
            while (reply := await stream.recv_message()) is not None:
                self._take(reply)
        except StreamTerminatedError:
            raise_status(stream)  # reset after the trailers: they say why
            raise
        raise_status(stream)
        if not self._done():
            raise StreamTerminatedError("the server ended the stream")

    def _learn_epoch(self, stream: ChatStream) -> None:
        """Takes the server's epoch; a new one means a new history, shown from its start."""
        epoch = epoch_of(stream)
        if epoch is None or epoch == self.epoch:
            return
        if self.epoch and self.last_id:
            self._status("the server's history is not the one before: showing it from the start")
            self.last_id = 0
        self.epoch = epoch

    def _take(self, reply: MessageReply) -> None:
        if reply.kind in (MessageReplyKind.ACK, MessageReplyKind.ERROR):
            self._answered(reply)
        if reply.kind in LOGGED and reply.room == self.room and reply.id:  # (no id: unchanged)
            if reply.id <= self.last_id:
                return  # already shown before a reconnect
            self.last_id = reply.id
        self._show(reply)

    def _answered(self, reply: MessageReply) -> None:
        """The ACK or ERROR of a written message: it is no longer pending. Replies come in the
        order of the requests; a server that echoes no key is answered in that order, and the
        reply is given the key it answers, so a display can tell which line it was."""
        key = reply.key = reply.key or (self._written[0] if self._written else "")
        if key in self._written:
            self._written.remove(key)
        if self._pending.pop(key, None) is not None:
            if reply.kind == MessageReplyKind.ERROR:
                self.refused += 1
            if self._closing.is_set():
                self._changed.set()


def epoch_of(stream: Stream[Any, MessageReply]) -> str | None:
    """The `chat-epoch` of the server's response headers; None from a server without epochs."""
    metadata = stream.initial_metadata
    epoch = metadata.get(contract.EPOCH) if metadata is not None else None
    return epoch if isinstance(epoch, str) else None


def store_down(error: BaseException) -> bool:
    """Whether the server answered that its store cannot take messages now."""
    return (
        isinstance(error, GRPCError)
        and error.status is Status.UNAVAILABLE
        and (error.message or "").startswith(contract.STORE_DOWN)
    )


def _reason(error: BaseException) -> str:
    """Why the connection broke, in the server's first clause (the rest is for programs)."""
    if isinstance(error, GRPCError):
        return (error.message or error.status.name).split(";")[0]
    return str(error) or type(error).__name__
