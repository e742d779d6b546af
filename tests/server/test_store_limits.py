"""The service's limits on what it keeps and who may keep trying: rooms (--max-rooms, on every
store), failed authentications per address (--max-auth-failures, over gRPC and the web door,
never in the way of a right credential), and numeric metadata of any length."""

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat import contract
from chat.contract import bearer
from chat.server import tokens
from chat.server.config import Settings
from chat.server.refusals import Refused
from chat.server.service import ChatService
from chat.server.throttle import AuthFailures
from chat.store import Store, open_store
from gen.grpc.chat import ChatServiceStub, MessageReplyKind, StatsRequest
from harness import Chatter, RedisProcess, ServerProcess, grpc_web_body, grpc_web_reply, serving

Start = Callable[..., ServerProcess]
TOKEN = "s3cret-token"
SECRET = "a-secret-of-the-auth-tests-long-enough-for-hs256"


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A store of each kind: the service's limits hold on all of them."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
    else:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'chat.db'}"
    opened = await open_store(url)
    yield opened
    await opened.close()


async def test_a_message_for_a_new_room_past_max_rooms_gets_an_error_and_is_logged_once(
    store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    service = ChatService(store, dataclasses.replace(settings, max_rooms=2))
    async with serving(service) as channel, AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, room="a")
        await chatter.say("one")
        await chatter.say("two", room="b")
        for room in ("c", "d", "e"):
            await chatter.send("three", room=room)
            error = await chatter.recv()
            assert error is not None and error.kind == MessageReplyKind.ERROR
            assert "too many rooms" in error.message and "2 rooms at most" in error.message
        await chatter.say("four", room="a")  # rooms that have messages take more
        stats = await ChatServiceStub(channel).get_stats(StatsRequest())
    assert (stats.num_messages, stats.num_rooms) == (3, 2)
    assert service.refusals.counts[Refused.ROOMS] == 3
    lines = [r for r in caplog.records if "new rooms refused" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING


async def test_get_stats_counts_stored_rooms_and_listened_ones_each_once(
    store: Store, settings: Settings
) -> None:
    service = ChatService(store, settings)
    async with serving(service) as channel, AsyncExitStack() as stack:
        quiet = await Chatter.open(stack, channel, room="quiet")  # listened to, nothing stored
        chatter = await Chatter.open(stack, channel, room="a")
        await chatter.say("one")
        await chatter.say("two", room="b")
        assert not quiet.ended
        stats = await ChatServiceStub(channel).get_stats(StatsRequest())
    assert (stats.num_messages, stats.num_rooms) == (2, 3)


async def test_on_redis_new_rooms_and_stats_are_counted_without_reading_every_room_name(
    redis_server: RedisProcess, settings: Settings
) -> None:
    store = await open_store(redis_server.url)
    service = ChatService(store, dataclasses.replace(settings, max_rooms=1000))
    try:
        async with serving(service) as channel:
            async with AsyncExitStack() as stack:
                chatter = await Chatter.open(stack, channel)
                for n in range(50):
                    await chatter.say("hi", room=f"room-{n}")
            stats = await ChatServiceStub(channel).get_stats(StatsRequest())
    finally:
        await store.close()
    assert (stats.num_messages, stats.num_rooms) == (50, 50)
    commands = redis_server.info("commandstats")
    assert "cmdstat_smembers" not in commands, commands.get("cmdstat_smembers")
    assert "cmdstat_scard" in commands


@pytest.mark.parametrize("key", [contract.AFTER_ID, contract.EPOCH])
async def test_numeric_metadata_of_five_thousand_digits_is_invalid_and_not_echoed_whole(
    channel: Channel, key: str
) -> None:
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, **{key[5:].replace("-", "_"): "9" * 5000})
        with pytest.raises(GRPCError) as error:
            await chatter.recv()
    assert error.value.status is Status.INVALID_ARGUMENT
    assert "(5000 characters)" in (error.value.message or "")
    assert len(error.value.message or "") < 200


def test_auth_failures_block_an_address_for_the_rest_of_its_window_only() -> None:
    now = [100.0]
    failures = AuthFailures(3, 60.0, clock=lambda: now[0])
    for _ in range(2):
        failures.failed("10.0.0.1")
    assert not failures.blocked("10.0.0.1")
    now[0] += 30
    failures.failed("10.0.0.1")
    assert failures.blocked("10.0.0.1") == pytest.approx(30.0)
    assert not failures.blocked("10.0.0.2")  # other addresses are not held
    now[0] += 30
    assert not failures.blocked("10.0.0.1")  # the window began at the first failure
    failures.failed("10.0.0.1")
    assert not failures.blocked("10.0.0.1")  # a new window, with one failure in it


async def test_an_address_past_max_auth_failures_has_its_failures_exhausted_on_both_doors(
    server_process: Start, channel_to: Callable[..., Channel], http: aiohttp.ClientSession
) -> None:
    server = server_process("memory://", "--token", TOKEN, "--max-auth-failures", "3", web=True)
    channel = channel_to(server)
    statuses = [await _stats(channel, f"guess-{number}") for number in range(8)]
    assert statuses == [Status.UNAUTHENTICATED] * 3 + [Status.RESOURCE_EXHAUSTED] * 5
    with pytest.raises(GRPCError) as error:
        await ChatServiceStub(channel, metadata=bearer("guess"), timeout=10).get_stats(
            StatsRequest()
        )
    assert "try again in" in (error.value.message or "")
    assert await _stats(channel, TOKEN) is Status.OK  # the right token is let in all the same
    url = server.web_url + contract.GET_STATS
    for token, status in (("guess", Status.RESOURCE_EXHAUSTED), (TOKEN, Status.OK)):
        headers = {"Content-Type": "application/grpc-web+proto", **bearer(token)}
        body = grpc_web_body(bytes(StatsRequest()))
        async with http.post(url, data=body, headers=headers) as reply:
            _, trailers = grpc_web_reply(await reply.read())
        assert trailers["grpc-status"] == str(status.value)
    server.stop()
    log = server.log()
    assert log.count("failed authentications within 60 s") == 1, log


async def test_bad_signed_tokens_count_as_failures_of_their_address(settings: Settings) -> None:
    secret = "k" * 32
    limited = dataclasses.replace(settings, jwt_secret=secret, max_auth_failures=2)
    service = ChatService(await open_store("memory://"), limited)
    forged = tokens.mint(b"x" * 32, "HS256", "ann")  # signed with another key
    good = tokens.mint(secret.encode(), "HS256", "ann")
    async with serving(service) as channel:
        assert (await _stats(channel, good)) == Status.OK
        statuses = [await _stats(channel, token) for token in (forged, "not.a.jwt", good, forged)]
    assert statuses == [
        Status.UNAUTHENTICATED,
        Status.UNAUTHENTICATED,
        Status.OK,
        Status.RESOURCE_EXHAUSTED,
    ]
    assert service.refusals.counts[Refused.AUTH_FAILURES] == 1


@pytest.mark.parametrize("signed", [False, True], ids=["shared-token", "signed-token"])
async def test_a_valid_token_beside_a_wrong_token_attacker_on_its_address_is_answered(
    server_process: Start, channel_to: Callable[..., Channel], signed: bool
) -> None:
    if signed:
        server = server_process("memory://", "--jwt-secret", SECRET)
        good = tokens.mint(SECRET.encode(), "HS256", "ann")
    else:
        server = server_process("memory://", "--token", TOKEN)
        good = TOKEN
    guesses = itertools.count()

    async def guess(channel: Channel) -> Status:
        number = next(guesses)
        wrong = tokens.mint(b"x" * 32, "HS256", f"u{number}") if signed else f"guess-{number}"
        return await _stats(channel, wrong)

    attacker = channel_to(server)  # the same address as the honest client: 127.0.0.1
    while await guess(attacker) is not Status.RESOURCE_EXHAUSTED:
        pass  # past --max-auth-failures (20 a minute) before the honest client calls
    honest = channel_to(server)
    calls = 100
    done = asyncio.Event()

    async def attack() -> None:
        while not done.is_set():
            await asyncio.gather(*(guess(attacker) for _ in range(8)))

    attacking = asyncio.create_task(attack())
    try:
        statuses = [await _stats(honest, good, deadline=1.0) for _ in range(calls)]
    finally:
        done.set()
        await attacking
    assert statuses.count(Status.OK) >= 0.95 * calls, statuses


async def _stats(channel: Channel, token: str, deadline: float = 10.0) -> Status:
    """The status of a GetStats call made with `token`, within `deadline` seconds."""
    try:
        stub = ChatServiceStub(channel, metadata=bearer(token), timeout=deadline)
        await stub.get_stats(StatsRequest())
    except GRPCError as error:
        return error.status
    return Status.OK
