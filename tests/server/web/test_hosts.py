"""The web door answers only to its own names in the Host header (no DNS rebinding): IP
addresses, localhost and `--web-hosts`; any other name gets 421 Misdirected Request."""

import logging
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from chat import contract
from chat.server.metrics import Metrics
from chat.server.service import ChatService
from chat.server.web.app import start
from chat.server.web.cors import Origins
from chat.server.web.hosts import host_name
from harness import ServerProcess, free_port, grpc_web_body

PROTO = {"Content-Type": "application/grpc-web+proto"}
Start = Callable[..., ServerProcess]
NAMES = ("chat.example", "*.example.org")
"""What the door under test is given as `--web-hosts`."""


@pytest.fixture
async def door(service: ChatService) -> AsyncIterator[str]:
    """The URL of a web door that answers to NAMES too."""
    port = free_port()
    runner = await start(service, "127.0.0.1", port, Origins(()), hosts=NAMES)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _statuses(http: aiohttp.ClientSession, url: str, host: str) -> tuple[int, int, int]:
    """What the page, a gRPC-Web call and a WebSocket upgrade get when they name `host`."""
    port = url.rpartition(":")[2]
    named = {"Host": f"{host}:{port}"}
    async with http.get(url + "/", headers=named) as page:
        pass
    body = grpc_web_body(b"")
    async with http.post(url + contract.GET_STATS, data=body, headers={**PROTO, **named}) as call:
        pass
    try:
        async with http.ws_connect(url + contract.SEND_AND_RECEIVE, headers=named):
            upgrade = 101
    except aiohttp.WSServerHandshakeError as refused:
        upgrade = refused.status
    return page.status, call.status, upgrade


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "LocalHost.",
        "app.localhost",
        "[::1]",
        "chat.example",
        "a.example.org",
    ],
)
async def test_an_ip_address_localhost_and_the_given_names_are_answered_on_every_door(
    door: str, http: aiohttp.ClientSession, host: str
) -> None:
    assert await _statuses(http, door, host) == (200, 200, 101)


@pytest.mark.parametrize("host", ["evil.test", "example.org", "chat.example.evil.test", "[::1"])
async def test_any_other_host_gets_421_on_every_door_and_one_line_naming_the_flag(
    door: str,
    http: aiohttp.ClientSession,
    service: ChatService,
    caplog: pytest.LogCaptureFixture,
    host: str,
) -> None:
    caplog.set_level(logging.INFO)
    assert await _statuses(http, door, host) == (421, 421, 421)
    [line] = [r.getMessage() for r in caplog.records if r.name == "chat.server.web"]
    assert line.startswith(f"127.0.0.1: Host '{host}:")
    assert "421 Misdirected Request" in line and "--web-hosts (env CHAT_WEB_HOSTS)" in line
    assert not [r for r in caplog.records if r.name == "chat.calls"]  # no call ran
    registry: CollectorRegistry = Metrics(service).registry
    assert registry.get_sample_value("chat_web_refusals_total", {"reason": "misdirected"}) == 3


@pytest.mark.parametrize(
    ("header", "name"),
    [("Chat.Example:8080", "chat.example"), ("[::1]:80", "::1"), ("h.", "h"), ("[::1", None)],
)
def test_the_name_of_a_host_header_is_lower_case_without_port_brackets_or_final_dot(
    header: str, name: str | None
) -> None:
    assert host_name(header) == name


def test_by_default_a_server_answers_to_its_machines_names(
    server_process: Start,
) -> None:
    server = server_process(web=True)
    for name in {socket.gethostname(), socket.getfqdn()}:
        assert _status(server.web_port, name) == 200
    assert _status(server.web_port, "evil.test") == 421


def test_web_hosts_replaces_the_machines_names(server_process: Start) -> None:
    server = server_process("memory://", "--web-hosts", "chat.example", web=True)
    assert _status(server.web_port, "chat.example") == 200
    assert _status(server.web_port, "localhost") == 200
    assert _status(server.web_port, "evil.test") == 421


def _status(port: int, host: str) -> int:
    """The HTTP status of `GET /` naming `host`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return int(connection.makefile("rb").readline().split()[1])
