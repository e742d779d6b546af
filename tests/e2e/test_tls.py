"""TLS end to end: certificates made here (trustme), our client and a grpcio client over TCP."""

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import trustme

from bench.tutorial import generate
from chat import contract
from gen.grpc.chat import MessageReply, MessageRequest
from harness import (
    REPLY_TIMEOUT,
    ServerProcess,
    free_port,
    grpc_web_body,
    grpc_web_reply,
    refused_server_start,
    run_client,
)

Start = Callable[..., ServerProcess]
TEXT = aiohttp.WSMsgType.TEXT


class Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    def __init__(self, folder: Path) -> None:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_pem = ca.cert_pem.bytes()
        self.ca = folder / "ca.pem"
        self.cert = folder / "server.pem"
        self.key = folder / "server.key"
        ca.cert_pem.write_to_path(str(self.ca))
        issued.private_key_pem.write_to_path(str(self.key))
        for blob in issued.cert_chain_pems:
            blob.write_to_path(str(self.cert), append=True)


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return Certificates(tmp_path)


@pytest.fixture
def tls_server(server_process: Start, certificates: Certificates) -> ServerProcess:
    flags = ["--tls-cert", str(certificates.cert), "--tls-key", str(certificates.key)]
    return server_process("memory://", *flags)


def test_our_client_chats_over_tls_trusting_the_given_ca(
    tls_server: ServerProcess, certificates: Certificates
) -> None:
    tls = ["--server", tls_server.address, "--ca", str(certificates.ca)]
    chat = run_client([*tls, "chat", "--user", "ann"], "over tls\n")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout == "Server Responding to over tls\n"
    stats = run_client(["stats", "--tls", *tls])
    assert stats.stdout.splitlines()[0] == "Server has 1 messages", stats.stderr
    assert "with TLS" in tls_server.log()


def test_a_grpcio_client_calls_the_tls_server(
    tls_server: ServerProcess, certificates: Certificates, tmp_path: Path
) -> None:
    pb2, pb2_grpc = generate(tmp_path)
    credentials = grpc.ssl_channel_credentials(root_certificates=certificates.ca_pem)
    with grpc.secure_channel(tls_server.address, credentials) as channel:
        stub: Any = pb2_grpc.ChatServiceStub(channel)
        replies = stub.SendAndReceiveMessage(iter([pb2.MessageRequest(message="hi")]), timeout=10)
        assert [reply.message for reply in replies] == ["Server Responding to hi"]
        assert stub.GetStats(pb2.EmptyRequest(), timeout=10).num_messages == 1


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ([], "Connection lost; if the server serves TLS, add --tls (or --ca FILE)"),
        (["--tls"], "TLS with the server at 127.0.0.1:"),
        (["--ca", "no-such-ca.pem"], "cannot use --ca no-such-ca.pem: No such file or directory"),
    ],
    ids=["plaintext", "untrusted", "missing-ca"],
)
def test_a_client_that_cannot_talk_tls_to_the_server_says_why_in_one_line(
    tls_server: ServerProcess, flags: list[str], reason: str
) -> None:
    result = run_client(["--server", tls_server.address, *flags, "stats"])
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("chat: ")
    assert reason in result.stderr


@pytest.mark.parametrize(
    ("flags", "reason", "code"),
    [
        (["--tls-cert", "server.pem"], "--tls-cert and --tls-key go together", 2),
        (["--tls-cert", "ca.pem", "--tls-key", "ca.pem"], "cannot use --tls-cert", 1),
        (["--tls-cert", "nothing.pem", "--tls-key", "server.key"], "No such file or directory", 1),
    ],
    ids=["no-key", "not-a-key", "missing-cert"],
)
def test_a_server_with_unusable_tls_files_exits_saying_why(
    certificates: Certificates, tmp_path: Path, flags: list[str], reason: str, code: int
) -> None:
    """A half of TLS missing is a usage error (2); files that cannot be used stop it with 1."""
    paths = [str(tmp_path / flag) if flag.endswith((".pem", ".key")) else flag for flag in flags]
    assert reason in refused_server_start("--port", str(free_port()), *paths, code=code)


async def test_the_web_door_serves_https_with_the_servers_certificate(
    server_process: Start, certificates: Certificates
) -> None:
    flags = ["--tls-cert", str(certificates.cert), "--tls-key", str(certificates.key)]
    server = server_process("memory://", *flags, web=True)
    assert server.web_url.startswith("https://")
    trusted = ssl.create_default_context(cafile=str(certificates.ca))
    headers = {"Content-Type": "application/grpc-web+proto"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.web_url + contract.GET_STATS,
            data=grpc_web_body(b""),
            headers=headers,
            ssl=trusted,
        ) as response,
    ):
        _, trailers = grpc_web_reply(await response.read())
    assert trailers == {"grpc-status": "0"}
    assert f"chat page on https://127.0.0.1:{server.web_port}/" in server.log()


async def test_over_tls_a_websocket_call_outlives_the_header_timeout(
    server_process: Start, certificates: Certificates
) -> None:
    """The clock for a request's head stops when its handler starts, TLS or not."""
    flags = ["--tls-cert", str(certificates.cert), "--tls-key", str(certificates.key)]
    server = server_process("memory://", *flags, "--web-header-timeout", "0.5", web=True)
    trusted = ssl.create_default_context(cafile=str(certificates.ca))
    url = server.web_url.replace("https", "wss") + contract.SEND_AND_RECEIVE
    async with aiohttp.ClientSession() as http, http.ws_connect(url, ssl=trusted) as socket:
        await socket.send_str("chat-user: ann\r\n")
        await asyncio.sleep(1.5)  # the time under test: three header timeouts
        await socket.send_bytes(bytes(MessageRequest(message="still here")))
        while (message := await socket.receive(timeout=REPLY_TIMEOUT)).type is TEXT:
            pass  # the call's metadata
        assert message.type is aiohttp.WSMsgType.BINARY, message
        assert MessageReply().parse(message.data).message == "Server Responding to still here"
    assert "head not whole" not in server.log()
