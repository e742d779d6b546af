"""What the client's tests share: posting as another user, with PostMessage."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from grpclib.client import Channel

from chat.client import split_address
from chat.contract import USER
from gen.grpc.chat import ChatServiceStub, MessageReply, MessageReplyKind, MessageRequest
from harness import ServerProcess

Post = Callable[..., int]


def _post(server: ServerProcess, user: str, room: str = "general", **fields: Any) -> int:
    """Posts one request as `user` with PostMessage; the id of what it stored."""

    async def posted() -> MessageReply:
        channel = Channel(*split_address(server.address))
        try:
            stub = ChatServiceStub(channel, timeout=10, metadata={USER: user})
            return await stub.post_message(MessageRequest(room=room, **fields))
        finally:
            channel.close()

    reply = asyncio.run(posted())
    assert reply.kind == MessageReplyKind.ACK, reply.message
    return reply.id


@pytest.fixture
def post() -> Post:
    """`post(server, user, room="general", message=..., action=..., target_id=...)`: one
    request stored as `user` (the test fails on its refusal); the id it was stored under."""
    return _post
