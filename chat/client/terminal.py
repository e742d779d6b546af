"""The interactive chat on a terminal: incoming lines print above the prompt being typed.

prompt_toolkit keeps the input line intact while replies arrive; the connection itself, with
reconnects and resume, is chat/client/session.py.
"""

import asyncio
import contextlib
import zlib
from collections.abc import Callable

from grpclib.client import Channel
from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.patch_stdout import patch_stdout

from chat.client import output
from chat.client.session import ChatSession
from gen.grpc.chat import MessageReply, MessageReplyKind

COLOURS = ["ansired", "ansigreen", "ansiyellow", "ansiblue", "ansimagenta", "ansicyan"]
HELP = "/quit or Ctrl-D leaves, /help shows this; every other line is sent to the room"
CLOSE_TIMEOUT = 5.0


def colour_of(user: str) -> str:
    """The same colour for a user every time and on every client."""
    return COLOURS[zlib.crc32(user.encode()) % len(COLOURS)]


def formatted(reply: MessageReply) -> FormattedText:
    """A reply as a coloured line: time, room, user, text; events dim, errors red."""
    when = output.local_time(reply.sent_at)
    if reply.kind in (MessageReplyKind.JOIN, MessageReplyKind.LEAVE):
        return FormattedText([("ansibrightblack", f"{when} * {reply.message}")])
    if reply.kind == MessageReplyKind.ERROR:
        return FormattedText([("ansired", f"not sent: {reply.message}")])
    text = output.own_text(reply) if reply.kind == MessageReplyKind.ACK else reply.message
    return FormattedText(
        [
            ("ansibrightblack", f"{when} "),
            (f"{colour_of(reply.user)} bold", reply.user),
            ("", f": {text}"),
        ]
    )


def _say(style: str, text: str) -> None:
    print_formatted_text(FormattedText([(style, text)]))


async def interactive(connect: Callable[[], Channel], user: str, room: str) -> int:
    """Chats until /quit, Ctrl-D or Ctrl-C; 0 on leaving."""
    session = ChatSession(
        connect,
        user,
        room,
        show=lambda reply: print_formatted_text(formatted(reply)),
        status=lambda text: _say("ansibrightblack", f"-- {text}"),
    )
    prompt: PromptSession[str] = PromptSession()
    with patch_stdout(raw=True):
        running = asyncio.create_task(session.run())
        _say("ansibrightblack", f"-- {HELP}")
        try:
            await _prompt_until_done(prompt, session, running)
            await session.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), CLOSE_TIMEOUT)
            if session.pending:
                _say("ansired", f"-- not sent: {len(session.pending)} messages, never acknowledged")
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running  # a final error (say, a bad room name) reaches the caller
    return 0


async def _prompt_until_done(
    prompt: "PromptSession[str]", session: ChatSession, running: "asyncio.Task[None]"
) -> None:
    """Reads lines and sends them until the user leaves or the session ends by itself."""
    while True:
        asking = asyncio.create_task(prompt.prompt_async(f"{session.user}@{session.room}> "))
        await asyncio.wait({asking, running}, return_when=asyncio.FIRST_COMPLETED)
        if not asking.done():
            asking.cancel()
            return
        try:
            text = asking.result().strip()
        except (EOFError, KeyboardInterrupt):
            return
        if text == "/quit":
            return
        if text == "/help":
            _say("ansibrightblack", f"-- {HELP}")
        elif text:
            session.send(text)
            if not session.connected:
                _say("ansiyellow", f"-- pending: {text} (sent when the connection is back)")
