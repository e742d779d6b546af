"""The client session against real server processes that die: it resumes in the right history,
keeps what is typed while the server is away, and resends what was not acknowledged."""

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from grpclib.client import Channel

from chat.client import split_address
from chat.client.session import ChatSession
from chat.tasks import cancel_and_wait
from gen.grpc.chat import ChatServiceStub, MessageReply, MessageReplyKind, MessagesRequest
from harness import ROOT, ServerProcess, run_client

Start = Callable[..., ServerProcess]
WAIT = 20.0
"""Seconds a test waits for what the session shows (reconnect backoff included)."""


@dataclass
class Screen:
    """What a session showed and said, with a way to wait for it."""

    replies: list[MessageReply] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def show(self, reply: MessageReply) -> None:
        self.replies.append(reply)
        self.changed.set()

    def status(self, text: str) -> None:
        self.statuses.append(text)
        self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def texts(self, kind: int, user: str) -> list[str]:
        return [r.message for r in self.replies if r.kind == kind and r.user == user]


@dataclass
class Running:
    session: ChatSession
    screen: Screen


@pytest.fixture
async def session_on() -> AsyncIterator[Callable[[ServerProcess], Running]]:
    """Runs a ChatSession as ann in general against a server process; ends it after the test."""
    tasks: list[asyncio.Task[None]] = []

    def start(server: ServerProcess) -> Running:
        host, port = split_address(server.address)
        screen = Screen()
        session = ChatSession(
            lambda: Channel(host, port), "ann", "general", screen.show, screen.status
        )
        tasks.append(asyncio.create_task(session.run()))
        return Running(session, screen)

    yield start
    await cancel_and_wait(tasks)


async def stored(server: ServerProcess) -> list[tuple[str, str]]:
    host, port = split_address(server.address)
    channel = Channel(host, port)
    try:
        stub = ChatServiceStub(channel, timeout=10)
        return [(r.user, r.message) async for r in stub.get_messages(MessagesRequest())]
    finally:
        channel.close()


def say(server: ServerProcess, user: str, *lines: str) -> None:
    text = "".join(line + "\n" for line in lines)
    result = run_client(["--server", server.address, "chat", "--user", user], text)
    assert result.returncode == 0, result.stderr


async def test_a_session_resuming_across_a_memory_store_restart_sees_the_whole_new_history(
    server_process: Start, session_on: Callable[[ServerProcess], Running]
) -> None:
    server = server_process("memory://")
    ann = session_on(server)
    for n in range(5):
        ann.session.send(f"old {n}")
    await ann.screen.until(lambda: not ann.session.pending)
    assert ann.session.last_id == 5
    server.stop(signal.SIGKILL)
    server.start()  # a new, empty history on the same port: ids start at 1 again
    await asyncio.to_thread(say, server, "cid", "new 1", "new 2", "new 3")
    await ann.screen.until(lambda: len(ann.screen.texts(MessageReplyKind.CHAT, "cid")) == 3)
    assert ann.screen.texts(MessageReplyKind.CHAT, "cid") == ["new 1", "new 2", "new 3"]
    assert "the server's history is not the one before: showing it from the start" in (
        ann.screen.statuses
    )


async def test_lines_sent_while_the_server_is_away_are_pending_then_stored_once(
    server_process: Start, session_on: Callable[[ServerProcess], Running], tmp_path: Path
) -> None:
    server = server_process(f"sqlite:///{tmp_path}/chat.db")
    ann = session_on(server)
    ann.session.send("first")
    await ann.screen.until(lambda: not ann.session.pending)
    server.stop(signal.SIGKILL)
    await ann.screen.until(lambda: not ann.session.connected)
    ann.session.send("while away 1")
    ann.session.send("while away 2")
    assert ann.session.pending == ["while away 1", "while away 2"]
    server.start()
    await ann.screen.until(lambda: not ann.session.pending)
    assert await stored(server) == [
        ("ann", "first"),
        ("ann", "while away 1"),
        ("ann", "while away 2"),
    ]


async def test_messages_in_flight_when_the_server_is_killed_are_stored_exactly_once(
    server_process: Start, session_on: Callable[[ServerProcess], Running], tmp_path: Path
) -> None:
    server = server_process(f"sqlite:///{tmp_path}/chat.db")
    ann = session_on(server)
    texts = [f"m{n}" for n in range(300)]
    for text in texts:
        ann.session.send(text)
    await ann.screen.until(lambda: len(ann.session.pending) < 200)  # some are ACKed, some not
    server.stop(signal.SIGKILL)
    server.start()
    await ann.screen.until(lambda: not ann.session.pending)
    assert await stored(server) == [("ann", text) for text in texts]


async def test_messages_follow_reconnects_and_shows_a_replaced_history_from_its_start(
    server_process: Start,
) -> None:
    server = server_process("memory://")
    await asyncio.to_thread(say, server, "bob", "before")
    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        *["-m", "chat.client", "--server", server.address, "messages", "--follow"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    async def printed() -> str:
        assert follower.stdout is not None
        async with asyncio.timeout(WAIT):
            return (await follower.stdout.readline()).decode().rstrip("\n")

    try:
        assert (await printed()).endswith("[general] bob: before")
        server.stop(signal.SIGKILL)
        server.start()  # a new, empty history: "after 1" takes id 1, as "before" had
        await asyncio.to_thread(say, server, "cid", "after 1", "after 2")
        lines = [await printed(), await printed()]
        assert [line.split("] ", 1)[1] for line in lines] == ["cid: after 1", "cid: after 2"]
    finally:
        follower.kill()
        await follower.wait()
