"""The interactive chat on a terminal, as IRC users know it: the room's last messages and who is
online on entering, /commands, and incoming lines printed above the line being typed.

A line mode, not a full-screen one: the chat stays in the terminal's own scrollback, where it can
be searched, copied and kept after leaving, and it works in any terminal and multiplexer. Lines
sent and not yet acknowledged are shown under the chat, just above the prompt, and replaced by
the stored line when the ACK with their key arrives: each line appears once. A line typed while
the server is away waits there too, and goes when it is back.

The stream asks for every feature (`chat-features`): each message shows a short number (`#3`)
that /reply, /edit, /delete and /react take, and an edit, a delete, a reaction or a topic is
printed as a line of its own when it comes, since a printed line cannot change. A room is
entered from GetHistory (messages as they are now, reactions under them) and ListRooms (its
topic); the stream goes on from the newest entry they saw.

The connection, with reconnects, resume and resends, is chat/client/session.py; what a typed
line means, chat/client/commands.py; what was shown and what changed it since,
chat/client/conversation.py.
"""

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import NamedTuple

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout

from chat import contract
from chat.client import commands, output
from chat.client.commands import Typed
from chat.client.conversation import Conversation, Message
from chat.client.session import ChatSession
from chat.client.values import room_problem
from chat.contract import NAME, NAME_RULE
from chat.tasks import cancel_and_wait
from gen.grpc.chat import (
    ChatServiceStub,
    HistoryRequest,
    MessageReply,
    MessageReplyKind,
    MessageRequestAction,
    MessagesRequest,
    Room,
    RoomsRequest,
    StatsRequest,
)

COLOURS = ["ansired", "ansigreen", "ansiyellow", "ansiblue", "ansimagenta", "ansicyan"]
DIM, ALERT = "ansibrightblack", "ansired"
RECENT = 20
"""How many of a room's last messages are shown on entering it, and by each /more."""
ASK_TIMEOUT = 10.0
"""Seconds a question to the server (history, who, rooms) may take."""
ROOMS_SHOWN = 20
"""Rooms /rooms lists at most, the most recently active first (and as many direct
conversations)."""
CLOSE_TIMEOUT = 2.0
"""Seconds leaving waits for the ACKs of lines not acknowledged yet."""
NOT_REACHED = (OSError, GRPCError, StreamTerminatedError)
"""What a call raises when the server cannot be reached or refuses."""
Do = MessageRequestAction
DONE = {
    Do.SAY: MessageReplyKind.CHAT,
    Do.EDIT: MessageReplyKind.EDIT,
    Do.DELETE: MessageReplyKind.DELETE,
    Do.REACT: MessageReplyKind.REACTION,
    Do.UNREACT: MessageReplyKind.REACTION,
    Do.TOPIC: MessageReplyKind.TOPIC,
}
"""The entry each action makes: what its ACK stands for (the sender hears no echo of it)."""


class Look(NamedTuple):
    """A room as found on entering it: its last messages as they are now, the history's
    epoch, the room's topic, the newest entry of its log they include, and whether older
    messages are there."""

    recent: list[MessageReply]
    epoch: str
    topic: str
    last_id: int
    more: bool


class Pending(NamedTuple):
    """A request sent and not answered yet: what it asks, and how it shows until then (the
    text of a message, the command as typed for an action)."""

    action: int
    text: str
    shown: str
    target_id: int = 0
    reply_to: int = 0


def colour_of(user: str) -> str:
    """The same colour for a user every time and on every client."""
    return COLOURS[zlib.crc32(user.encode()) % len(COLOURS)]


def formatted(reply: MessageReply) -> FormattedText:
    """A reply that is no message of the room as a line: events dim, errors red, kinds this
    client does not know marked; what came over the wire inert (see `output.inert`)."""
    when = output.local_time(reply.sent_at)
    if reply.kind not in output.KNOWN_KINDS:
        return FormattedText([(DIM, output.inert(output.unknown_line(reply)))])
    if reply.kind == MessageReplyKind.ERROR:
        return FormattedText([(ALERT, f"not sent: {output.inert(reply.message)}")])
    return FormattedText([(DIM, f"{when} * {output.inert(reply.message)}")])


def _user(user: str) -> tuple[str, str]:
    return (f"{colour_of(user)} bold", output.inert(user))


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
        self.pending: dict[str, Pending] = {}
        """The requests sent and not answered yet, by message key, oldest first."""
        self.conversation = Conversation()
        """What was shown, as it is now: the numbers, texts and reactions commands act on."""
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
        self._oldest = 0
        """The oldest message of the room shown: /more shows those before it."""
        self._more = False
        """Whether the room has messages older than `_oldest`."""
        self._paging = False
        """Whether older messages are being asked for: a second /more waits its turn."""
        keys = KeyBindings()
        keys.add("pageup")(self._page_up)
        self._prompt: PromptSession[str] = PromptSession(erase_when_done=True, key_bindings=keys)

    async def look(self, room: str) -> Look:
        """The room's topic and last messages, as they are now; raises what the server
        answered when it cannot be asked. The rooms are asked first: should the room change
        in between, the history has the change already, and the stream's resume from the
        room's newest entry then shows it again at worst (`Conversation.take` drops it)."""
        async with self._asking() as stub:
            try:
                rooms = await stub.list_rooms(RoomsRequest())
                page = await stub.get_history(HistoryRequest(room=room, limit=RECENT))
            except GRPCError as error:
                if error.status is not Status.UNIMPLEMENTED:
                    raise
                return await _look_back(stub, room)
        listed = next((found for found in rooms.rooms if found.name == room), Room())
        newest = max((reply.id for reply in page.messages), default=0)
        return Look(page.messages, page.epoch, listed.topic, max(listed.last_id, newest), page.more)

    async def enter(self, room: str, look: Look, greeting: str = "") -> None:
        """Leaves the room the user is in and chats in `room` from the newest entry `look`
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
            features=contract.OFFERED,
        )
        session.last_id = look.last_id
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
        lines = [(DIM, f"  {pending.shown}  ({state})\n") for pending in self.pending.values()]
        return FormattedText([*lines, ("bold", f"{self.user}@{self.room}> ")])

    async def _carry_out(self, typed: Typed) -> bool:
        """Does what the line says; False when it says to leave."""
        match typed.action:
            case "say":
                if typed.argument:
                    self._send(Do.SAY, typed.argument)
            case "me":
                self._send(Do.SAY, commands.ACTION_PREFIX + typed.argument)
            case "msg":
                await self._direct(typed.argument, typed.text)
            case "reply" | "edit" | "delete" | "react" | "unreact":
                self._act_on(typed)
            case "fix":
                self._fix(typed.argument, typed.text)
            case "topic":
                self._topic(typed.text)
            case "more":
                await self._older()
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

    def _send(
        self,
        action: int,
        text: str,
        typed: str = "",
        target_id: int = 0,
        reply_to: int = 0,
    ) -> None:
        """Hands the request to the session, which keeps it until answered, across
        reconnects; until then it shows as said (a message) or as `typed` (an action)."""
        assert self._session is not None
        key = self._session.send(text, action, target_id, reply_to)
        shown = typed or _as_said(self.user, text)
        self.pending[key] = Pending(action, text, output.inert(shown), target_id, reply_to)

    def _act_on(self, typed: Typed) -> None:
        """/reply, /edit, /delete, /react and /unreact on message #N: the server says whether
        the user may (its ERROR is shown); /react takes off a reaction the user has on it."""
        id = self.conversation.id_of(typed.number)
        if id is None:
            _say(f"no message #{typed.number} here: the numbers are those shown before messages")
            return
        line = f"/{typed.action} {typed.number} {typed.argument or typed.text}".rstrip()
        match typed.action:
            case "reply":
                self._send(Do.SAY, typed.text, reply_to=id)
            case "edit":
                self._send(Do.EDIT, typed.text, line, target_id=id)
            case "delete":
                self._send(Do.DELETE, "", line, target_id=id)
            case "react" | "unreact":
                message = self.conversation.message(id)
                reacted = message.reactions.get(typed.argument) if message else None
                mine = reacted is not None and self.user in reacted.users
                action = Do.UNREACT if typed.action == "unreact" or mine else Do.REACT
                self._send(action, typed.argument, line, target_id=id)

    def _fix(self, old: str, new: str) -> None:
        """`s/old/new/`: the first `old` of the user's last message here becomes `new`."""
        message = self.conversation.last_of(self.user, self.room)
        if message is None:
            _say(f"s/{old}/{new}/ corrects your last message in {self.room}: there is none")
            return
        number = self.conversation.number(message.id)
        if old not in message.text:
            _say(f"your last message (#{number}) has no {old!r} to change")
            return
        text = message.text.replace(old, new, 1)
        if not text.strip():
            _say(f"nothing would be left of #{number}: /delete {number} takes it back")
            return
        self._send(Do.EDIT, text, f"s/{old}/{new}/", target_id=message.id)

    def _topic(self, text: str) -> None:
        """Sets the room's topic, or shows it."""
        if text:
            self._send(Do.TOPIC, text, f"/topic {text}")
        elif topic := self.conversation.topics.get(self.room):
            _say(f"the topic of {self.room}: {topic}")
        else:
            _say(f"{self.room} has no topic; /topic TEXT sets one")

    async def _direct(self, user: str, text: str) -> None:
        """/msg: enters the direct conversation with `user` (unless in it), then says `text`."""
        if not NAME.fullmatch(user):
            _say(f"{user!r} is not a user name: {NAME_RULE}", ALERT)
            return
        if user == self.user:
            _say("/msg writes to someone else: a direct conversation has two users at least")
            return
        room = contract.direct(self.user, user)
        if room != self.room and not await self._join(room):
            return
        if text:
            self._send(Do.SAY, text)

    def _page_up(self, event: KeyPressEvent) -> None:
        """PageUp: /more, leaving the line being typed as it is."""
        task = asyncio.create_task(self._older())
        self._asked.add(task)
        task.add_done_callback(self._asked.discard)

    async def _older(self) -> None:
        """/more (or PageUp): the messages of the room just older than those shown."""
        if self._paging:
            return
        if not self._more:
            _say(f"no older messages in {self.room}")
            return
        room = self.room
        self._paging = True
        try:
            async with self._asking() as stub:
                request = HistoryRequest(room=room, before_id=self._oldest, limit=RECENT)
                page = await stub.get_history(request)
        except NOT_REACHED as error:
            _say(f"cannot ask the server now: {_reason(error)}", ALERT)
            return
        finally:
            self._paging = False
        if room != self.room:
            return
        self._more = page.more
        if page.messages:
            self._oldest = page.messages[0].id
        _say(f"{room}: {_count(len(page.messages), 'older message')}")
        for reply in page.messages:
            self._show_message(reply)
        if not page.more:
            _say(f"that is the start of {room}")

    async def _who(self) -> None:
        try:
            async with self._asking() as stub:
                stats = await stub.get_stats(StatsRequest(room=self.room))
        except NOT_REACHED as error:
            _say(f"cannot ask the server now: {_reason(error)}", ALERT)
            return
        _say(_online(self.room, list(stats.online), self.user))

    async def _join(self, room: str) -> bool:
        """Enters `room`; False (and says why) when it cannot."""
        if problem := room_problem(room):
            _say(problem, ALERT)
            return False
        if room == self.room:
            _say(f"you are in {room} already")
            return True
        try:
            look = await self.look(room)
        except NOT_REACHED as error:
            _say(f"cannot join {room}: {_reason(error)}; still in {self.room}", ALERT)
            return False
        await self.enter(room, look)
        return True

    async def _rooms(self) -> None:
        """The rooms the user may see, most recently active first, with their topics; then
        their direct conversations."""
        try:
            async with self._asking() as stub:
                listed = await stub.list_rooms(RoomsRequest())
        except NOT_REACHED as error:
            _say(f"cannot ask the server now: {_reason(error)}", ALERT)
            return
        newest = sorted(listed.rooms, key=lambda room: room.last_id, reverse=True)
        rooms = [room for room in newest if contract.members(room.name) is None]
        directs = [room for room in newest if contract.members(room.name) is not None]
        if not rooms and not directs:
            _say("no rooms on the server yet; /join ROOM to open one")
        if rooms:
            _say(f"{_count(len(rooms), 'room')}; /join ROOM to enter one")
            for room in rooms[:ROOMS_SHOWN]:
                topic = f": {room.topic}" if room.topic else ""
                _say(f"  {room.name} ({room.online} online){topic}")
        if directs:
            _say(f"{_count(len(directs), 'direct conversation')}; /msg USER to write")
            for room in directs[:ROOMS_SHOWN]:
                others = [name for name in contract.members(room.name) or () if name != self.user]
                _say(f"  {room.name} with {', '.join(others)} ({room.online} online)")
        for more, noun in ((len(rooms), "room"), (len(directs), "direct conversation")):
            if more > ROOMS_SHOWN:
                _say(f"  and {_count(more - ROOMS_SHOWN, noun)} more")

    @contextlib.asynccontextmanager
    async def _asking(self) -> AsyncIterator[ChatServiceStub]:
        """A stub for questions to the server, on a channel of its own, closed after; it
        names the user, who alone may read their direct conversations."""
        channel = self._connect()
        try:
            yield ChatServiceStub(channel, timeout=ASK_TIMEOUT, metadata={contract.USER: self.user})
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
            if look.topic:
                _say(f"the topic of {self.room}: {look.topic}")
            self.conversation.topics[self.room] = look.topic
            self._oldest = look.recent[0].id if look.recent else 0
            self._more = look.more
            for reply in look.recent:
                self._show_message(reply)
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
        elif reply.kind == MessageReplyKind.ACK:
            if (pending := self.pending.pop(reply.key, None)) is not None:
                self._took(_as_done(reply, pending))
        elif reply.kind == MessageReplyKind.ERROR:
            self._refused(reply)
        else:
            if reply.kind == MessageReplyKind.CHAT and reply.user == self.user:
                self._confirm(reply.message)
            self._took(reply)
        self._prompt.app.invalidate()

    def _refused(self, reply: MessageReply) -> None:
        """The server's ERROR, with what it refused: a line not sent, an action not done."""
        pending = self.pending.pop(reply.key, None)
        if pending is None:
            print_formatted_text(formatted(reply))
            return
        said = pending.action == Do.SAY
        what = output.inert(pending.text) if said else pending.shown
        text = f"{'not sent' if said else 'not done'}: {output.inert(reply.message)}: {what}"
        print_formatted_text(FormattedText([(ALERT, text)]))

    def _took(self, reply: MessageReply) -> None:
        """A message or an action of the room, shown as what it changed."""
        if reply.kind not in output.KNOWN_KINDS:
            print_formatted_text(formatted(reply))
            return
        if reply.kind == MessageReplyKind.CHAT:
            self._show_message(reply)
            return
        message = self.conversation.take(reply)
        when = output.local_time(reply.sent_at)
        if reply.kind == MessageReplyKind.TOPIC:
            did = f"set the topic of {reply.room}: {reply.message}" if reply.message else ""
            did = output.inert(did or f"cleared the topic of {reply.room}")
            line = [(DIM, f"{when} * "), _user(reply.user), ("", f" {did}")]
            print_formatted_text(FormattedText(line))
        elif message is None:
            return  # heard before: it changes nothing
        elif reply.kind == MessageReplyKind.REACTION:
            emoji = output.inert(reply.message)
            did = f"took back {emoji} from" if reply.removed else f"reacted {emoji} to"
            about = output.inert(self.conversation.preview(message.id))
            line = [(DIM, f"{when} * "), _user(reply.user), ("", f" {did} {about}")]
            print_formatted_text(FormattedText(line))
            self._show_reactions(message)
        else:
            by = reply.user if reply.user != message.user else ""
            print_formatted_text(self._message_line(reply.sent_at, message, deleted_by=by))

    def _show_message(self, reply: MessageReply) -> None:
        """A message (live, or from a history with its state), its reactions under it."""
        message = self.conversation.take(reply)
        assert message is not None  # a message is never heard "twice" by Conversation
        print_formatted_text(self._message_line(reply.sent_at, message))
        self._show_reactions(message)

    def _message_line(
        self, sent_at: datetime, message: Message, deleted_by: str = ""
    ) -> FormattedText:
        """`time #N user: text`, `(edited)` or `(deleted)`, and what it answers."""
        when = output.local_time(sent_at)
        parts = [(DIM, f"{when} #{self.conversation.number(message.id)} ")]
        action = commands.action_text(message.text)
        if message.deleted:
            by = f" by {output.inert(deleted_by)}" if deleted_by else ""
            parts += (
                [_user(message.user), (DIM, f": (deleted{by})")]
                if message.user
                else [(DIM, f"(deleted{by})")]
            )
        elif action is not None:
            parts += [("", "* "), _user(message.user), ("", f" {output.inert(action)}")]
        else:
            parts += [_user(message.user), ("", f": {output.inert(message.text)}")]
        if message.edited and not message.deleted:
            parts.append((DIM, " (edited)"))
        if message.reply_to:
            answered = output.inert(self.conversation.preview(message.reply_to))
            parts.append((DIM, f"  ↳ re {answered}"))
        return FormattedText(parts)

    def _show_reactions(self, message: Message) -> None:
        """The reactions on a message, under its line: `👍 2  🎉 1`."""
        if counts := message.counts():
            shown = "  ".join(f"{output.inert(emoji)} {count}" for emoji, count in counts)
            print_formatted_text(FormattedText([("", f"    {shown}")]))

    def _confirm(self, text: str) -> None:
        """A line of ours the resume replayed: stored before its ACK was lost. Its ACK comes
        again after the resend, as a repeat the session does not show, so the oldest pending
        line with this text is taken as stored now."""
        key = next(
            (
                key
                for key, pending in self.pending.items()
                if pending.action == Do.SAY and pending.text == text
            ),
            None,
        )
        if key is not None:
            del self.pending[key]

    def _status(self, text: str) -> None:
        _say(text)
        self._prompt.app.invalidate()


async def _look_back(stub: ChatServiceStub, room: str) -> Look:
    """A room as a server from before GetHistory and ListRooms shows it: its last messages
    from GetMessages (the epoch asked first: should the history be replaced in between, the
    chat shows the new one whole rather than skip any of it), no topic, no paging back."""
    stats = await stub.get_stats(StatsRequest(room=room))
    recent = [reply async for reply in stub.get_messages(MessagesRequest(room=room, limit=RECENT))]
    return Look(recent, stats.epoch, "", max((reply.id for reply in recent), default=0), False)


def _as_done(ack: MessageReply, pending: Pending) -> MessageReply:
    """What the server stored for a request, from its ACK: the entry others in the room get."""
    return MessageReply(
        message=pending.text,
        user=ack.user,
        room=ack.room,
        id=ack.id,
        sent_at=ack.sent_at,
        kind=MessageReplyKind(DONE[pending.action]),
        target_id=pending.target_id,
        reply_to=pending.reply_to,
        removed=pending.action == Do.UNREACT,
    )


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
