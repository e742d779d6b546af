"""The interactive chat on a terminal, as IRC users know it: the room's last messages and who is
online on entering, /commands, and incoming lines printed above the line being typed.

A line mode, not a full-screen one: the chat stays in the terminal's own scrollback, where it can
be searched, copied and kept after leaving, and it works in any terminal and multiplexer. Lines
sent and not yet acknowledged are shown under the chat, just above the prompt, and replaced by
the stored line when the ACK with their key arrives: each line appears once. A line typed while
the server is away waits there too, and goes when it is back. The connection, with reconnects,
resume and resends, is chat/client/session.py; what a typed line means, chat/client/commands.py.
"""

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError
from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.patch_stdout import patch_stdout

from chat.client import commands, output
from chat.client.commands import Typed
from chat.client.session import ChatSession
from chat.contract import NAME, NAME_RULE
from chat.tasks import cancel_and_wait
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessagesRequest,
    StatsRequest,
)

COLOURS = ["ansired", "ansigreen", "ansiyellow", "ansiblue", "ansimagenta", "ansicyan"]
DIM, ALERT = "ansibrightblack", "ansired"
RECENT = 20
"""How many of a room's last messages are shown on entering it."""
SCAN = 500
"""How many of the newest messages /rooms looks through for room names."""
ASK_TIMEOUT = 10.0
"""Seconds a question to the server (history, who, rooms) may take."""
ROOMS_SHOWN = 20
"""Rooms /rooms lists at most, the most recently active first."""
CLOSE_TIMEOUT = 2.0
"""Seconds leaving waits for the ACKs of lines not acknowledged yet."""
NOT_REACHED = (OSError, GRPCError, StreamTerminatedError)
"""What a call raises when the server cannot be reached or refuses."""


class Look(NamedTuple):
    """A room as found on entering it: its last messages and the history's epoch."""

    recent: list[MessageReply]
    epoch: str


def colour_of(user: str) -> str:
    """The same colour for a user every time and on every client."""
    return COLOURS[zlib.crc32(user.encode()) % len(COLOURS)]


def formatted(reply: MessageReply) -> FormattedText:
    """A reply as a coloured line: time, user, text; actions as `* ann waves`, events dim, errors
    red; what came over the wire inert (see `output.inert`)."""
    when = output.local_time(reply.sent_at)
    if reply.kind not in output.KNOWN_KINDS:
        return FormattedText([(DIM, output.inert(output.unknown_line(reply)))])
    if reply.kind in (MessageReplyKind.JOIN, MessageReplyKind.LEAVE):
        return FormattedText([(DIM, f"{when} * {output.inert(reply.message)}")])
    if reply.kind == MessageReplyKind.ERROR:
        return FormattedText([(ALERT, f"not sent: {output.inert(reply.message)}")])
    said = output.own_text(reply) if reply.kind == MessageReplyKind.ACK else reply.message
    text = output.inert(said)
    user = (f"{colour_of(reply.user)} bold", output.inert(reply.user))
    action = commands.action_text(text)
    if action is not None:
        return FormattedText([(DIM, f"{when} "), ("", "* "), user, ("", f" {action}")])
    return FormattedText([(DIM, f"{when} "), user, ("", f": {text}")])


def _say(text: str, style: str = DIM) -> None:
    """A line of the client's own, which may quote the server (names, rooms, its errors)."""
    print_formatted_text(FormattedText([(style, f"-- {output.inert(text)}")]))


def _reason(error: BaseException) -> str:
    if isinstance(error, GRPCError):
        return f"{error.status.name}: {error.message or 'no details'}"
    return str(error) or type(error).__name__


class Terminal:
    """One user at the terminal, in one room at a time."""

    def __init__(self, connect: Callable[[], Channel], user: str) -> None:
        self.user = user
        self.room = ""
        self.pending: dict[str, str] = {}
        """The lines sent and not answered yet, by message key, oldest first."""
        self._connect = connect
        self._session: ChatSession | None = None
        self._running: asyncio.Task[None] | None = None
        self._online: set[str] | None = None
        """Who is online in the room as shown: the snapshot asked once the stream was in the
        room, then every JOIN and LEAVE; None until the first snapshot came."""
        self._moves: list[MessageReply] = []
        """JOINs and LEAVEs heard before that snapshot, shown against it once it comes."""
        self._asked: set[asyncio.Task[None]] = set()
        self._entering: tuple[str, Look] | None = None
        """What to show once the stream is in the room: a greeting, and the room as looked at."""
        self._entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._prompt: PromptSession[str] = PromptSession(erase_when_done=True)

    async def look(self, room: str) -> Look:
        """The room's last messages; raises what the server answered
        when it cannot be asked. The epoch is asked first: should the history be replaced in
        between, the chat shows the new one whole rather than skip any of it."""
        async with self._asking() as stub:
            stats = await stub.get_stats(StatsRequest(room=room))
            request = MessagesRequest(room=room, limit=RECENT)
            recent = [reply async for reply in stub.get_messages(request)]
        return Look(recent, stats.epoch)

    async def enter(self, room: str, look: Look, greeting: str = "") -> None:
        """Leaves the room the user is in and chats in `room` from the newest message `look`
        saw on, in that history: no gap, no repeat. Once the server has taken the stream (so
        it refused neither the user nor the room), says `greeting`, shows the room as `look`
        saw it, then who is online; raises what the server answered when it refused."""
        await self.leave()
        self.room = room
        self._online = None
        self._entering = (greeting, look)
        entered = self._entered = asyncio.get_running_loop().create_future()
        session = ChatSession(
            self._connect,
            self.user,
            room,
            show=self._show,
            status=self._status,
            in_room=self._in_room,
        )
        session.last_id = max((reply.id for reply in look.recent), default=0)
        session.epoch = look.epoch
        self._session = session
        running = self._running = asyncio.create_task(session.run())
        await asyncio.wait({entered, running}, return_when=asyncio.FIRST_COMPLETED)
        if not entered.done():
            running.result()  # refused: its status, raised

    async def leave(self) -> None:
        """Leaves the room: waits briefly for the ACKs of lines sent (or still to be sent),
        then hangs up, saying how many never were."""
        if self._session is None or self._running is None:
            return
        await self._session.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._running), CLOSE_TIMEOUT)
        self._running.cancel()
        await asyncio.gather(self._running, return_exceptions=True)  # its error was told
        await cancel_and_wait(list(self._asked))
        self._moves.clear()
        if lost := len(self._session.pending):
            _say(f"not sent: {lost} {'line' if lost == 1 else 'lines'}, never acknowledged", ALERT)
        self._session = self._running = None
        self.pending.clear()

    async def chat(self) -> None:
        """Reads lines and carries them out until the user leaves; raises the error that ended
        the session by itself (a refused name or token)."""
        while self._running is not None:
            running = self._running
            asking = asyncio.create_task(self._ask())
            await asyncio.wait({asking, running}, return_when=asyncio.FIRST_COMPLETED)
            if not asking.done():
                asking.cancel()
                await asyncio.gather(asking, return_exceptions=True)
                running.result()
                return
            line = asking.result()
            if line is None or not await self._carry_out(commands.read(line)):
                return

    async def _ask(self) -> str | None:
        """The next line typed, or None when the user pressed Ctrl-D or Ctrl-C."""
        try:
            return await self._prompt.prompt_async(self._prompt_text)
        except (EOFError, KeyboardInterrupt):
            return None

    def _prompt_text(self) -> FormattedText:
        connected = self._session is not None and self._session.connected
        state = "sending" if connected else "waiting for the server"
        lines = [
            (DIM, f"  {_as_said(self.user, text)}  ({state})\n") for text in self.pending.values()
        ]
        return FormattedText([*lines, ("bold", f"{self.user}@{self.room}> ")])

    async def _carry_out(self, typed: Typed) -> bool:
        """Does what the line says; False when it says to leave."""
        match typed.action:
            case "say":
                if typed.argument:
                    self._send(typed.argument)
            case "me":
                self._send(commands.ACTION_PREFIX + typed.argument)
            case "who":
                await self._who()
            case "join":
                await self._join(typed.argument)
            case "rooms":
                await self._rooms()
            case "help":
                for line in commands.HELP:
                    _say(line)
            case "quit":
                return False
            case "unknown":
                _say(
                    f"unknown command {typed.argument}: /help lists the commands; "
                    "start a line with // to send it as it is"
                )
            case "usage":
                _say(typed.argument)
        return True

    def _send(self, text: str) -> None:
        """Hands the line to the session, which keeps it until answered, across reconnects."""
        assert self._session is not None
        self.pending[self._session.send(text)] = text

    async def _who(self) -> None:
        try:
            async with self._asking() as stub:
                stats = await stub.get_stats(StatsRequest(room=self.room))
        except NOT_REACHED as error:
            _say(f"cannot ask the server now: {_reason(error)}", ALERT)
            return
        _say(_online(self.room, list(stats.online), self.user))

    async def _join(self, room: str) -> None:
        if not NAME.fullmatch(room):
            _say(f"{room!r} is not a room name: {NAME_RULE}", ALERT)
        elif room == self.room:
            _say(f"you are in {room} already")
        else:
            try:
                look = await self.look(room)
            except NOT_REACHED as error:
                _say(f"cannot join {room}: {_reason(error)}; still in {self.room}", ALERT)
                return
            await self.enter(room, look)

    async def _rooms(self) -> None:
        try:
            async with self._asking() as stub:
                newest = [reply async for reply in stub.get_messages(MessagesRequest(limit=SCAN))]
                rooms = list(dict.fromkeys(reply.room for reply in reversed(newest)))[:ROOMS_SHOWN]
                stats = await asyncio.gather(
                    stub.get_stats(StatsRequest()),
                    *(stub.get_stats(StatsRequest(room=room)) for room in rooms),
                )
        except NOT_REACHED as error:
            _say(f"cannot ask the server now: {_reason(error)}", ALERT)
            return
        if not rooms:
            _say("no messages on the server yet; /join ROOM to open one")
            return
        whole, each = stats[0], stats[1:]
        listed = ", ".join(
            f"{room} ({_count(room_stats.num_messages, 'message')}, "
            f"{len(room_stats.online)} online)"
            for room, room_stats in zip(rooms, each, strict=True)
        )
        _say(
            f"rooms with recent messages: {listed}; {_count(whole.num_rooms, 'room')} on the "
            "server; /join ROOM to enter one"
        )

    @contextlib.asynccontextmanager
    async def _asking(self) -> AsyncIterator[ChatServiceStub]:
        """A stub for questions to the server, on a channel of its own, closed after."""
        channel = self._connect()
        try:
            yield ChatServiceStub(channel, timeout=ASK_TIMEOUT)
        finally:
            channel.close()

    def _in_room(self) -> None:
        """The stream is in the room: the room is shown the first time (before any reply of
        the stream), and who is online is asked now, so that the snapshot and the JOINs and
        LEAVEs after it miss no one (the first snapshot of a room is shown, those after a
        reconnect only correct what is known)."""
        if self._entering is not None:
            (greeting, look), self._entering = self._entering, None
            if greeting:
                _say(greeting)
            _say(f"{self.room}: {_counted(len(look.recent))}")
            for reply in look.recent:
                print_formatted_text(formatted(reply))
        task = asyncio.create_task(self._snapshot(self.room, shown=self._online is None))
        self._asked.add(task)
        task.add_done_callback(self._asked.discard)

    async def _snapshot(self, room: str, shown: bool) -> None:
        """Learns who is online; the room counts as entered (and the prompt comes) once the
        first snapshot is shown, so that it stands above the prompt."""
        entered = self._entered
        try:
            await self._learn_online(room, shown)
        finally:
            if not entered.done():
                entered.set_result(None)

    async def _learn_online(self, room: str, shown: bool) -> None:
        try:
            async with self._asking() as stub:
                online = set((await stub.get_stats(StatsRequest(room=room))).online)
        except NOT_REACHED:
            online = self._online or set()  # the moves then tell what changes
        if room != self.room:
            return
        self._online = online
        if shown:  # who else: this stream is online there now, which the user knows
            _say(_online(room, sorted(online - {self.user}), self.user))
        moves, self._moves = self._moves, []
        for reply in moves:
            self._moved(reply)
        self._prompt.app.invalidate()

    def _moved(self, reply: MessageReply) -> None:
        """A JOIN or LEAVE, shown when it changes who is online as known; held until the
        first snapshot."""
        online = self._online
        if online is None:
            self._moves.append(reply)
            return
        joined = reply.kind == MessageReplyKind.JOIN
        if (reply.user in online) == joined:
            return  # the snapshot knew it already
        if joined:
            online.add(reply.user)
        else:
            online.discard(reply.user)
        print_formatted_text(formatted(reply))

    def _show(self, reply: MessageReply) -> None:
        if reply.kind in (MessageReplyKind.JOIN, MessageReplyKind.LEAVE):
            self._moved(reply)
            self._prompt.app.invalidate()
            return
        if reply.kind == MessageReplyKind.ACK:
            self.pending.pop(reply.key, None)
        elif reply.kind == MessageReplyKind.ERROR:
            if (text := self.pending.pop(reply.key, None)) is not None:
                reply.message = f"{reply.message}: {text}"
        elif reply.kind == MessageReplyKind.CHAT and reply.user == self.user:
            self._confirm(reply.message)
        print_formatted_text(formatted(reply))
        self._prompt.app.invalidate()

    def _confirm(self, text: str) -> None:
        """A line of ours the resume replayed: stored before its ACK was lost. Its ACK comes
        again after the resend, as a repeat the session does not show, so the oldest pending
        line with this text is taken as stored now."""
        key = next((key for key, pending in self.pending.items() if pending == text), None)
        if key is not None:
            del self.pending[key]

    def _status(self, text: str) -> None:
        _say(text)
        self._prompt.app.invalidate()


def _as_said(user: str, text: str) -> str:
    action = commands.action_text(text)
    return output.inert(f"* {user} {action}" if action is not None else f"{user}: {text}")


def _count(count: int, noun: str) -> str:
    """`1 room`, `2 rooms`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _counted(count: int) -> str:
    if count == 0:
        return "no messages yet"
    return "the last message" if count == 1 else f"the last {count} messages"


def _online(room: str, users: list[str], me: str) -> str:
    others = [user for user in users if user != me]
    if not others:
        return f"nobody else is online in {room}"
    return f"online in {room}: {', '.join(others)}{' and you' if me in users else ''}"


async def interactive(connect: Callable[[], Channel], address: str, user: str, room: str) -> int:
    """Chats until /quit, Ctrl-D or Ctrl-C; 0 on leaving. Raises what the server answered when
    it cannot be reached at all, before anything claims a connection."""
    terminal = Terminal(connect, user)
    with patch_stdout(raw=True):
        _say(f"connecting to {address} as {user}")
        look = await terminal.look(room)
        greeting = f"connected to {address} as {user}; /help lists the commands, Ctrl-D leaves"
        await terminal.enter(room, look, greeting)
        try:
            await terminal.chat()
        finally:
            await terminal.leave()
    return 0
