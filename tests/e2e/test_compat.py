"""Clients of the tutorial's protocol keep working: a grpcio client generated from its proto."""

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.tutorial import generate
from chat.contract import GET_MESSAGES, GET_STATS, SEND_AND_RECEIVE
from gen.grpc.chat import MessageReply, MessageRequest, MessagesRequest, StatsReply, StatsRequest
from harness import ServerProcess


def test_a_tutorial_grpcio_client_gets_the_tutorials_behaviour(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    pb2, pb2_grpc = generate(tmp_path)
    server = server_process()
    with grpc.insecure_channel(server.address) as channel:
        stub: Any = pb2_grpc.ChatServiceStub(channel)
        requests = (pb2.MessageRequest(message=text) for text in ("one", "two", "three"))
        replies = [reply.message for reply in stub.SendAndReceiveMessage(requests, timeout=10)]
        assert replies == [
            "Server Responding to one",
            "Server Responding to two",
            "Server Responding to three",
        ]
        assert stub.GetStats(pb2.EmptyRequest(), timeout=10).num_messages == 3
        history = [r.message for r in stub.GetMessages(pb2.EmptyRequest(), timeout=10)]
        assert history == ["one", "two", "three"]


REFUSED_CALLS = 400
"""Calls refused at their open per case, 200 at a time: enough to meet the race."""
REFUSALS = {
    "bad-room": ((), (("chat-room", "no room!"),), {"INVALID_ARGUMENT"}, False),
    "bad-after-id": ((), (("chat-after-id", "soon"),), {"INVALID_ARGUMENT"}, False),
    "no-token": (("--token", "s3cret"), (), {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}, True),
    "shared-token-wrong": (
        ("--token", "s3cret", "--max-auth-failures", "5"),
        (("authorization", "Bearer wrong"),),
        {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"},
        True,
    ),
}
"""Server flags, the call's metadata, the statuses the refusal may end with, and whether
GetMessages is refused too (the chat-* metadata concern the chat stream only)."""


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_a_grpcio_client_writing_at_once_reads_the_status_of_a_call_refused_at_its_open(
    server_process: Callable[..., ServerProcess], case: str
) -> None:
    """grpcio's client sends its first message as the call opens; a status that comes while that
    write is under way would reach it as INTERNAL ("Internal error from Core")."""
    flags, metadata, expected, follows_refused = REFUSALS[case]
    server = server_process("memory://", *flags)
    statuses: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(server.address) as channel:
        chat = channel.stream_stream(
            SEND_AND_RECEIVE, request_serializer=bytes, response_deserializer=MessageReply.parse
        )
        follow = channel.unary_stream(
            GET_MESSAGES, request_serializer=bytes, response_deserializer=MessageReply.parse
        )
        # One call first: a burst opened before the server's SETTINGS arrive may pass its limit
        # of open streams, and the streams past it are refused (REFUSED_STREAM) by HTTP/2, not
        # by the service; the burst under test is of calls the service refuses.
        stats = channel.unary_unary(
            GET_STATS, request_serializer=bytes, response_deserializer=StatsReply.parse
        )
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stats(StatsRequest(), timeout=20)
        gate = asyncio.Semaphore(REFUSED_CALLS // 2)

        async def refused(n: int) -> None:
            async with gate:
                try:
                    if n % 4 or not follows_refused:
                        call = chat(metadata=metadata, timeout=20)
                        await call.write(MessageRequest(message="hello"))
                        async for _ in call:
                            pass
                    else:
                        async for _ in follow(MessagesRequest(), metadata=metadata, timeout=20):
                            pass
                except grpc.aio.AioRpcError as error:
                    statuses[error.code().name] += 1
                else:
                    statuses["OK"] += 1

        await asyncio.gather(*(refused(n) for n in range(REFUSED_CALLS)))
    assert set(statuses) <= expected, statuses
