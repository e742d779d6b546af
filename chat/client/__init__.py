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

from chat import contract
from chat.cli import Parser
from chat.client import output, values
from chat.client.history import print_messages
from chat.client.session import ChatSession
from chat.client.values import split_address
from chat.contract import bearer
from chat.tasks import cancel_and_wait
from chat.tls import client_context
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    StatsRequest,
)

__all__ = ["main", "parser", "split_address"]

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
        type=values.server_address,
        default=default(env("CHAT_SERVER", "localhost:50051")),
        metavar="HOST:PORT",
        help="the server (default: localhost:50051; env CHAT_SERVER)",
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


def parser() -> Parser:
    """The client's commands; the tutorial's --chat/--get-stats/--read-messages are aliases."""
    top = Parser(prog="chat", description="The grpc.chat command line client.")
    _common(top, top=True)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chat = commands.add_parser(
        "chat",
        help="chat in a room (interactive on a terminal)",
        description="Chat in a room: on a terminal, interactively (/help lists the commands); "
        "from a pipe, each line is sent and every reply printed.",
    )
    chat.add_argument(
        "--user",
        type=values.name,
        default=os.environ.get("CHAT_USER") or None,
        help="your name in the room: 1-64 of A-Z a-z 0-9 _ . - (default: the user a signed "
        "--token names, else your login name, or anonymous when it is not such a name; "
        "env CHAT_USER)",
    )
    chat.add_argument(
        "--room",
        type=values.room,
        default=os.environ.get("CHAT_ROOM") or contract.DEFAULT_ROOM,
        help="the room to enter, or a direct conversation (@ann,bob); a room exists once someone "
        "posts in it (default: general; env CHAT_ROOM)",
    )
    stats = commands.add_parser("stats", help="message count and who is online")
    stats.add_argument("--room", default="", help="one room's figures")
    stats.add_argument("--json", action="store_true", help="one JSON object")
    messages = commands.add_parser("messages", help="the history, oldest first")
    messages.add_argument("--room", default="", help="only this room")
    messages.add_argument(
        "--after", type=values.message_id, default=0, metavar="ID", help="only after this id"
    )
    messages.add_argument(
        "--limit", type=values.limit, default=0, metavar="N", help="only the newest N (0: all)"
    )
    messages.add_argument(
        "--follow",
        action="store_true",
        help="keep printing new messages, across server restarts, until Ctrl-C",
    )
    messages.add_argument("--json", action="store_true", help="one JSON object per line")
    for command in (chat, stats, messages):
        _common(command, top=False)
    return top


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


async def chat(channel: Channel, args: argparse.Namespace) -> int:
    user = args.user or values.token_user(args.token) or values.login_name()
    if sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        from chat.client.terminal import interactive

        return await interactive(connector(args), args.server, user, args.room)
    return await chat_from_pipe(connector(args), user, args.room)


async def messages(channel: Channel, args: argparse.Namespace) -> int:
    return await print_messages(connector(args), args)


def _show_reply(reply: MessageReply) -> None:
    if reply.kind is MessageReplyKind.ERROR:
        print(output.message_line(reply), file=sys.stderr, flush=True)
    else:
        print(output.message_line(reply), flush=True)


def _show_status(text: str) -> None:
    """What the session says (only ever about an outage), on stderr: stdout stays the
    tutorial's."""
    print(f"chat: {output.inert(text)}", file=sys.stderr, flush=True)


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
    """Console entry point `chat`: a usage error is one line and exit code 2, a failure one line
    and exit code 1; Ctrl-C leaves `chat` and `messages --follow` with 0."""
    words = [TUTORIAL_FLAGS.get(word, word) for word in (sys.argv[1:] if argv is None else argv)]
    commands = parser()
    args = commands.parse_strictly(words)
    if args.command is None:
        commands.error(f"a COMMAND is needed: {', '.join(COMMANDS)}")
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        leaving = args.command == "chat" or (args.command == "messages" and args.follow)
        code = 0 if leaving else 130
    except ssl.SSLError as error:  # before ValueError: a failed verification is both
        code = _fail(f"TLS with the server at {args.server} failed: {error}")
    except ValueError as error:
        code = _fail(str(error))
    except GRPCError as error:
        code = _fail(_refusal(error))
    except (OSError, StreamTerminatedError) as error:
        code = _fail(_unreachable(args, error))
    sys.exit(code)


def _unreachable(args: argparse.Namespace, error: Exception) -> str:
    """Why the server could not be reached, with a hint when it may be speaking TLS."""
    reason = f"cannot reach the server at {args.server}: {error or type(error).__name__}"
    if isinstance(error, StreamTerminatedError) and not (args.tls or args.ca):
        reason += "; if the server serves TLS, add --tls (or --ca FILE)"
    return reason


def _refusal(error: GRPCError) -> str:
    """A status in plain words; the two about tokens say what they mean and what to do."""
    details = error.message or "no details"
    if error.status is Status.UNAUTHENTICATED:
        return (
            f"the server does not know who you are (UNAUTHENTICATED: {details}); "
            "give a valid token with --token or CHAT_TOKEN"
        )
    if error.status is Status.PERMISSION_DENIED:
        return f"your token does not allow this (PERMISSION_DENIED: {details})"
    return f"the server answered {error.status.name}: {details}"


def _fail(reason: str) -> int:
    """Exit code 1 after the reason, which may quote the server."""
    print(f"chat: {output.inert(reason)}", file=sys.stderr)
    return 1
