"""The honest clients beside an attack: an observer calling GetStats every 0.25 s with a 1 s
deadline, a watcher timing live delivery between two streams in a room of its own, RSS samples
of the server, and a ledger of every ACKed message, checked against the history afterwards."""

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from contextlib import AsyncExitStack

from grpclib.client import Channel

from abuse.harness import Figures, Target
from chat.contract import Kind, bearer
from gen.grpc.chat import ChatServiceStub, MessagesRequest, StatsRequest
from harness import Chatter, rss_kib

PROBE_EVERY = 0.25
PROBE_DEADLINE = 1.0
SEND_EVERY = 0.1
DELIVERY_DEADLINE = 5.0
RSS_EVERY = 0.25
WARM_UP_SECONDS = 1.0
"""The probes run this long before the server's idle RSS is taken and the attack starts."""
WATCH_ROOM = "abuse-watch"


class Probes:
    """Runs the honest clients around one attack and fills in its `Figures`."""

    def __init__(self, target: Target, figures: Figures, settle_seconds: float) -> None:
        self.target = target
        self.settle_seconds = settle_seconds
        """How long the server may take after the attack to come back near its idle RSS."""
        self.figures = figures
        self._sent: dict[str, float] = {}
        self._acked: set[int] = set()
        self._delivered = asyncio.Event()
        """Set by the listener when nothing sent is still on its way."""

    @property
    def _metadata(self) -> dict[str, str] | None:
        """The probes' call metadata: the bearer token, when the server wants one."""
        return bearer(self.target.token) if self.target.token else None

    async def measure(self, attack: Awaitable[None]) -> Figures:
        figures = self.figures
        async with AsyncExitStack() as stack:
            watch_channel = Channel(self.target.host, self.target.port)
            stack.callback(watch_channel.close)
            token = self.target.token
            listener = await Chatter.open(
                stack, watch_channel, token, user="watch-rx", room=WATCH_ROOM
            )
            sender = await Chatter.open(
                stack, watch_channel, token, user="watch-tx", room=WATCH_ROOM
            )
            attacking = asyncio.Event()
            attacking.set()
            helpers = [
                asyncio.create_task(self._observe(attacking)),
                asyncio.create_task(self._listen(listener)),
                asyncio.create_task(self._send(sender, attacking)),
            ]
            try:
                await asyncio.sleep(WARM_UP_SECONDS)  # honest calls first: idle is with them
                figures.rss_idle_kib = figures.rss_peak_kib = self._rss()
                helpers.append(asyncio.create_task(self._sample(attacking)))
                await attack
            finally:
                attacking.clear()
                await asyncio.gather(*helpers[0:1], *helpers[2:])
                await self._drain_deliveries()
                helpers[1].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helpers[1]
            figures.deliveries_missed = len(self._sent)
        figures.rss_after_kib = await self._settle()
        figures.acked = len(self._acked)
        try:
            figures.lost = await self._lost()
        except Exception as error:  # the history could not be read: reported, not raised
            figures.ledger_failure = f"{type(error).__name__}: {error}"
        return figures

    def _rss(self) -> int:
        return rss_kib(self.target.pid)

    async def _observe(self, attacking: asyncio.Event) -> None:
        async with contextlib.AsyncExitStack() as stack:
            channel = Channel(self.target.host, self.target.port)
            stack.callback(channel.close)
            stub = ChatServiceStub(channel, metadata=self._metadata)
            while attacking.is_set():
                started = time.monotonic()
                self.figures.probes += 1
                try:
                    await stub.get_stats(StatsRequest(), timeout=PROBE_DEADLINE)
                except Exception:  # any failure is a missed probe, whatever its kind
                    channel.close()  # a fresh connection for the next probe
                    channel = Channel(self.target.host, self.target.port)
                    stack.callback(channel.close)
                    stub = ChatServiceStub(channel, metadata=self._metadata)
                else:
                    if time.monotonic() - started <= PROBE_DEADLINE:
                        self.figures.probes_answered += 1
                await asyncio.sleep(max(0.0, started + PROBE_EVERY - time.monotonic()))

    async def _send(self, sender: Chatter, attacking: asyncio.Event) -> None:
        """Says a numbered message every SEND_EVERY s; its ACK id goes in the ledger."""
        number = 0
        while attacking.is_set():
            started = time.monotonic()
            text = f"watch-{number}"
            number += 1
            self._sent[text] = started
            try:
                await sender.send(text)
                reply = await sender.recv_kind(Kind.ACK)
            except Exception as error:  # the server failed the watcher: reported, not raised
                self.figures.send_failure = f"{type(error).__name__}: {error}"
                return
            self._acked.add(reply.id)
            await asyncio.sleep(max(0.0, started + SEND_EVERY - time.monotonic()))

    async def _listen(self, listener: Chatter) -> None:
        while True:
            reply = await listener.stream.recv_message()  # no deadline: it may stay quiet
            if reply is None:
                return
            if reply.kind != Kind.CHAT:
                continue
            sent = self._sent.pop(reply.message, None)
            if sent is not None:
                self.figures.delivery_ms.append((time.monotonic() - sent) * 1000)
            if not self._sent:
                self._delivered.set()

    async def _drain_deliveries(self) -> None:
        """Waits up to DELIVERY_DEADLINE for the messages still on their way."""
        self._delivered.clear()
        if self._sent:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DELIVERY_DEADLINE):
                    await self._delivered.wait()

    async def _sample(self, attacking: asyncio.Event) -> None:
        while attacking.is_set():
            self.figures.rss_peak_kib = max(self.figures.rss_peak_kib, self._rss())
            await asyncio.sleep(RSS_EVERY)

    async def _settle(self) -> int:
        """The server's RSS once it is back within 10% of idle, or after `settle_seconds`."""
        deadline = time.monotonic() + self.settle_seconds
        rss = self._rss()
        while rss > self.figures.rss_idle_kib * 1.1 and time.monotonic() < deadline:
            await asyncio.sleep(RSS_EVERY)
            rss = self._rss()
        return rss

    async def _lost(self) -> int:
        """ACKed watcher messages missing from the room's history."""
        channel = Channel(self.target.host, self.target.port)
        try:
            stub = ChatServiceStub(channel, metadata=self._metadata)
            stored = set()
            async for reply in stub.get_messages(
                MessagesRequest(room=WATCH_ROOM, limit=len(self._acked) + 10), timeout=30
            ):
                stored.add(reply.id)
        finally:
            channel.close()
        return len(self._acked - stored)
