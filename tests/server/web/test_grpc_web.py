"""gRPC-Web as PROTOCOL-WEB.md has it: the three methods of the same service, over POST."""

import asyncio
import base64
import logging
import re
import urllib.request
from contextlib import AsyncExitStack
from urllib.parse import unquote

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
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessagesRequest,
    StatsReply,
    StatsRequest,
)
from harness import Chatter, free_port, grpc_web_body, grpc_web_reply

PROTO = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}
TEXT = {"Content-Type": "application/grpc-web-text", "Accept": "application/grpc-web-text"}


def _post(url: str, body: bytes) -> tuple[str, bytes]:
    request = urllib.request.Request(url, data=body, headers=PROTO, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["Content-Type"]), response.read()


async def _call(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[list[bytes], dict[str, str]]:
    async with http.post(url, data=body, headers={**PROTO, **(headers or {})}) as response:
        assert response.status == 200
        return grpc_web_reply(await response.read())


async def test_a_raw_post_of_get_stats_gets_a_framed_reply_and_a_trailer_frame_with_status_0(
    web_url: str, channel: Channel
) -> None:
    async with AsyncExitStack() as stack:
        await (await Chatter.open(stack, channel, user="ann")).say("hello")
    body = grpc_web_body(bytes(StatsRequest()))
    content_type, answer = await asyncio.to_thread(_post, web_url + contract.GET_STATS, body)
    assert content_type == "application/grpc-web+proto"
    assert answer[0] == 0x00
    assert answer.endswith(b"\x80\x00\x00\x00\x10grpc-status: 0\r\n")
    messages, trailers = grpc_web_reply(answer)
    assert trailers == {"grpc-status": "0"}
    assert StatsReply().parse(messages[0]).num_messages == 1


async def test_get_messages_streams_the_history_then_live_messages_in_one_response(
    web_url: str, channel: Channel, http: aiohttp.ClientSession
) -> None:
    async with AsyncExitStack() as stack:
        ann = await Chatter.open(stack, channel, user="ann")
        await ann.say("before")
        body = grpc_web_body(bytes(MessagesRequest(room="general", follow=True)))
        url = web_url + contract.GET_MESSAGES
        async with http.post(url, data=body, headers=PROTO) as response:
            first = MessageReply().parse(await _next_message(response.content))
            assert (first.message, first.user) == ("before", "ann")
            await ann.say("after")
            live = MessageReply().parse(await _next_message(response.content))
            assert (live.message, live.id) == ("after", first.id + 1)


async def _next_message(content: aiohttp.StreamReader) -> bytes:
    prefix = await content.readexactly(5)
    assert prefix[0] == 0x00
    return await content.readexactly(int.from_bytes(prefix[1:], "big"))


async def test_a_bidirectional_call_in_one_post_gets_every_ack_then_status_0(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    body = grpc_web_body(*(bytes(MessageRequest(message=text)) for text in ("one", "two")))
    replies, trailers = await _call(
        http, web_url + contract.SEND_AND_RECEIVE, body, {contract.USER: "bob"}
    )
    acks = [MessageReply().parse(reply) for reply in replies]
    assert [(ack.kind, ack.message, ack.user) for ack in acks] == [
        (MessageReplyKind.ACK, "Server Responding to one", "bob"),
        (MessageReplyKind.ACK, "Server Responding to two", "bob"),
    ]
    assert trailers == {"grpc-status": "0"}


async def test_text_requests_in_separately_padded_base64_chunks_are_answered_in_base64(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    # "hey" makes a 10-byte frame: its base64 ends in padding, then the next frame's begins.
    frames = [grpc_web_body(bytes(MessageRequest(message=t))) for t in ("hey", "there")]
    body = b"".join(base64.b64encode(frame) for frame in frames)
    assert body.count(b"=") and not body.endswith(b"=")
    url = web_url + contract.SEND_AND_RECEIVE
    async with http.post(url, data=body, headers=TEXT) as response:
        assert response.headers["Content-Type"] == "application/grpc-web-text+proto"
        text = await response.read()
    decoded = b"".join(base64.b64decode(part + b"=" * (-len(part) % 4)) for part in _padded(text))
    replies, trailers = grpc_web_reply(decoded)
    assert [MessageReply().parse(r).message for r in replies] == [
        "Server Responding to hey",
        "Server Responding to there",
    ]
    assert trailers == {"grpc-status": "0"}


def _padded(text: bytes) -> list[bytes]:
    """Base64 strings written one after another, each ended by its padding."""
    parts, start = [], 0
    for index in range(len(text)):
        if text[index : index + 1] == b"=" and text[index + 1 : index + 2] != b"=":
            parts.append(text[start : index + 1])
            start = index + 1
    return [*parts, text[start:]] if text[start:] else parts


async def test_a_binary_request_that_accepts_only_text_gets_a_base64_response(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    headers = {**PROTO, "Accept": "application/grpc-web-text"}
    url = web_url + contract.GET_STATS
    async with http.post(url, data=grpc_web_body(b""), headers=headers) as response:
        assert response.headers["Content-Type"] == "application/grpc-web-text+proto"
        text = await response.read()
    decoded = b"".join(base64.b64decode(part + b"=" * (-len(part) % 4)) for part in _padded(text))
    messages, trailers = grpc_web_reply(decoded)
    assert len(messages) == 1 and trailers == {"grpc-status": "0"}


@pytest.mark.parametrize(
    ("method", "body", "headers", "status", "says"),
    [
        (contract.GET_STATS, b"\x00\x00\x00\x00\x09ab", PROTO, "3", "ended inside a message"),
        (contract.GET_STATS, b"\x01\x00\x00\x00\x00", PROTO, "12", "compressed"),
        (contract.GET_STATS, b"\x00\x7f\x00\x00\x00", PROTO, "8", "over the server's limit"),
        (contract.GET_STATS, b"\x80\x00\x00\x00\x00", PROTO, "3", "flags 0x80"),
        (contract.GET_STATS, b"", PROTO, "3", "no request message"),
        (contract.GET_STATS, b"\x00\x00\x00\x00\x02\xff\xff", PROTO, "3", "not a valid"),
        (contract.GET_STATS, b"AAAA*AAA", TEXT, "3", "not valid base64"),
        ("/grpc.chat.ChatService/Nothing", b"", PROTO, "12", "no method"),
    ],
)
async def test_bad_input_gets_a_status_that_says_what_was_wrong(
    web_url: str,
    http: aiohttp.ClientSession,
    method: str,
    body: bytes,
    headers: dict[str, str],
    status: str,
    says: str,
) -> None:
    async with http.post(web_url + method, data=body, headers=headers) as response:
        answer = await response.read()
    if headers is TEXT:
        answer = base64.b64decode(answer)
    messages, trailers = grpc_web_reply(answer)
    assert messages == []
    assert trailers["grpc-status"] == status
    assert says in unquote(trailers["grpc-message"])


async def test_a_body_that_is_not_grpc_web_gets_415_and_says_what_to_send(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "application/json"}
    async with http.post(web_url + contract.GET_STATS, data=b"{}", headers=headers) as response:
        assert response.status == 415
        assert "application/grpc-web+proto" in await response.text()


async def test_the_call_is_logged_with_the_browsers_address(
    web_url: str, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "chat.calls")
    await _call(http, web_url + contract.GET_STATS, grpc_web_body(b""))
    [line] = [r.getMessage() for r in caplog.records if contract.GET_STATS in r.getMessage()]
    assert re.fullmatch(rf"127\.0\.0\.1:\d+ {contract.GET_STATS} OK .* in=1 out=1", line), line


async def test_a_preflight_from_an_allowed_origin_lets_it_send_and_read_the_status(
    web_url: str, http: aiohttp.ClientSession, allowed_origin: str
) -> None:
    asked = "content-type, x-grpc-web, authorization, chat-user"
    preflight = {
        "Origin": allowed_origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": asked,
    }
    async with http.options(web_url + contract.GET_STATS, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == allowed_origin
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert response.headers["Access-Control-Allow-Headers"] == asked
    headers = {**PROTO, "Origin": allowed_origin}
    url = web_url + contract.GET_STATS
    async with http.post(url, data=grpc_web_body(b""), headers=headers) as response:
        assert response.headers["Access-Control-Allow-Origin"] == allowed_origin
        exposed = response.headers["Access-Control-Expose-Headers"]
        assert {"grpc-status", "grpc-message"} <= set(exposed.replace(" ", "").split(","))


async def test_another_origin_is_refused_before_its_call_runs(
    web_url: str, http: aiohttp.ClientSession, service: ChatService
) -> None:
    origin = {"Origin": "http://elsewhere.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    async with http.options(web_url + contract.SEND_AND_RECEIVE, headers=preflight) as response:
        assert response.status == 403
    body = grpc_web_body(bytes(MessageRequest(message="sneaky")))
    headers = {**PROTO, **origin}
    async with http.post(web_url + contract.SEND_AND_RECEIVE, data=body, headers=headers) as reply:
        assert reply.status == 403
    assert service.messages_stored == 0


async def test_a_server_with_a_token_refuses_a_web_call_without_it(
    http: aiohttp.ClientSession,
) -> None:
    service = ChatService(MemoryStore(), Settings(store="memory://", token="s3cret"))
    port = free_port()
    runner = await start(service, "127.0.0.1", port, Origins(()))
    try:
        url = f"http://127.0.0.1:{port}{contract.GET_STATS}"
        _, trailers = await _call(http, url, grpc_web_body(b""))
        assert trailers["grpc-status"] == "16"
        assert "no token" in unquote(trailers["grpc-message"])
        _, trailers = await _call(http, url, grpc_web_body(b""), contract.bearer("s3cret"))
        assert trailers == {"grpc-status": "0"}
    finally:
        await runner.cleanup()
