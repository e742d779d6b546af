"""`chat messages`: the history once, or followed live for as long as the user wants, across
server restarts: a lost server is waited for and the reading resumes after the last id shown."""

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat.client import output
from gen.grpc.chat import ChatServiceStub, MessagesRequest, StatsRequest

RETRY_DELAY = 1.0
"""Seconds between tries to reach a lost server: a restart takes about one."""
PROBE_TIMEOUT = 5.0


async def print_messages(connect: Callable[[], Channel], args: argparse.Namespace) -> int:
    """Prints the history as asked; with --follow, keeps printing until interrupted."""
    show = output.message_json if args.json else output.message_line
    request = MessagesRequest(
        room=args.room, after_id=args.after, limit=args.limit, follow=args.follow
    )
    last_id = args.after
    while True:
        channel = connect()
        try:
            async for reply in ChatServiceStub(channel).get_messages(request):
                print(show(reply), flush=args.follow)
                last_id = max(last_id, reply.id)
            return 0
        except (OSError, StreamTerminatedError, GRPCError) as error:
            if not args.follow or not _lost(error):
                raise
        finally:
            channel.close()
        _tell(f"lost the server at {args.server}; following again once it is back (Ctrl-C stops)")
        await _until_back(connect, args.room)
        _tell(f"the server at {args.server} is back; following again after message {last_id}")
        request = MessagesRequest(room=args.room, after_id=last_id, follow=True)


def _lost(error: Exception) -> bool:
    """Whether the server went away (stopping, restarting, unreachable), not refused."""
    return not isinstance(error, GRPCError) or error.status is Status.UNAVAILABLE


async def _until_back(connect: Callable[[], Channel], room: str) -> None:
    """Returns once the server answers a stats call again."""
    while True:
        await asyncio.sleep(RETRY_DELAY)  # the pause between tries, not a synchronisation
        channel = connect()
        try:
            with contextlib.suppress(OSError, StreamTerminatedError, GRPCError):
                await ChatServiceStub(channel, timeout=PROBE_TIMEOUT).get_stats(
                    StatsRequest(room=room)
                )
                return
        finally:
            channel.close()


def _tell(line: str) -> None:
    print(f"chat: {line}", file=sys.stderr, flush=True)
