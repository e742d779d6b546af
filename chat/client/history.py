"""`chat messages`: the history once, or followed live for as long as the user wants, across
server restarts: a lost server is waited for and the reading resumes after the last id shown, in
the same history (`chat-epoch`); a history replaced meanwhile is printed from its start.

Lines show the messages as they are now (edited text, deleted ones left out); `--json` is the log
itself, for programs: every entry, edits, deletes, reactions and topics included, as asked for
with `chat-features`."""

import asyncio
import contextlib
import sys
from collections.abc import Callable

from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat import contract
from chat.client import output
from chat.client.session import epoch_of
from chat.client.values import Options
from gen.grpc.chat import ChatServiceStub, MessageReply, MessagesRequest, StatsRequest

RETRY_DELAY = 1.0
"""Seconds between tries to reach a lost server: a restart takes about one."""
PROBE_TIMEOUT = 5.0


async def print_messages(connect: Callable[[], Channel], args: Options) -> int:
    """Prints the history as asked; with --follow, keeps printing until interrupted."""
    show = output.message_json if args.json else output.message_line
    request = MessagesRequest(
        room=args.room, after_id=args.after, limit=args.limit, follow=args.follow
    )
    last_id, epoch = args.after, ""
    asked = {contract.FEATURES: contract.OFFERED} if args.json else {}
    while True:
        channel = connect()
        try:
            stream = channel.request(
                contract.GET_MESSAGES,
                Cardinality.UNARY_STREAM,
                MessagesRequest,
                MessageReply,
                metadata={**asked, contract.EPOCH: epoch} if epoch else asked,
            )
            async with stream:
                await stream.send_message(request, end=True)
                await stream.recv_initial_metadata()
                theirs = epoch_of(stream)
                if epoch and theirs is not None and theirs != epoch:  # replaced by a restart
                    _tell(f"the server at {args.server} has a new history; printing it all")
                    last_id = 0
                epoch = theirs or epoch
                async for reply in stream:
                    if reply.id and reply.id <= last_id:
                        continue  # printed before the server was lost
                    print(show(reply), flush=args.follow)
                    last_id = max(last_id, reply.id)
            return 0
        except (OSError, StreamTerminatedError, GRPCError) as error:
            if not args.follow or not _lost(error):
                raise
        finally:
            channel.close()
        _tell(f"lost the server at {args.server}; following again once it is back (Ctrl-C stops)")
        back = await _until_back(connect, args.room)
        if epoch and back and back != epoch:
            _tell(f"the server at {args.server} is back with a new history; printing it all")
            last_id, epoch = 0, back
        else:
            _tell(f"the server at {args.server} is back; following again after message {last_id}")
        request = MessagesRequest(room=args.room, after_id=last_id, follow=True)


def _lost(error: Exception) -> bool:
    """Whether the server went away (stopping, restarting, unreachable), not refused."""
    return not isinstance(error, GRPCError) or error.status is Status.UNAVAILABLE


async def _until_back(connect: Callable[[], Channel], room: str) -> str:
    """Once the server answers a stats call again, its epoch ('' from one without epochs)."""
    while True:
        await asyncio.sleep(RETRY_DELAY)  # the pause between tries, not a synchronisation
        channel = connect()
        try:
            with contextlib.suppress(OSError, StreamTerminatedError, GRPCError):
                stats = await ChatServiceStub(channel, timeout=PROBE_TIMEOUT).get_stats(
                    StatsRequest(room=room)
                )
                return stats.epoch
        finally:
            channel.close()


def _tell(line: str) -> None:
    print(f"chat: {line}", file=sys.stderr, flush=True)
