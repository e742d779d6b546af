"""A chat stream that survives the server: reconnects with backoff, resumes, and resends.

Pure asyncio (the terminal UI sits on top): every reply goes to `show` exactly once, in order,
across reconnects, because the stream reopens with `chat-after-id` and the history's
`chat-epoch`, and replays are deduplicated. Every message gets a key and stays pending until
its ACK (or ERROR); after a reconnect the pending ones are sent again, in order, with the same
keys, so the server stores each once however often it is sent.
"""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat import contract
from chat.client.status import raise_status
from chat.tasks import cancel_and_wait
from gen.grpc.chat import MessageReply, MessageReplyKind, MessageRequest, MessagesRequest

FIRST_DELAY, MAX_DELAY = 0.5, 10.0
FINAL = {
    Status.INVALID_ARGUMENT,
    Status.UNAUTHENTICATED,
    Status.PERMISSION_DENIED,
    Status.UNIMPLEMENTED,
    Status.FAILED_PRECONDITION,
}
"""Statuses that reconnecting cannot change."""

ChatStream = Stream[MessageRequest, MessageReply]


class ChatSession:
    """One user in one room, for as long as `run` runs; `send` never drops a message."""

    def __init__(
        self,
        connect: Callable[[], Channel],
        user: str,
        room: str,
        show: Callable[[MessageReply], None],
        status: Callable[[str], None],
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
        self._prefix = uuid.uuid4().hex
        self._count = 0
        self._pending: dict[str, str] = {}  # key -> text, in the order they were sent
        self._written: list[str] = []  # keys written on the current stream, not yet answered
        self._changed = asyncio.Event()
        self._stream: ChatStream | None = None
        self._reached = False  # a stream got the server's headers since the last failure
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._stream is not None

    @property
    def pending(self) -> list[str]:
        """The texts sent and not acknowledged yet, oldest first: they go (again) as soon as
        there is a stream."""
        return list(self._pending.values())

    def send(self, text: str) -> str:
        """Posts `text` now, or as soon as the stream is back; returns its key. It stays
        pending until the server acknowledges or refuses it."""
        self._count += 1
        key = f"{self._prefix}-{self._count}"
        self._pending[key] = text
        self._changed.set()
        return key

    async def close(self) -> None:
        """Half-closes once every pending message is written: the server sends the
        outstanding ACKs, then `run` returns (after resending, should the stream break)."""
        self._closing = True
        self._changed.set()

    async def run(self, retries: int | None = None) -> None:
        """Chats until `close` and every message is answered, reconnecting after every failure
        with a growing delay; raises the last error after `retries` failed attempts in a row
        (None: never)."""
        delay = FIRST_DELAY
        attempt = failures = 0
        while True:
            try:
                await self._connect_once(attempt)
                return
            except (TimeoutError, OSError, GRPCError, StreamTerminatedError) as error:
                if self._closing and not self._pending:
                    return
                if isinstance(error, GRPCError) and error.status in FINAL:
                    raise  # asking again would get the same answer
                if self._reached:
                    delay, failures, self._reached = FIRST_DELAY, 0, False
                failures += 1
                if retries is not None and failures > retries:
                    raise
                self._status(f"disconnected: {_reason(error)}; reconnecting in {delay:.1f}s")
            await asyncio.sleep(delay)  # the backoff itself, not a synchronisation
            delay = min(delay * 2, MAX_DELAY)
            attempt += 1

    async def _connect_once(self, attempt: int) -> None:
        """One stream, until it ends with OK after `close` with nothing pending."""
        metadata = {contract.USER: self.user, contract.ROOM: self.room}
        if self.last_id:
            metadata[contract.AFTER_ID] = str(self.last_id)
            if self.epoch:
                metadata[contract.EPOCH] = self.epoch
        channel = self._connect()
        try:
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
                self._status(
                    "reconnected" if attempt else f"connected as {self.user} in {self.room}"
                )
                reader = asyncio.create_task(self._read(stream))
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
        """Writes the pending messages in order, then each new one; half-closes on `close`."""
        while True:
            self._changed.clear()
            for key, text in list(self._pending.items()):
                if key not in self._written:
                    self._written.append(key)
                    await stream.send_message(MessageRequest(message=text, key=key))
            if self._closing and all(key in self._written for key in self._pending):
                await stream.end()
                return
            await self._changed.wait()

    async def _read(self, stream: ChatStream) -> None:
        try:
            await stream.recv_initial_metadata()
            self._learn_epoch(stream)
            self._reached = True
            while (reply := await stream.recv_message()) is not None:
                self._take(reply)
        except StreamTerminatedError:
            raise_status(stream)  # reset after the trailers: they say why
            raise
        raise_status(stream)
        if not self._closing or self._pending:
            raise StreamTerminatedError("the server ended the stream")

    def _learn_epoch(self, stream: ChatStream) -> None:
        """Takes the server's epoch; a new one means a new history, shown from its start."""
        epoch = _epoch_of(stream)
        if epoch is None or epoch == self.epoch:
            return
        if self.epoch and self.last_id:
            self._status("the server's history is not the one before: showing it from the start")
            self.last_id = 0
        self.epoch = epoch

    def _take(self, reply: MessageReply) -> None:
        if reply.kind in (MessageReplyKind.ACK, MessageReplyKind.ERROR):
            self._answered(reply)
        if reply.kind in (MessageReplyKind.CHAT, MessageReplyKind.ACK) and reply.room == self.room:
            if reply.id <= self.last_id:
                return  # already shown before a reconnect
            self.last_id = reply.id
        self._show(reply)

    def _answered(self, reply: MessageReply) -> None:
        """The ACK or ERROR of a written message: it is no longer pending. Replies come in the
        order of the requests; a server that echoes no key is answered in that order."""
        key = reply.key or (self._written[0] if self._written else "")
        if key in self._written:
            self._written.remove(key)
        if self._pending.pop(key, None) is not None:
            if reply.kind == MessageReplyKind.ERROR:
                self.refused += 1
            if self._closing:
                self._changed.set()


def _epoch_of(stream: Stream[Any, MessageReply]) -> str | None:
    """The `chat-epoch` of the server's response headers; None from a server without epochs."""
    metadata = stream.initial_metadata
    epoch = metadata.get(contract.EPOCH) if metadata is not None else None
    return epoch if isinstance(epoch, str) else None


def _reason(error: BaseException) -> str:
    if isinstance(error, GRPCError):
        return f"{error.status.name}: {error.message or 'no details'}"
    return str(error) or type(error).__name__


async def follow_messages(
    connect: Callable[[], Channel],
    request: MessagesRequest,
    show: Callable[[MessageReply], None],
    status: Callable[[str], None],
) -> None:
    """GetMessages with `follow`, for good: after a failure it reconnects with a growing delay
    and resumes after the last id shown, with the history's epoch, so every message is shown
    once (a replaced history from its start)."""
    last_id, epoch = request.after_id, ""
    delay = FIRST_DELAY
    while True:
        metadata = {contract.EPOCH: epoch} if epoch else {}
        resume = MessagesRequest(room=request.room, after_id=last_id, follow=True)
        channel = connect()
        try:
            stream = channel.request(
                contract.GET_MESSAGES,
                Cardinality.UNARY_STREAM,
                MessagesRequest,
                MessageReply,
                metadata=metadata,
            )
            async with stream:
                await stream.send_message(resume if epoch else request, end=True)
                await stream.recv_initial_metadata()
                theirs = _epoch_of(stream)
                if theirs is not None and theirs != epoch:
                    if epoch:
                        status("the server's history is not the one before: from the start")
                        last_id = 0
                    epoch = theirs
                delay = FIRST_DELAY
                async for reply in stream:
                    if reply.id > last_id:
                        last_id = reply.id
                        show(reply)
            return
        except (TimeoutError, OSError, GRPCError, StreamTerminatedError) as error:
            if isinstance(error, GRPCError) and error.status in FINAL:
                raise
            status(f"disconnected: {_reason(error)}; reconnecting in {delay:.1f}s")
        finally:
            channel.close()
        await asyncio.sleep(delay)  # the backoff itself, not a synchronisation
        delay = min(delay * 2, MAX_DELAY)
