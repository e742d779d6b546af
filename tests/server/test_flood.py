"""Flood control: a token bucket per user, on every store, and without signed tokens one per
connection and per client address too; over a limit, an ERROR reply and nothing stored, while
the stream and the room go on."""

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from grpclib.client import Channel

from chat.contract import bearer
from chat.server import tokens
from chat.server.config import Settings
from chat.store.buckets import TokenBuckets
from gen.grpc.chat import ChatServiceStub, MessageReply, MessageReplyKind, StatsRequest
from harness import Chatter

Serve = Callable[[str, Settings], Awaitable[Channel]]
ServePort = Callable[[str, Settings], Awaitable[int]]
ACK, CHAT, ERROR = MessageReplyKind.ACK, MessageReplyKind.CHAT, MessageReplyKind.ERROR
SLOW = 0.001
"""Messages a second: one more every 1,000 s, so a test sees the burst and nothing refilled."""
SECRET = "a-secret-of-the-flood-tests-long-enough-for-hs256"
DEFAULTS = Settings()
"""The flood control a server has unless told otherwise: 10 a second, 20 at once."""


async def own_replies(chatter: Chatter, count: int) -> list[MessageReply]:
    """The next `count` ACK and ERROR replies of the stream: what its own messages got."""
    replies: list[MessageReply] = []
    while len(replies) < count:
        reply = await chatter.recv()
        assert reply is not None
        if reply.kind in (ACK, ERROR):
            replies.append(reply)
    return replies


async def post(chatter: Chatter, count: int, **fields: str) -> list[MessageReply]:
    """Sends `count` messages, then reads what each got."""
    for number in range(count):
        await chatter.send(f"m{number}", **fields)
    return await own_replies(chatter, count)


def connect(stack: AsyncExitStack, port: int) -> Channel:
    """A channel of its own: a new connection, from a new port of 127.0.0.1."""
    channel = Channel("127.0.0.1", port)
    stack.callback(channel.close)
    return channel


async def test_a_signed_user_over_the_limit_gets_slow_down_errors_while_the_room_chats_on(
    service_on: Serve, store_url: str, settings: Settings
) -> None:
    signed = dataclasses.replace(settings, rate_limit=SLOW, rate_burst=3, jwt_secret=SECRET)
    channel = await service_on(store_url, signed)
    ann_token, bob_token = (tokens.mint(SECRET.encode(), "HS256", user) for user in ("ann", "bob"))
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, token=ann_token)
        bob = await Chatter.open(stack, channel, token=bob_token)  # the same connection
        replies = await post(ann, 5)
        assert [reply.kind for reply in replies] == [ACK, ACK, ACK, ERROR, ERROR]
        assert replies[3].message == (
            "slow down: ann may send 0.001 messages a second, 3 at once; this one was not stored"
        )
        # A signed user's bucket is the user's, not the connection's: bob has his own.
        assert (await bob.say("I can still talk")).kind == ACK
        assert (await ann.recv_kind(CHAT)).message == "I can still talk"  # ann's stream is open
    stats = await ChatServiceStub(channel, timeout=10, metadata=bearer(bob_token)).get_stats(
        StatsRequest()
    )
    assert stats.num_messages == 4


async def test_without_tokens_a_claimed_name_has_one_bucket_over_all_its_connections(
    port_on: ServePort, store_url: str, settings: Settings
) -> None:
    port = await port_on(store_url, dataclasses.replace(settings, rate_limit=SLOW, rate_burst=3))
    async with AsyncExitStack() as stack:
        first = await Chatter.open(stack, connect(stack, port), user="ann")
        second = await Chatter.open(stack, connect(stack, port), user="ann")
        replies = await post(first, 2) + await post(second, 2)
    assert [reply.kind for reply in replies] == [ACK, ACK, ACK, ERROR]
    assert replies[3].message.startswith("slow down: ann may send 0.001 messages a second")


async def test_a_stream_that_claims_a_new_name_each_message_stores_no_more_than_one_user_may(
    service_on: Serve, settings: Settings
) -> None:
    limited = dataclasses.replace(
        settings, rate_limit=DEFAULTS.rate_limit, rate_burst=DEFAULTS.rate_burst
    )
    channel = await service_on("memory://", limited)
    started = time.monotonic()
    replies: list[MessageReply] = []
    async with AsyncExitStack() as stack:
        flooder = await Chatter.open(stack, channel)
        for batch in range(20):
            for number in range(50):
                await flooder.send("x", user=f"user-{batch}-{number}")
            replies += await own_replies(flooder, 50)
    seconds = time.monotonic() - started
    stored = [reply for reply in replies if reply.kind == ACK]
    assert DEFAULTS.rate_burst <= len(stored) <= DEFAULTS.rate_burst + DEFAULTS.rate_limit * seconds
    refused = {reply.message for reply in replies if reply.kind == ERROR}
    assert refused == {
        "slow down: this connection may send 10 messages a second, 20 at once; "
        "this one was not stored"
    }
    stats = await ChatServiceStub(channel, timeout=10).get_stats(StatsRequest())
    assert stats.num_messages == len(stored)


async def test_two_nameless_clients_beside_a_nameless_flooder_get_their_messages_stored(
    port_on: ServePort, settings: Settings
) -> None:
    limited = dataclasses.replace(
        settings, rate_limit=DEFAULTS.rate_limit, rate_burst=DEFAULTS.rate_burst
    )
    port = await port_on("memory://", limited)
    async with AsyncExitStack() as stack:
        flooder = await Chatter.open(stack, connect(stack, port))
        await post(flooder, 200)  # its bucket is empty now, as a shared `anonymous` one would be
        tutorials = [await Chatter.open(stack, connect(stack, port)) for _ in range(2)]
        _, *answered = await asyncio.gather(
            post(flooder, 200), *(post(tutorial, 20) for tutorial in tutorials)
        )
    stored = [sum(reply.kind == ACK for reply in replies) for replies in answered]
    assert min(stored) >= 18, stored


async def test_the_connections_of_one_address_share_its_bucket(
    port_on: ServePort, settings: Settings
) -> None:
    limited = dataclasses.replace(
        settings, rate_limit=SLOW, rate_burst=2, rate_per_connection=1, rate_per_address=2
    )
    port = await port_on("memory://", limited)
    kinds: list[list[int]] = []
    async with AsyncExitStack() as stack:
        for connection in range(4):
            chatter = await Chatter.open(stack, connect(stack, port))
            replies = [await post(chatter, 1, user=f"user-{connection}-{n}") for n in range(2)]
            kinds.append([reply.kind for [reply] in replies])
            if connection == 2:
                assert replies[0][0].message == (
                    "slow down: 127.0.0.1 (all its connections) may send 0.002 messages a "
                    "second, 4 at once; this one was not stored"
                )
    assert kinds == [[ACK, ACK], [ACK, ACK], [ERROR, ERROR], [ERROR, ERROR]]


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
