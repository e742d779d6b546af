"""`python -m chat.client` (console script `chat`): chat, stats and messages from a shell."""

import argparse
import asyncio
import os
import ssl
import sys
from collections.abc import Callable, Sequence

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.events import SendRequest, listen
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat.client import output
from chat.client.session import ChatSession, follow_messages
from chat.contract import bearer
from chat.tasks import cancel_and_wait
from chat.tls import client_context
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessagesRequest,
    StatsRequest,
)

UNARY_TIMEOUT = 10.0
PIPE_RETRIES = 3
"""Failed connections in a row (about 3.5 s of backoff) after which piped chat gives up."""
TUTORIAL_FLAGS = {"--chat": "chat", "--get-stats": "stats", "--read-messages": "messages"}


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On subcommands the defaults are suppressed so these work before or after the command.
    def default(value: str) -> str:
        return value if top else argparse.SUPPRESS

    env = os.environ.get
    parser.add_argument(
        "--server",
        default=default(env("CHAT_SERVER", "localhost:50051")),
        help="HOST:PORT (env CHAT_SERVER)",
    )
    parser.add_argument(
        "--token",
        default=default(env("CHAT_TOKEN", "")),
        help="the server's token, sent as 'authorization: Bearer TOKEN' (env CHAT_TOKEN)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="connect with TLS, trusting the system's CAs",
    )
    parser.add_argument(
        "--ca",
        default=default(""),
        metavar="FILE",
        help="connect with TLS, trusting the CA certificates in FILE (PEM)",
    )


def parser() -> argparse.ArgumentParser:
    """The client's commands; the tutorial's --chat/--get-stats/--read-messages are aliases."""
    top = argparse.ArgumentParser(prog="chat", description="The grpc.chat command line client.")
    _common(top, top=True)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chat = commands.add_parser("chat", help="chat in a room (interactive on a terminal)")
    chat.add_argument("--user", default=os.environ.get("CHAT_USER", "anonymous"))
    chat.add_argument("--room", default=os.environ.get("CHAT_ROOM", "general"))
    stats = commands.add_parser("stats", help="message count and who is online")
    stats.add_argument("--room", default="", help="one room's figures")
    stats.add_argument("--json", action="store_true", help="one JSON object")
    messages = commands.add_parser("messages", help="the history, oldest first")
    messages.add_argument("--room", default="", help="only this room")
    messages.add_argument("--after", type=int, default=0, metavar="ID", help="only after this id")
    messages.add_argument("--limit", type=int, default=0, metavar="N", help="only the newest N")
    messages.add_argument("--follow", action="store_true", help="keep printing new messages")
    messages.add_argument("--json", action="store_true", help="one JSON object per line")
    for command in (chat, stats, messages):
        _common(command, top=False)
    return top


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) into its parts; raises ValueError with the reason."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--server {address!r} is not HOST:PORT")
    return host.strip("[]") or "localhost", int(port)


def connector(args: argparse.Namespace) -> Callable[[], Channel]:
    """Opens channels to `--server` as the flags say: the one place a client channel is made."""
    host, port = split_address(args.server)
    metadata = bearer(args.token) if args.token else {}
    context = client_context(args.ca or None) if args.tls or args.ca else None

    async def add_metadata(event: SendRequest) -> None:
        event.metadata.update(metadata)

    def connect() -> Channel:
        channel = Channel(host, port, ssl=context)
        if metadata:
            listen(channel, SendRequest, add_metadata)
        return channel

    return connect


async def stats(channel: Channel, args: argparse.Namespace) -> int:
    reply = await ChatServiceStub(channel, timeout=UNARY_TIMEOUT).get_stats(
        StatsRequest(room=args.room)
    )
    lines = (
        [output.stats_json(reply, args.room)] if args.json else output.stats_lines(reply, args.room)
    )
    print(*lines, sep="\n")
    return 0


async def messages(channel: Channel, args: argparse.Namespace) -> int:
    request = MessagesRequest(
        room=args.room, after_id=args.after, limit=args.limit, follow=args.follow
    )
    show = output.message_json if args.json else output.message_line
    if args.follow:
        await follow_messages(
            connector(args),
            request,
            show=lambda reply: print(show(reply), flush=True),
            status=lambda text: print(f"-- {text}", file=sys.stderr, flush=True),
        )
        return 0
    async for reply in ChatServiceStub(channel).get_messages(request):
        print(show(reply), flush=args.follow)
    return 0


async def chat(channel: Channel, args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        from chat.client.terminal import interactive

        return await interactive(connector(args), args.user, args.room)
    return await chat_from_pipe(connector(args), args.user, args.room)


def _show_reply(reply: MessageReply) -> None:
    if reply.kind is MessageReplyKind.ERROR:
        print(output.message_line(reply), file=sys.stderr, flush=True)
    else:
        print(output.message_line(reply), flush=True)


def _show_status(text: str) -> None:
    """What the session says on stderr, but its first "connected as": a pipe's output stays the
    tutorial's unless something happened."""
    if not text.startswith("connected as"):
        print(f"-- {text}", file=sys.stderr, flush=True)


async def chat_from_pipe(connect: Callable[[], Channel], user: str, room: str) -> int:
    """Sends each input line, prints every reply; after a disconnect, resends what was not
    acknowledged. 0 at end of input once every line is acknowledged; 1 when one was refused or
    could not be sent."""
    session = ChatSession(connect, user, room, show=_show_reply, status=_show_status)
    running = asyncio.create_task(session.run(retries=PIPE_RETRIES))
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if running.done():
                break
            if text := line.rstrip("\r\n"):
                session.send(text)
        await session.close()
        await running  # the server's final answer, or the last failure, reaches the caller
    finally:
        await cancel_and_wait([running])
    return 1 if session.refused or session.pending else 0


COMMANDS = {"chat": chat, "stats": stats, "messages": messages}


async def run(args: argparse.Namespace) -> int:
    channel = connector(args)()
    try:
        return await COMMANDS[args.command](channel, args)
    finally:
        channel.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point `chat`; failures are one line on stderr and exit code 1."""
    words = [TUTORIAL_FLAGS.get(word, word) for word in (sys.argv[1:] if argv is None else argv)]
    args = parser().parse_args(words)
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        code = 130
    except ssl.SSLError as error:  # before ValueError: a failed verification is both
        code = _fail(f"TLS with the server at {args.server} failed: {error}")
    except ValueError as error:
        code = _fail(str(error))
    except GRPCError as error:
        needs_token = error.status is Status.UNAUTHENTICATED
        hint = "; give its token with --token or CHAT_TOKEN" if needs_token else ""
        code = _fail(
            f"the server answered {error.status.name}: {error.message or 'no details'}{hint}"
        )
    except (OSError, StreamTerminatedError) as error:
        code = _fail(f"cannot reach the server at {args.server}: {error or type(error).__name__}")
    sys.exit(code)


def _fail(reason: str) -> int:
    print(f"chat: {reason}", file=sys.stderr)
    return 1
