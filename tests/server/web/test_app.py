"""The web door as a whole: the page and its headers, what a stray request gets, its settings,
and its calls counted with the others."""

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

from chat import contract
from chat.server.config import DEFAULT_WEB_PORT
from chat.server.metrics import Metrics
from chat.server.service import ChatService
from chat.server.web.app import PAGE_HEADERS, STATIC
from harness import (
    ROOT,
    clean_environment,
    free_port,
    grpc_web_body,
    refused_server_start,
    run_client,
    wait_accepting,
)

PROTO = {"Content-Type": "application/grpc-web+proto"}


async def test_the_page_and_its_assets_come_from_the_server_with_a_content_security_policy(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(web_url + "/") as page:
        assert page.status == 200 and page.content_type == "text/html"
        html = await page.text()
    assert 'src="/app.js"' in html and 'href="/app.css"' in html
    assert "http" not in html.replace('"http-equiv"', "")  # nothing from another host
    assert page.headers["Content-Security-Policy"] == PAGE_HEADERS["Content-Security-Policy"]
    for asset in ("app.js", "app.css"):
        async with http.get(f"{web_url}/{asset}") as response:
            assert response.status == 200
            assert response.headers["Content-Encoding"] in ("gzip", "deflate", "br")
            assert await response.read() == (STATIC / asset).read_bytes()


async def test_a_get_of_a_method_without_a_websocket_upgrade_gets_405_saying_how_to_call(
    web_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(web_url + contract.GET_STATS) as response:
        assert response.status == 405
        assert "gRPC-Web POST or a WebSocket" in await response.text()


async def test_web_calls_are_counted_with_the_others_in_the_metrics(
    web_url: str, http: aiohttp.ClientSession, service: ChatService
) -> None:
    registry: CollectorRegistry = Metrics(service).registry
    async with http.post(web_url + contract.GET_STATS, data=grpc_web_body(b""), headers=PROTO):
        pass
    labels = {"method": "GetStats", "status": "OK"}
    assert registry.get_sample_value("chat_calls_total", labels) == 1


def test_a_web_port_that_is_taken_is_one_line_and_exit_code_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags = ["--host", "127.0.0.1", "--port", str(free_port()), "--web-port", str(port)]
        reason = refused_server_start(*flags)
    assert reason.startswith(f"chat-server: cannot serve the web page on 127.0.0.1:{port}: ")


def test_the_default_web_port_taken_leaves_the_page_off_said_in_one_line_and_grpc_served(
    tmp_path: Path,
) -> None:
    """A second server on one machine: the default web port is the first's."""
    with contextlib.ExitStack() as stack:
        try:
            taken = stack.enter_context(socket.socket())
            taken.bind(("127.0.0.1", DEFAULT_WEB_PORT))
            taken.listen()
        except OSError:
            pass  # taken already, by something else: the same for the server
        port = free_port()
        log = tmp_path / "server.log"
        with log.open("wb") as written:
            server = subprocess.Popen(
                [sys.executable, "-m", "chat.server", "--host", "127.0.0.1", "--port", str(port)],
                stdout=written,
                stderr=written,
                cwd=ROOT,
                env=clean_environment({"CHAT_STORE": "memory://"}),
            )
        try:
            wait_accepting(port, server)
            asked = run_client(["--server", f"127.0.0.1:{port}", "stats"])
            assert asked.returncode == 0, asked.stderr
        finally:
            server.terminate()
            assert server.wait(15) == 0
    said = [line for line in log.read_text().splitlines() if "no chat page" in line]
    assert len(said) == 1, log.read_text()
    assert f"cannot serve the web page on 127.0.0.1:{DEFAULT_WEB_PORT}" in said[0]
    assert "gRPC is served all the same" in said[0]


def test_a_web_origin_that_is_not_an_origin_is_refused_at_start() -> None:
    flags = ("--web-origins", "https://ok.example,chat.example.com/path")
    reason = refused_server_start(*flags, code=2)
    assert reason == (
        "chat-server: --web-origins: 'chat.example.com/path' is not scheme://host[:port] or * "
        "(see chat-server --help)\n"
    )


def test_a_web_host_that_is_not_a_host_name_is_refused_at_start_from_a_variable_too() -> None:
    reason = refused_server_start(
        env={"CHAT_WEB_HOSTS": "chat.example.com,https://chat.example.com"}, code=2
    )
    assert reason == (
        "chat-server: CHAT_WEB_HOSTS: 'https://chat.example.com' is not a host name, *.name "
        "or * (see chat-server --help)\n"
    )
