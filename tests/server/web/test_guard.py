"""What one client may cost the web door: requests it cannot read are answered and logged in
one line, never a traceback."""

import asyncio
import logging
from urllib.parse import unquote

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from chat import contract
from chat.server.config import Settings
from chat.server.metrics import Metrics
from chat.server.service import ChatService
from chat.server.web.app import start
from chat.server.web.cors import Origins
from chat.store.memory import MemoryStore
from chat.testing import REPLY_TIMEOUT, free_port, grpc_web_body, grpc_web_reply, http_exchange

PROTO = {"Content-Type": "application/grpc-web+proto"}
GET_STATS = f"POST {contract.GET_STATS} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
"""The start of a raw gRPC-Web request."""


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_its_content_encoding_does_not_decode_gets_invalid_argument_and_no_traceback(
    web_url: str, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    caplog.set_level(logging.INFO)
    headers = {**PROTO, "Content-Encoding": encoding}
    for _ in range(3):
        url = web_url + contract.GET_STATS
        async with http.post(url, data=grpc_web_body(b""), headers=headers) as response:
            assert response.status == 200
            messages, trailers = grpc_web_reply(await response.read())
        assert messages == []
        assert trailers["grpc-status"] == "3"
        assert unquote(trailers["grpc-message"]) == (
            f"the request body cannot be read: Can not decode content-encoding: {encoding}"
        )
    assert "Traceback" not in caplog.text
    assert not [record for record in caplog.records if record.exc_info]
    calls = [r.getMessage() for r in caplog.records if contract.GET_STATS in r.getMessage()]
    assert len(calls) == 3 and all("INVALID_ARGUMENT" in call for call in calls)


@pytest.mark.parametrize(
    ("request_bytes", "says"),
    [
        pytest.param(
            GET_STATS + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"Invalid character in chunk size",
            id="a bad chunk",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
            b"Got more than 8190 bytes",
            id="a 100 KB header",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
            b"Too many headers",
            id="200 headers",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\x00b\r\n\r\n",
            b"Invalid header value char",
            id="a NUL in a header",
        ),
        pytest.param(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
            b"HTTPS traffic on an HTTP port",
            id="TLS",
        ),
        pytest.param(
            GET_STATS + b"Content-Encoding: br\r\nContent-Length: 5\r\n\r\n" + bytes(5),
            b"Can not decode content-encoding: brotli",
            id="an encoding aiohttp lacks",
        ),
    ],
)
async def test_a_request_aiohttp_cannot_read_gets_400_and_one_log_line_without_a_traceback(
    web_url: str,
    service: ChatService,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
    says: bytes,
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(3):
        answer = await http_exchange(web_url, request_bytes)
        assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n"), answer[:100]
        assert says in answer
    assert "Traceback" not in caplog.text
    [line] = [r for r in caplog.records if r.name == "chat.server.web"]
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("127.0.0.1: bad request, answered 400: ")
    registry: CollectorRegistry = Metrics(service).registry
    assert registry.get_sample_value("chat_web_refusals_total", {"reason": "bad_request"}) == 3


async def test_header_bytes_that_are_not_utf8_are_answered_without_a_traceback(
    web_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    preflight = f"OPTIONS {contract.GET_STATS} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    answer = await http_exchange(web_url, preflight + b"Origin: \xff\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert answer.endswith(b"origin '\\udcff' may not call this server\n")
    assert "Traceback" not in caplog.text


async def test_a_token_that_is_not_utf8_is_unauthenticated_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    service = ChatService(MemoryStore(), Settings(store="memory://", token="s3cret"))
    port = free_port()
    runner = await start(service, "127.0.0.1", port, Origins(()))
    try:
        token = b"Authorization: Bearer \xff\xfe\r\nContent-Length: 5\r\nConnection: close\r\n"
        request = GET_STATS + b"Content-Type: application/grpc-web+proto\r\n" + token + b"\r\n"
        answer = await http_exchange(f"http://127.0.0.1:{port}", request + bytes(5))
    finally:
        await runner.cleanup()
    _, trailers = grpc_web_reply(_chunked_body(answer))
    assert trailers["grpc-status"] == "16"
    assert "the token is not UTF-8" in unquote(trailers["grpc-message"])
    assert "Traceback" not in caplog.text


def _chunked_body(answer: bytes) -> bytes:
    """The body of a raw HTTP/1.1 answer in chunked transfer encoding."""
    body, rest = b"", answer.partition(b"\r\n\r\n")[2]
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        body, rest = body + rest[: int(size, 16)], rest[int(size, 16) + 2 :]
    return body


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(b"\xc2\x83\x00\x00\x00\x00abc", 1002, id="a reserved bit"),
        pytest.param(b"\x83\x83\x00\x00\x00\x00abc", 1002, id="an unknown opcode"),
        pytest.param(b"\x80\x83\x00\x00\x00\x00abc", 1002, id="a continuation of nothing"),
        pytest.param(b"\x09\x83\x00\x00\x00\x00abc", 1002, id="a fragmented ping"),
        pytest.param(b"\x82\xff" + (2**63 - 1).to_bytes(8, "big"), 1009, id="2**63 bytes"),
        pytest.param(b"\x81\x82\x00\x00\x00\x00\xff\xfe", 1007, id="text that is not UTF-8"),
    ],
)
async def test_a_websocket_frame_that_breaks_the_protocol_closes_the_socket_without_a_traceback(
    web_url: str, caplog: pytest.LogCaptureFixture, frame: bytes, code: int
) -> None:
    caplog.set_level(logging.INFO)
    host, port = web_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        upgrade = (
            f"GET {contract.SEND_AND_RECEIVE} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        metadata = b"\x81\x90\x00\x00\x00\x00chat-user: ann\r\n"
        writer.write(upgrade.encode() + metadata + frame)
        async with asyncio.timeout(REPLY_TIMEOUT):
            await reader.readuntil(b"\r\n\r\n")
            while (head := await reader.readexactly(2))[0] != 0x88:  # skip to the close frame
                await reader.readexactly(head[1])
            closed = await reader.readexactly(head[1])
    finally:
        writer.close()
    assert int.from_bytes(closed[:2], "big") == code
    assert "Traceback" not in caplog.text
