"""`python -m chat.client` (console script `chat`): chat, stats and messages from a shell."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat import output
from chat.streams import raise_status
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessagesRequest,
    StatsRequest,
)

BIDI_PATH = "/grpc.chat.ChatService/SendAndReceiveMessage"
UNARY_TIMEOUT = 10.0
TUTORIAL_FLAGS = {"--chat": "chat", "--get-stats": "stats", "--read-messages": "messages"}


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On subcommands the default is suppressed so `--server` works before or after the command.
    default = os.environ.get("CHAT_SERVER", "localhost:50051") if top else argparse.SUPPRESS
    parser.add_argument("--server", default=default, help="HOST:PORT (env CHAT_SERVER)")


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
    async for reply in ChatServiceStub(channel).get_messages(request):
        print(show(reply), flush=args.follow)
    return 0


async def chat(channel: Channel, args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        from chat.terminal import interactive

        host, port = split_address(args.server)
        return await interactive(lambda: Channel(host, port), args.user, args.room)
    return await chat_from_pipe(channel, args.user, args.room)


async def chat_from_pipe(channel: Channel, user: str, room: str) -> int:
    """Sends each input line, prints every reply; 0 at end of input unless a line was refused."""
    metadata = {"chat-user": user, "chat-room": room}
    refused = 0
    async with channel.request(
        BIDI_PATH, Cardinality.STREAM_STREAM, MessageRequest, MessageReply, metadata=metadata
    ) as stream:
        await stream.send_request()

        async def show_replies() -> None:
            nonlocal refused
            async for reply in stream:
                if reply.kind is MessageReplyKind.ERROR:
                    refused += 1
                    print(output.message_line(reply), file=sys.stderr, flush=True)
                else:
                    print(output.message_line(reply), flush=True)

        printer = asyncio.create_task(show_replies())
        try:
            while line := await asyncio.to_thread(sys.stdin.readline):
                if printer.done():
                    break
                if text := line.rstrip("\r\n"):
                    await stream.send_message(MessageRequest(message=text))
            if printer.done():  # the server ended the call early: say why
                raise_status(stream)
                await stream.cancel()
            else:
                await stream.end()
            await printer
        finally:
            printer.cancel()
    return 1 if refused else 0


COMMANDS = {"chat": chat, "stats": stats, "messages": messages}


async def run(args: argparse.Namespace) -> int:
    host, port = split_address(args.server)
    channel = Channel(host, port)
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
    except ValueError as error:
        code = _fail(str(error))
    except GRPCError as error:
        code = _fail(f"the server answered {error.status.name}: {error.message or 'no details'}")
    except (OSError, StreamTerminatedError) as error:
        code = _fail(f"cannot reach the server at {args.server}: {error or type(error).__name__}")
    sys.exit(code)


def _fail(reason: str) -> int:
    print(f"chat: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
