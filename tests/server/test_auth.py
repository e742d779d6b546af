"""--token: every chat call needs `authorization: Bearer <token>`, over TCP to a real server."""

from collections.abc import AsyncIterator, Callable

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from chat.client import split_address
from chat.contract import SEND_AND_RECEIVE as BIDI
from chat.contract import bearer
from gen.grpc.chat import ChatServiceStub, MessageReply, MessageRequest, StatsRequest
from harness import ServerProcess, run_client

Start = Callable[..., ServerProcess]
TOKEN = "s3cret-token"
NOT_THE_TOKEN = [{}, bearer("wrong"), bearer(TOKEN + "x"), {"authorization": TOKEN}]


@pytest.fixture
async def guarded(server_process: Start) -> AsyncIterator[tuple[ServerProcess, Channel]]:
    server = server_process("memory://", "--token", TOKEN)
    channel = Channel(*split_address(server.address))
    yield server, channel
    channel.close()


async def say(channel: Channel, metadata: dict[str, str], text: str) -> list[str]:
    """One SendAndReceiveMessage call that sends `text` and half-closes; the replies' texts."""
    async with channel.request(
        BIDI, Cardinality.STREAM_STREAM, MessageRequest, MessageReply, metadata=metadata, timeout=10
    ) as stream:
        await stream.send_message(MessageRequest(message=text), end=True)
        return [reply.message async for reply in stream]


async def count(channel: Channel) -> int:
    stub = ChatServiceStub(channel, timeout=10, metadata=bearer(TOKEN))
    return (await stub.get_stats(StatsRequest())).num_messages


@pytest.mark.parametrize("metadata", NOT_THE_TOKEN, ids=["none", "wrong", "longer", "no-bearer"])
async def test_a_call_without_the_token_is_unauthenticated_and_nothing_is_stored(
    guarded: tuple[ServerProcess, Channel], metadata: dict[str, str]
) -> None:
    _, channel = guarded
    with pytest.raises(GRPCError) as error:
        await say(channel, metadata, "let me in")
    assert error.value.status is Status.UNAUTHENTICATED
    with pytest.raises(GRPCError) as error:
        await ChatServiceStub(channel, timeout=10, metadata=metadata).get_stats(StatsRequest())
    assert error.value.status is Status.UNAUTHENTICATED
    assert await count(channel) == 0


async def test_a_call_with_the_token_is_served(guarded: tuple[ServerProcess, Channel]) -> None:
    _, channel = guarded
    assert await say(channel, bearer(TOKEN), "hello") == ["Server Responding to hello"]
    assert await count(channel) == 1


def test_the_client_sends_its_token_from_the_flag_or_the_environment(
    guarded: tuple[ServerProcess, Channel],
) -> None:
    server, _ = guarded
    chat = run_client(["--server", server.address, "--token", TOKEN, "chat"], "one\n")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout == "Server Responding to one\n"
    stats = run_client(["stats", "--server", server.address], env={"CHAT_TOKEN": TOKEN})
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.splitlines()[0] == "Server has 1 messages"


@pytest.mark.parametrize("command", [["stats"], ["messages"], ["chat"]])
@pytest.mark.parametrize("token", [[], ["--token", "wrong"]], ids=["no-token", "wrong-token"])
def test_the_client_without_the_token_says_so_in_one_line_and_exits_1(
    guarded: tuple[ServerProcess, Channel], command: list[str], token: list[str]
) -> None:
    server, _ = guarded
    result = run_client(["--server", server.address, *token, *command], "hello\nagain\n")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("chat: the server does not know who you are (UNAUTHENTICATED: ")
    assert result.stderr.rstrip().endswith("give a valid token with --token or CHAT_TOKEN")
