"""The chat servers of a soak run, asked for stats and history the way any client would."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.contract import FEATURES
from gen.grpc.chat import (
    ChatServiceStub,
    HistoryReply,
    HistoryRequest,
    MessageReply,
    MessagesRequest,
    StatsRequest,
)
from soak.check import Entry, State
from soak.ledger import FEATURES_ASKED
from soak.processes import ServerProcess

T = TypeVar("T")
PAGE = 100
"""Messages of a GetHistory page the soak asks for: few enough that a short run's rooms take
more than one page, so paging back is checked too."""


class Servers:
    """The chat servers of a run, by name, and how to ask them for stats and history; every
    call asks for the soak's features, so a read of the log shows its every entry."""

    def __init__(self, processes: dict[str, ServerProcess]) -> None:
        self.processes = processes

    async def connected(self) -> dict[str, int]:
        counts = {}
        for name, server in self.processes.items():
            stats = await retrying(server, lambda stub: stub.get_stats(StatsRequest()))
            counts[name] = stats.num_connected
        return counts

    async def wait_connected(self, expected: int, seconds: float) -> dict[str, int]:
        """Polls until every server counts `expected` open streams (or time runs out): replicas
        on one Redis each count every replica's."""
        deadline = time.monotonic() + seconds
        while True:
            counts = await self.connected()
            if set(counts.values()) == {expected} or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.05)  # the servers notice hang-ups in their own time

    async def last_id(self, room: str) -> int:
        """The id of the room's newest stored entry, a message or an action (0: none)."""
        request = MessagesRequest(room=room, limit=1)
        last = await retrying(self.first, lambda stub: _all(stub.get_messages(request)))
        return last[-1].id if last else 0

    async def log(self) -> list[Entry]:
        """Every stored entry, messages and actions, oldest first."""
        request = MessagesRequest()
        replies = await retrying(self.first, lambda stub: _all(stub.get_messages(request)))
        return [
            Entry(r.id, r.room, r.user, r.kind, r.message, r.target_id, r.removed) for r in replies
        ]

    async def states(self, rooms: list[str]) -> dict[str, list[tuple[int, State]]]:
        """Every message of `rooms` as each server shows it now, room after room, oldest first:
        GetHistory's newest page, then each older one until no more is left (or a page does not
        go back: what it repeats is there twice)."""
        views = {}
        for name, server in self.processes.items():
            view: list[tuple[int, State]] = []
            for room in rooms:
                shown: list[tuple[int, State]] = []
                before_id = 0
                while True:
                    page = await _page(server, room, before_id)
                    shown[:0] = [(r.id, _state(r)) for r in page.messages]
                    first = page.messages[0].id if page.messages else 0
                    if not (page.more and first) or (before_id and first >= before_id):
                        break
                    before_id = first
                view += shown
            views[name] = view
        return views

    @property
    def first(self) -> ServerProcess:
        return next(iter(self.processes.values()))

    def rss(self) -> dict[str, int]:
        return {name: server.rss_kib() for name, server in self.processes.items()}


READ_ATTEMPTS = 20


async def _page(server: ServerProcess, room: str, before_id: int) -> HistoryReply:
    """The GetHistory page of `room` just older than `before_id` (0: the newest)."""
    request = HistoryRequest(room=room, before_id=before_id, limit=PAGE)
    return await retrying(server, lambda stub: stub.get_history(request))


def _state(reply: MessageReply) -> State:
    reactions = sorted((r.emoji, r.count, tuple(sorted(r.users))) for r in reply.reactions)
    return State(reply.room, reply.user, reply.message, reply.deleted, tuple(reactions))


async def _all(replies: AsyncIterator[MessageReply]) -> list[MessageReply]:
    return [reply async for reply in replies]


async def retrying(server: ServerProcess, call: Callable[[ChatServiceStub], Awaitable[T]]) -> T:
    """Makes a call, again while the server answers UNAVAILABLE.

    After a Redis restart each of a replica's pooled connections fails its first command (the
    server cannot know whether a command on a broken connection ran, so it does not retry).
    """
    attempt = 1
    while True:
        try:
            async with _stub(server) as stub:
                return await call(stub)
        except GRPCError as error:
            if error.status is not Status.UNAVAILABLE or attempt == READ_ATTEMPTS:
                raise
        await asyncio.sleep(0.05 * attempt)  # backoff before asking again
        attempt += 1


@contextlib.asynccontextmanager
async def _stub(server: ServerProcess) -> AsyncIterator[ChatServiceStub]:
    """A ChatServiceStub on a fresh channel to one server, closed on leaving."""
    channel = Channel("127.0.0.1", server.port)
    try:
        yield ChatServiceStub(channel, timeout=60, metadata={FEATURES: FEATURES_ASKED})
    finally:
        channel.close()
