"""`python -m chat.client` (console script `chat`): chat, stats and messages from a shell."""

import asyncio
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.events import SendRequest, listen
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat import contract
from chat.cli import Checked, fail_usage, one_line
from chat.client import output, values
from chat.client.history import print_messages
from chat.client.session import ChatSession
from chat.client.values import Options, split_address
from chat.contract import bearer
from chat.tasks import cancel_and_wait
from chat.tls import client_context
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    StatsRequest,
)

__all__ = ["command", "main", "split_address"]

PROG = "chat"
UNARY_TIMEOUT = 10.0
PIPE_RETRIES = 3
"""Failed connections in a row (about 3.5 s of backoff) after which piped chat gives up."""
TUTORIAL_FLAGS = {"--chat": "chat", "--get-stats": "stats", "--read-messages": "messages"}
CONNECTION = ("server", "token", "tls", "ca")
"""The flags every command takes as well, before or after its name."""


def _connection_options(*, top: bool) -> list[click.Parameter]:
    """--server, --token, --tls and --ca. On a command they default to None (False), so that one
    given after the command wins and one given before it is not undone."""
    return [
        click.Option(
            ["--server"],
            type=Checked(values.server_address, "HOST:PORT"),
            default=values.DEFAULT_SERVER if top else None,
            envvar="CHAT_SERVER" if top else None,
            metavar="HOST:PORT",
            help="the server (default: localhost:50051; env CHAT_SERVER)",
        ),
        click.Option(
            ["--token"],
            default="" if top else None,
            envvar="CHAT_TOKEN" if top else None,
            metavar="TOKEN",
            help="the server's token, sent as 'authorization: Bearer TOKEN' (env CHAT_TOKEN)",
        ),
        click.Option(["--tls"], is_flag=True, help="connect with TLS, trusting the system's CAs"),
        click.Option(
            ["--ca"],
            default="" if top else None,
            metavar="FILE",
            help="connect with TLS, trusting the CA certificates in FILE (PEM)",
        ),
    ]


def _options(name: str) -> Callable[..., Options]:
    """A command's callback: its flags, over the connection flags given before its name."""

    def options(**given: Any) -> Options:
        before = click.get_current_context().find_root().params
        connection = {key: before[key] if given[key] is None else given[key] for key in CONNECTION}
        connection["tls"] = before["tls"] or given["tls"]
        rest = {key: value for key, value in given.items() if key not in CONNECTION}
        return Options(name, **connection, **rest)

    return options


class _Commands(click.Group):
    """`chat`: a command is needed, and an unknown one is named with the ones there are."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            raise click.UsageError(
                f"COMMAND: {args[0]!r} is not one of {', '.join(self.commands)}", ctx
            )
        return super().resolve_command(ctx, args)


def _no_command(**connection: Any) -> None:
    """The group's own callback, before its command's: a usage error when there is none."""
    if click.get_current_context().invoked_subcommand is None:
        raise click.UsageError(f"a COMMAND is needed: {', '.join(COMMANDS)}")


def command() -> click.Group:
    """The client's commands; the tutorial's --chat/--get-stats/--read-messages are aliases."""
    top = _Commands(
        PROG,
        params=_connection_options(top=True),
        callback=_no_command,
        invoke_without_command=True,
        help="The grpc.chat command line client.",
    )
    top.add_command(
        click.Command(
            "chat",
            callback=_options("chat"),
            short_help="chat in a room (interactive on a terminal)",
            help="Chat in a room: on a terminal, interactively (/help lists the commands); from "
            "a pipe, each line is sent and every reply printed.",
            params=[
                click.Option(
                    ["--user"],
                    type=Checked(values.name, "USER"),
                    envvar="CHAT_USER",
                    metavar="USER",
                    help="your name in the room: 1-64 of A-Z a-z 0-9 _ . - (default: the user a "
                    "signed --token names, else your login name, or anonymous when it is not "
                    "such a name; env CHAT_USER)",
                ),
                click.Option(
                    ["--room"],
                    type=Checked(values.room, "ROOM"),
                    default=contract.DEFAULT_ROOM,
                    envvar="CHAT_ROOM",
                    metavar="ROOM",
                    help="the room to enter, or a direct conversation (@ann,bob); a room exists "
                    "once someone posts in it (default: general; env CHAT_ROOM)",
                ),
                *_connection_options(top=False),
            ],
        )
    )
    top.add_command(
        click.Command(
            "stats",
            callback=_options("stats"),
            help="message count and who is online",
            params=[
                click.Option(["--room"], default="", metavar="ROOM", help="one room's figures"),
                click.Option(["--json"], is_flag=True, help="one JSON object"),
                *_connection_options(top=False),
            ],
        )
    )
    top.add_command(
        click.Command(
            "messages",
            callback=_options("messages"),
            help="the history, oldest first",
            params=[
                click.Option(["--room"], default="", metavar="ROOM", help="only this room"),
                click.Option(
                    ["--after"],
                    type=Checked(values.message_id, "ID"),
                    default=0,
                    metavar="ID",
                    help="only after this id",
                ),
                click.Option(
                    ["--limit"],
                    type=Checked(values.limit, "N"),
                    default=0,
                    metavar="N",
                    help="only the newest N (0: all)",
                ),
                click.Option(
                    ["--follow"],
                    is_flag=True,
                    help="keep printing new messages, across server restarts, until Ctrl-C",
                ),
                click.Option(["--json"], is_flag=True, help="one JSON object per line"),
                *_connection_options(top=False),
            ],
        )
    )
    return top


def connector(args: Options) -> Callable[[], Channel]:
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


async def stats(channel: Channel, args: Options) -> int:
    reply = await ChatServiceStub(channel, timeout=UNARY_TIMEOUT).get_stats(
        StatsRequest(room=args.room)
    )
    lines = (
        [output.stats_json(reply, args.room)] if args.json else output.stats_lines(reply, args.room)
    )
    print(*lines, sep="\n")
    return 0


async def chat(channel: Channel, args: Options) -> int:
    user = args.user or values.token_user(args.token) or values.login_name()
    if sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        from chat.client.terminal import interactive

        return await interactive(connector(args), args.server, user, args.room)
    return await chat_from_pipe(connector(args), user, args.room)


async def messages(channel: Channel, args: Options) -> int:
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


async def run(args: Options) -> int:
    channel = connector(args)()
    try:
        return await COMMANDS[args.command](channel, args)
    finally:
        channel.close()


def parse(words: list[str]) -> Options:
    """What `words` ask for; a usage error is one line and exit code 2, --help exit code 0."""
    try:
        asked = command().main(words, prog_name=PROG, standalone_mode=False)
    except click.ClickException as error:
        fail_usage(PROG, one_line(error))
    if not isinstance(asked, Options):  # --help was printed: click's exit code
        sys.exit(asked)
    return asked


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point `chat`: a usage error is one line and exit code 2, a failure one line
    and exit code 1; Ctrl-C leaves `chat` and `messages --follow` with 0."""
    args = parse(
        [TUTORIAL_FLAGS.get(word, word) for word in (sys.argv[1:] if argv is None else argv)]
    )
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


def _unreachable(args: Options, error: Exception) -> str:
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
