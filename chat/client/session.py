"""A chat stream that survives the server: reconnects with backoff and resumes from the last id.

Pure asyncio (the terminal UI sits on top): every reply goes to `show` exactly once, in order,
across reconnects, because the stream reopens with `chat-after-id` and replays are deduplicated.
"""

import asyncio
import contextlib
from collections.abc import Callable

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat import contract
from chat.client.status import raise_status
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    StatsRequest,
)

FIRST_DELAY, MAX_DELAY = 0.5, 10.0
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


class ChatSession:
    """One user in one room, for as long as `run` runs; `send` posts while connected."""

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
        self._connect = connect
        self._show = show
        self._status = status
        self._stream: Stream[MessageRequest, MessageReply] | None = None
        self._closing = asyncio.Event()
        self._stream_ran = False

    @property
    def connected(self) -> bool:
        return self._stream is not None

    async def send(self, text: str) -> bool:
        """Posts `text`; False when there is no connection right now (it is not queued)."""
        if self._stream is None:
            return False
        try:
            await self._stream.send_message(MessageRequest(message=text))
        except (OSError, StreamTerminatedError):
            return False
        return True

    async def close(self) -> None:
        """Half-closes the stream: the server sends outstanding ACKs, then `run` returns."""
        self._closing.set()
        if self._stream is not None:
            with contextlib.suppress(OSError, StreamTerminatedError):
                await self._stream.end()

    async def run(self) -> None:
        """Chats until `close`, reconnecting after every failure with a growing delay.

        An outage is told once, when it begins, and its end once the server answers again: a
        server that keeps failing does not make the status flap.
        """
        delay = FIRST_DELAY
        attempt = 0
        while not self._closing.is_set():
            try:
                await self._connect_once(attempt)
                return
            except (TimeoutError, OSError, GRPCError, StreamTerminatedError) as error:
                if self._closing.is_set():
                    return
                if isinstance(error, GRPCError) and error.status in FINAL:
                    raise  # asking again would get the same answer
                if self._stream_ran or not attempt:
                    self._status(f"disconnected: {_reason(error)}; reconnecting")
                    delay = FIRST_DELAY
            # The backoff itself, cut short by `close`: not a synchronisation.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
            delay = min(delay * 2, MAX_DELAY)
            attempt += 1

    async def _connect_once(self, attempt: int) -> None:
        metadata = {contract.USER: self.user, contract.ROOM: self.room}
        if self.last_id:
            metadata[contract.AFTER_ID] = str(self.last_id)
        self._stream_ran = False
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
                self._stream_ran = True
                if attempt:
                    self._status("reconnected")
                try:
                    await self._read(stream)
                finally:
                    self._stream = None
        finally:
            channel.close()

    async def _read(self, stream: Stream[MessageRequest, MessageReply]) -> None:
        try:
            while (reply := await stream.recv_message()) is not None:
                self._take(reply)
        except StreamTerminatedError:
            raise_status(stream)  # reset after the trailers: they say why
            raise
        raise_status(stream)
        if not self._closing.is_set():
            raise StreamTerminatedError("the server ended the stream")

    def _take(self, reply: MessageReply) -> None:
        if reply.kind in (MessageReplyKind.CHAT, MessageReplyKind.ACK) and reply.room == self.room:
            if reply.id <= self.last_id:
                return  # already shown before a reconnect
            self.last_id = reply.id
        self._show(reply)


def _reason(error: BaseException) -> str:
    """Why the connection broke, in the server's first clause (the rest is for programs)."""
    if isinstance(error, GRPCError):
        return (error.message or error.status.name).split(";")[0]
    return str(error) or type(error).__name__
