"""A call over a WebSocket as the README specifies it: metadata frame, binary messages, the
status in the close code; the same service as native gRPC streams."""

from contextlib import AsyncExitStack

import aiohttp
import pytest
from grpclib.client import Channel

from chat import contract
from chat.server.config import Settings
from chat.server.service import ChatService
from chat.server.web.app import start
from chat.server.web.cors import Origins
from chat.store.memory import MemoryStore
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    StatsRequest,
)
from harness import REPLY_TIMEOUT, Chatter, free_port

Socket = aiohttp.ClientWebSocketResponse


def _ws_url(web_url: str, method: str = contract.SEND_AND_RECEIVE) -> str:
    return web_url.replace("http://", "ws://") + method


async def _reply(socket: Socket) -> MessageReply:
    message = await socket.receive(timeout=REPLY_TIMEOUT)
    if message.type is aiohttp.WSMsgType.TEXT:  # the call's response metadata, before any reply
        assert message.data.startswith("chat-epoch: "), message
        message = await socket.receive(timeout=REPLY_TIMEOUT)
    assert message.type is aiohttp.WSMsgType.BINARY, message
    return MessageReply().parse(message.data)


async def _until_kind(socket: Socket, kind: int) -> MessageReply:
    while (reply := await _reply(socket)).kind != kind:
        assert reply.kind != MessageReplyKind.ERROR, reply
    return reply


async def _own(socket: Socket) -> MessageReply:
    """The next ACK or ERROR: what one of the socket's own messages got."""
    while (reply := await _reply(socket)).kind not in (
        MessageReplyKind.ACK,
        MessageReplyKind.ERROR,
    ):
        pass
    return reply


async def _close(socket: Socket) -> tuple[int | None, str]:
    """The close code and reason the server ended the call with."""
    message = await socket.receive(timeout=REPLY_TIMEOUT)
    while message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
        message = await socket.receive(timeout=REPLY_TIMEOUT)
    assert message.type is aiohttp.WSMsgType.CLOSE, message
    return socket.close_code, str(message.extra)


async def test_a_socket_and_a_native_grpc_stream_chat_both_ways_in_one_room(
    web_url: str, channel: Channel, http: aiohttp.ClientSession
) -> None:
    async with AsyncExitStack() as stack, http.ws_connect(_ws_url(web_url)) as socket:
        native = await Chatter.open(stack, channel, user="ann", room="dev")
        await socket.send_str("chat-user: bob\r\nchat-room: dev\r\n")
        assert (await native.recv_kind(MessageReplyKind.JOIN)).user == "bob"
        await socket.send_bytes(bytes(MessageRequest(message="from the web")))
        ack = await _until_kind(socket, MessageReplyKind.ACK)
        assert (ack.message, ack.user, ack.room) == (
            "Server Responding to from the web",
            "bob",
            "dev",
        )
        heard = await native.recv_kind(MessageReplyKind.CHAT)
        assert (heard.message, heard.user, heard.id) == ("from the web", "bob", ack.id)
        await native.say("from grpc")
        chat = await _until_kind(socket, MessageReplyKind.CHAT)
        assert (chat.message, chat.user) == ("from grpc", "ann")


async def test_the_first_frame_the_server_sends_is_the_calls_metadata_with_the_epoch(
    web_url: str, channel: Channel, http: aiohttp.ClientSession
) -> None:
    epoch = (await ChatServiceStub(channel).get_stats(StatsRequest())).epoch
    async with http.ws_connect(_ws_url(web_url)) as socket:
        await socket.send_str("chat-user: bob\r\n")
        first = await socket.receive(timeout=REPLY_TIMEOUT)
        assert (first.type, first.data) == (
            aiohttp.WSMsgType.TEXT,
            f"chat-epoch: {epoch}\r\nchat-features: {contract.OFFERED}\r\n",
        )


async def test_a_text_frame_half_closes_and_the_call_ends_with_4000_after_every_ack(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(_ws_url(web_url)) as socket:
        await socket.send_str("")
        for text in ("one", "two", "three"):
            await socket.send_bytes(bytes(MessageRequest(message=text)))
        await socket.send_str("end")
        acks = [(await _until_kind(socket, MessageReplyKind.ACK)).message for _ in range(3)]
        assert acks == [f"Server Responding to {text}" for text in ("one", "two", "three")]
        assert await _close(socket) == (4000, "")


async def test_resuming_after_an_id_replays_the_rest_of_the_room_first(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(_ws_url(web_url)) as socket:
        await socket.send_str("chat-user: ann\r\n")
        for text in ("one", "two", "three"):
            await socket.send_bytes(bytes(MessageRequest(message=text)))
        first = await _until_kind(socket, MessageReplyKind.ACK)
    async with http.ws_connect(_ws_url(web_url)) as socket:
        await socket.send_str(f"chat-user: bob\r\nchat-after-id: {first.id}\r\n")
        replayed = [(await _reply(socket)).message for _ in range(2)]
        assert replayed == ["two", "three"]


@pytest.mark.parametrize(
    ("first_frame", "then", "code", "says"),
    [
        (b"\x0a\x02hi", None, 4003, "the first frame must be text"),
        ("chat-user ann", None, 4003, "is not 'key: value'"),
        ("chat-user: no spaces", None, 4003, "user"),
        ("chat-after-id: soon", None, 4003, "is not a message id"),
        ("", b"\xff\xff", 4003, "not a valid MessageRequest"),
    ],
)
async def test_bad_input_closes_the_socket_with_4000_plus_a_status_that_says_why(
    web_url: str,
    http: aiohttp.ClientSession,
    first_frame: str | bytes,
    then: bytes | None,
    code: int,
    says: str,
) -> None:
    async with http.ws_connect(_ws_url(web_url)) as socket:
        if isinstance(first_frame, bytes):
            await socket.send_bytes(first_frame)
        else:
            await socket.send_str(first_frame)
        if then is not None:
            await socket.send_bytes(then)
        closed, reason = await _close(socket)
        assert closed == code
        assert says in reason


async def test_an_unknown_method_closes_with_unimplemented(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(_ws_url(web_url, "/grpc.chat.ChatService/Nothing")) as socket:
        assert await _close(socket) == (4012, "no method /grpc.chat.ChatService/Nothing")


async def test_closing_the_socket_cancels_the_call_and_its_user_leaves_the_room(
    web_url: str, channel: Channel, http: aiohttp.ClientSession
) -> None:
    async with AsyncExitStack() as stack:
        native = await Chatter.open(stack, channel, user="ann")
        async with http.ws_connect(_ws_url(web_url)) as socket:
            await socket.send_str("chat-user: bob\r\n")
            assert (await native.recv_kind(MessageReplyKind.JOIN)).user == "bob"
        assert (await native.recv_kind(MessageReplyKind.LEAVE)).user == "bob"


async def test_a_server_with_a_token_closes_a_socket_without_it_with_4016(
    http: aiohttp.ClientSession,
) -> None:
    service = ChatService(MemoryStore(), Settings(store="memory://", token="s3cret"))
    port = free_port()
    runner = await start(service, "127.0.0.1", port, Origins(()))
    url = f"ws://127.0.0.1:{port}{contract.SEND_AND_RECEIVE}"
    try:
        async with http.ws_connect(url) as socket:
            await socket.send_str("chat-user: ann\r\n")
            closed, reason = await _close(socket)
            assert closed == 4016 and "no token" in reason
        async with http.ws_connect(url) as socket:
            await socket.send_str("authorization: Bearer s3cret\r\n")
            await socket.send_bytes(bytes(MessageRequest(message="hi")))
            assert (await _until_kind(socket, MessageReplyKind.ACK)).id == 1
    finally:
        await runner.cleanup()


async def test_a_socket_from_another_origin_is_refused(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(_ws_url(web_url), headers={"Origin": "http://elsewhere.example"})
    assert refused.value.status == 403


async def test_each_socket_is_a_connection_of_its_own_to_flood_control(
    http: aiohttp.ClientSession,
) -> None:
    settings = Settings(store="memory://", rate_limit=0.001, rate_burst=3)
    service = ChatService(MemoryStore(), settings)
    port = free_port()
    runner = await start(service, "127.0.0.1", port, Origins(()))
    url = f"ws://127.0.0.1:{port}{contract.SEND_AND_RECEIVE}"
    try:
        async with http.ws_connect(url) as flooder:
            await flooder.send_str("")  # no metadata: a nameless client
            for number in range(6):  # a new name each message
                message = MessageRequest(message="x", user=f"user-{number}")
                await flooder.send_bytes(bytes(message))
            kinds = [(await _own(flooder)).kind for _ in range(6)]
            assert kinds == [MessageReplyKind.ACK] * 3 + [MessageReplyKind.ERROR] * 3
            async with http.ws_connect(url) as other:
                await other.send_str("")
                for number in range(3):
                    await other.send_bytes(bytes(MessageRequest(message=f"m{number}")))
                kinds = [(await _own(other)).kind for _ in range(3)]
                assert kinds == [MessageReplyKind.ACK] * 3
    finally:
        await runner.cleanup()
