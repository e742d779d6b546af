"""Signed tokens, the service served in process as serve() serves it: the user is the token's
`sub`, its rooms are all it may use or see, and a token that fails says why."""

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from chat.contract import GET_MESSAGES, SEND_AND_RECEIVE, bearer
from chat.server.auth import JwtAuth
from chat.server.config import Settings
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessagesRequest,
    StatsReply,
    StatsRequest,
)
from harness import Chatter
from harness.tokens import AUDIENCE, ISSUER, SECRET, mint

Serve = Callable[[str, Settings], Awaitable[Channel]]
ACK, CHAT, ERROR = MessageReplyKind.ACK, MessageReplyKind.CHAT, MessageReplyKind.ERROR
ANN_ROOMS = ["general", "team-*"]


@pytest.fixture
async def signed(service_on: Serve, signed_settings: Settings) -> Channel:
    """The service on the memory store, asking for signed tokens."""
    return await service_on("memory://", signed_settings)


def stub(channel: Channel, token: str) -> ChatServiceStub:
    return ChatServiceStub(channel, timeout=10, metadata=bearer(token))


async def history(channel: Channel, token: str, **fields: Any) -> list[MessageReply]:
    request = MessagesRequest(**fields)
    return [reply async for reply in stub(channel, token).get_messages(request)]


async def refused(call: Awaitable[object]) -> GRPCError:
    with pytest.raises(GRPCError) as error:
        await call
    return error.value


BAD_TOKENS = {
    "missing": ({}, "no token"),
    "not-bearer": ({"authorization": mint()}, "malformed authorization metadata"),
    "expired": (bearer(mint(exp=int(time.time()) - 60)), "the token has expired"),
    "malformed": (bearer("not.a.token"), "malformed token"),
    "forged": (
        bearer(mint(secret="another-secret-of-the-same-length-signed-by-someone-else-0123456789")),
        "bad signature",
    ),
    "audience": (bearer(mint(aud="someone-else")), "wrong audience"),
    "issuer": (bearer(mint(iss="elsewhere")), "wrong issuer"),
    "no-exp": (bearer(mint(exp=None)), "no 'exp' claim"),
    "no-sub": (bearer(mint(user=None)), "no 'sub' claim"),
    "bad-sub": (bearer(mint(user="ann smith")), "sub is not a valid user"),
    "bad-rooms": (bearer(mint(rooms="general")), "'rooms' claim must be a list"),
    "algorithm": (bearer(mint(alg="HS512")), "algorithm is not accepted"),
    "exp-10^400": (bearer(mint(exp=10**400)), "'exp' claim is not a time: it is past the year"),
    "nbf-10^400": (bearer(mint(nbf=10**400)), "not valid yet"),
    "iat-10^400": (bearer(mint(iat=10**400)), "not valid yet"),
}


async def say(channel: Channel, metadata: dict[str, str], text: str) -> list[MessageReply]:
    """One chat call that sends `text` and half-closes; its replies."""
    async with channel.request(
        SEND_AND_RECEIVE,
        Cardinality.STREAM_STREAM,
        MessageRequest,
        MessageReply,
        metadata=metadata,
        timeout=10,
    ) as stream:
        await stream.send_message(MessageRequest(message=text), end=True)
        return [reply async for reply in stream]


@pytest.mark.parametrize("case", BAD_TOKENS, ids=list(BAD_TOKENS))
async def test_a_call_without_a_valid_token_is_unauthenticated_saying_what_is_wrong(
    signed: Channel, case: str
) -> None:
    metadata, reason = BAD_TOKENS[case]
    stats = await refused(ChatServiceStub(signed, metadata=metadata).get_stats(StatsRequest()))
    chat = await refused(say(signed, metadata, "let me in"))
    for error in (stats, chat):
        assert error.status is Status.UNAUTHENTICATED
        assert reason in (error.message or ""), error.message
    assert (await stub(signed, mint()).get_stats(StatsRequest())).num_messages == 0


async def test_the_user_is_the_tokens_sub_in_acks_presence_history_and_stats(
    signed: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, signed, token=mint("ann"))
        bob = await Chatter.open(stack, signed, token=mint("bob"), user="bob")
        ack = await ann.say("hello")
        assert (ack.user, (await bob.recv_kind(CHAT)).user) == ("ann", "ann")
        await bob.say("hi ann")
        stats = await stub(signed, mint("cid")).get_stats(StatsRequest(room="general"))
        assert stats.online == ["ann", "bob"]
    assert [(m.user, m.message) for m in await history(signed, mint("cid"))] == [
        ("ann", "hello"),
        ("bob", "hi ann"),
    ]


async def test_a_chat_user_other_than_the_tokens_sub_is_permission_denied(
    signed: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        impostor = await Chatter.open(stack, signed, token=mint("ann"), user="bob")
        error = await refused(impostor.recv())
    assert error.status is Status.PERMISSION_DENIED
    assert error.message == "chat-user 'bob' is not you: your token is for user 'ann'"


async def test_a_message_posted_as_someone_else_is_an_error_and_nothing_is_stored(
    signed: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, signed, token=mint("ann"))
        await ann.send("it was bob", user="bob")
        reply = await ann.recv()
        assert reply is not None and reply.kind == ERROR
        assert reply.message == "user 'bob' is not you: your token is for user 'ann'"
        assert (await ann.say("it was me", user="ann")).user == "ann"
    assert [m.message for m in await history(signed, mint())] == ["it was me"]


async def test_a_stream_opened_in_a_room_the_token_does_not_allow_is_permission_denied(
    signed: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, signed, token=mint("ann", ANN_ROOMS), room="secret")
        error = await refused(ann.recv())
        team = await Chatter.open(stack, signed, token=mint("ann", ANN_ROOMS), room="team-red")
        assert (await team.say("in my team")).room == "team-red"
    assert error.status is Status.PERMISSION_DENIED
    assert error.message == "your token does not allow room 'secret' (it allows: general, team-*)"


async def test_a_token_with_an_empty_rooms_list_may_use_no_room(signed: Channel) -> None:
    async with AsyncExitStack() as stack:
        nowhere = await Chatter.open(stack, signed, token=mint("ann", []))
        error = await refused(nowhere.recv())
    assert error.message == "your token does not allow room 'general' (it allows: none)"
    stats = await stub(signed, mint("ann", [])).get_stats(StatsRequest())
    assert (stats.num_messages, stats.num_rooms) == (0, 0)


async def test_posting_into_a_room_the_token_does_not_allow_is_an_error_and_not_stored(
    signed: Channel,
) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, signed, token=mint("ann", ANN_ROOMS))
        await ann.send("psst", room="secret")
        reply = await ann.recv()
        assert reply is not None and reply.kind == ERROR
        assert "your token does not allow room 'secret'" in reply.message
        assert (await ann.say("hello team", room="team-blue")).room == "team-blue"
    assert [m.room for m in await history(signed, mint())] == ["team-blue"]


async def test_reads_filtered_to_a_room_the_token_does_not_allow_are_permission_denied(
    signed: Channel,
) -> None:
    ann = mint("ann", ANN_ROOMS)
    errors = [
        await refused(stub(signed, ann).get_stats(StatsRequest(room="secret"))),
        await refused(history(signed, ann, room="secret")),
        await refused(history(signed, ann, room="secret", follow=True)),
    ]
    assert {error.status for error in errors} == {Status.PERMISSION_DENIED}
    assert all("does not allow room 'secret'" in (error.message or "") for error in errors)


async def post_everywhere(stack: AsyncExitStack, channel: Channel) -> Chatter:
    """eve chats in room secret (and stays), bob in general; admin posts in team-red. The
    stream left open is eve's."""
    eve = await Chatter.open(stack, channel, token=mint("eve"), user="eve", room="secret")
    await eve.say("secret 1")
    async with AsyncExitStack() as posts:
        bob = await Chatter.open(posts, channel, token=mint("bob"), user="bob")
        await bob.say("general 2")
        admin = await Chatter.open(posts, channel, token=mint("admin"), user="admin")
        await admin.say("team 3", room="team-red")
    await eve.say("secret 4")
    return eve


async def test_unfiltered_history_and_stats_show_nothing_of_rooms_the_token_does_not_allow(
    service_on: Serve, store_url: str, signed_settings: Settings
) -> None:
    channel = await service_on(store_url, signed_settings)
    ann = mint("ann", ANN_ROOMS)
    async with AsyncExitStack() as stack:
        await post_everywhere(stack, channel)
        readable = [(m.id, m.room) for m in await history(channel, ann)]
        assert readable == [(2, "general"), (3, "team-red")]
        assert [m.id for m in await history(channel, ann, limit=1)] == [3]
        assert [m.id for m in await history(channel, ann, after_id=2)] == [3]
        assert [m.id for m in await history(channel, ann, after_id=1, limit=5)] == [2, 3]
        mine: StatsReply = await stub(channel, ann).get_stats(StatsRequest())
        assert (mine.num_messages, mine.num_rooms, mine.num_connected, mine.online) == (2, 2, 0, [])
        every: StatsReply = await stub(channel, mint("admin")).get_stats(StatsRequest())
        assert (every.num_messages, every.num_rooms, every.online) == (4, 3, ["eve"])


async def test_following_every_room_shows_only_the_rooms_the_token_allows(
    service_on: Serve, store_url: str, signed_settings: Settings
) -> None:
    channel = await service_on(store_url, signed_settings)
    async with AsyncExitStack() as stack:
        eve = await post_everywhere(stack, channel)
        following = await stack.enter_async_context(
            channel.request(
                GET_MESSAGES,
                Cardinality.UNARY_STREAM,
                MessagesRequest,
                MessageReply,
                metadata=bearer(mint("ann", ANN_ROOMS)),
                timeout=10,
            )
        )
        await following.send_message(MessagesRequest(follow=True), end=True)

        async def next_id() -> int:
            reply = await following.recv_message()
            assert reply is not None
            return reply.id

        assert [await next_id(), await next_id()] == [2, 3]
        await eve.say("secret 5")
        async with AsyncExitStack() as posts:
            bob = await Chatter.open(posts, channel, token=mint("bob"), user="bob")
            await bob.say("general 6")
        assert await next_id() == 6
        await following.cancel()


async def test_a_token_that_lists_no_rooms_may_use_every_room(signed: Channel) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, signed, token=mint("ann"), room="anything")
        await ann.say("one")
        await ann.say("two", room="secret")
    stats = await stub(signed, mint("ann")).get_stats(StatsRequest(room="secret"))
    assert stats.num_messages == 1
    assert len(await history(signed, mint("ann"))) == 2


def test_a_token_verified_before_is_still_refused_once_it_expires_or_is_altered() -> None:
    auth = JwtAuth(SECRET.encode(), ["HS256"], AUDIENCE, ISSUER)
    expiry = int(time.time()) + 1
    token = mint("ann", exp=expiry)
    assert auth.check(bearer(token)).user == "ann"
    assert auth.check(bearer(token)).user == "ann"  # now from what was verified
    header, payload, _ = token.split(".")
    altered = f"{header}.{payload}.{'A' * 43}"
    with pytest.raises(GRPCError, match="bad signature"):
        auth.check(bearer(altered))
    time.sleep(max(0.0, expiry - time.time()))  # the behaviour under test: the clock passing exp
    with pytest.raises(GRPCError, match="the token has expired"):
        auth.check(bearer(token))
