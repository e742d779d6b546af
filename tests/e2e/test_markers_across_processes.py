"""Read markers across server processes: a READ on one replica reaches the reader's stream on
the other (and not another user's), and markers and unread counts outlive a server restart."""

import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from grpclib.client import Channel

from gen.grpc.chat import (
    ChatServiceStub,
    MessageReplyKind,
    MessageRequest,
    MessageRequestAction,
    RoomsRequest,
    StatsRequest,
)
from harness import Chatter, ServerProcess

Start = Callable[..., ServerProcess]
Connect = Callable[[ServerProcess], Channel]
Kind = MessageReplyKind
READ = MessageRequestAction.READ


async def places(channel: Channel, user: str) -> dict[str, tuple[int, int]]:
    """Each listed room's (read_id, unread) for `user`."""
    stub = ChatServiceStub(channel, timeout=10, metadata={"chat-user": user})
    return {
        room.name: (room.read_id, room.unread)
        for room in (await stub.list_rooms(RoomsRequest())).rooms
    }


async def test_a_read_on_one_replica_reaches_the_readers_stream_on_the_other_and_no_one_else(
    server_process: Start, redis_url: str, channel_to: Connect
) -> None:
    first, second = server_process(redis_url), server_process(redis_url)
    async with AsyncExitStack() as stack:
        ann_a = await Chatter.open(stack, channel_to(first), user="ann", room="r", features="read")
        ann_b = await Chatter.open(stack, channel_to(second), user="ann", room="r", features="read")
        bob = await Chatter.open(stack, channel_to(second), user="bob", room="r", features="read")
        stats = ChatServiceStub(channel_to(first))
        while (await stats.get_stats(StatsRequest(room="r"))).num_connected < 3:
            pass  # each round trip gives the replicas time to take the streams
        hello = (await bob.say("hello")).id
        await ann_a.send("", action=READ, target_id=hello)
        await ann_a.recv_kind(Kind.ACK)
        read = await ann_b.recv_kind(Kind.READ)
        assert (read.user, read.target_id) == ("ann", hello)
        await ann_a.send("after")  # after the READ on every replica: bob would have it first
        kinds_seen_by_bob = []
        while (reply := await bob.recv()) is not None and reply.message != "after":
            kinds_seen_by_bob.append(reply.kind)
        assert reply is not None and Kind.READ not in kinds_seen_by_bob
    assert await places(channel_to(second), "ann") == {"r": (hello, 0)}
    assert await places(channel_to(first), "bob") == {"r": (0, 1)}


async def test_markers_and_unread_counts_are_the_same_after_a_server_restart(
    server_process: Start, channel_to: Connect, tmp_path: Path
) -> None:
    server = server_process(f"sqlite:///{tmp_path / 'chat.db'}")
    channel = channel_to(server)

    async def post(user: str, **fields: object) -> int:
        stub = ChatServiceStub(channel, timeout=10, metadata={"chat-user": user})
        reply = await stub.post_message(MessageRequest(room="r", **fields))  # type: ignore[arg-type]
        assert reply.kind == Kind.ACK, reply
        return reply.id

    first = await post("bob", message="one")
    await post("bob", message="two")
    await post("ann", message="mine")
    await post("ann", action=READ, target_id=first)
    before = {user: await places(channel, user) for user in ("ann", "bob")}
    assert before == {"ann": {"r": (first, 1)}, "bob": {"r": (0, 1)}}
    server.stop(signal.SIGKILL)
    server.start()
    channel = channel_to(server)
    assert {user: await places(channel, user) for user in ("ann", "bob")} == before
