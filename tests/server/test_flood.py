"""Flood control: a token bucket per user, on every store; over the limit, an ERROR reply and
nothing stored, while the stream and the room go on."""

import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from grpclib.client import Channel

from chat.server.config import Settings
from chat.store.buckets import TokenBuckets
from gen.grpc.chat import ChatServiceStub, MessageReply, MessageReplyKind, StatsRequest
from harness import Chatter

Serve = Callable[[str, Settings], Awaitable[Channel]]
ACK, CHAT, ERROR = MessageReplyKind.ACK, MessageReplyKind.CHAT, MessageReplyKind.ERROR
SLOW = 0.001
"""Messages a second: one more every 1,000 s, so a test sees the burst and nothing refilled."""


async def test_a_user_over_the_limit_gets_slow_down_errors_while_the_room_chats_on(
    service_on: Serve, store_url: str, settings: Settings
) -> None:
    limited = dataclasses.replace(settings, rate_limit=SLOW, rate_burst=3)
    channel = await service_on(store_url, limited)
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann")
        bob = await Chatter.open(stack, channel, user="bob")
        for number in range(5):
            await ann.send(f"flood {number}")
        replies: list[MessageReply] = []
        while len(replies) < 5:
            reply = await ann.recv()
            assert reply is not None
            if reply.kind in (ACK, ERROR):
                replies.append(reply)
        assert [reply.kind for reply in replies] == [ACK, ACK, ACK, ERROR, ERROR]
        assert replies[3].message == (
            "slow down: ann may send 0.001 messages a second, 3 at once; this one was not stored"
        )
        assert (await bob.say("I can still talk")).kind == ACK
        assert (await ann.recv_kind(CHAT)).message == "I can still talk"  # ann's stream is open
    stats = await ChatServiceStub(channel, timeout=10).get_stats(StatsRequest())
    assert stats.num_messages == 4


async def test_a_limit_of_zero_lets_every_message_through(
    service_on: Serve, settings: Settings
) -> None:
    channel = await service_on("memory://", dataclasses.replace(settings, rate_limit=0))
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann")
        acks = [await ann.say(f"m{number}") for number in range(100)]
    assert [ack.id for ack in acks] == list(range(1, 101))


class Clock:
    """A clock a test moves by hand: the buckets' arithmetic, without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(clock)
    assert [buckets.take("ann", 2.0, 3) for _ in range(4)] == [True, True, True, False]
    assert buckets.take("bob", 2.0, 3)  # every user has a bucket of their own
    clock.now += 0.5  # one more token for ann
    assert [buckets.take("ann", 2.0, 3) for _ in range(2)] == [True, False]
    clock.now += 60  # full again, and no fuller than the burst
    assert [buckets.take("ann", 2.0, 3) for _ in range(4)] == [True, True, True, False]
