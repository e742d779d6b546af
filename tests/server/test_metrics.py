"""--metrics-port: Prometheus figures scraped over HTTP from a real server after real calls."""

import asyncio
import socket
import urllib.request
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from prometheus_client.parser import text_string_to_metric_families

from abuse.attacker import RawClient
from bench.crowd import opening
from chat.client.values import split_address
from gen.grpc.chat import MessageReplyKind
from harness import Chatter, ServerProcess, free_port, refused_server_start, run_client

Start = Callable[..., ServerProcess]
Sample = tuple[str, frozenset[tuple[str, str]]]


class Scraper:
    """A server started with --metrics-port, and its figures as the endpoint gives them."""

    def __init__(self, server_process: Start, *flags: str) -> None:
        self.port = free_port()
        self.server = server_process("memory://", "--metrics-port", str(self.port), *flags)

    def scrape(self) -> dict[Sample, float]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def calls(method: str, status: str) -> Sample:
    return ("chat_calls_total", frozenset({("method", method), ("status", status)}))


def plain(name: str) -> Sample:
    return (name, frozenset())


async def test_calls_latency_messages_and_streams_are_counted(
    server_process: Start, channel_to: Callable[..., Channel]
) -> None:
    scraper = Scraper(server_process)
    address = scraper.server.address
    assert run_client(["--server", address, "chat"], "one\ntwo\nthree\n").returncode == 0
    assert run_client(["--server", address, "stats"]).returncode == 0
    assert run_client(["--server", address, "stats", "--room", "b a d"]).returncode == 1
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel_to(scraper.server), user="ann")
        await chatter.say("still here")
        figures = await asyncio.to_thread(scraper.scrape)
        assert figures[plain("chat_connected_streams")] == 1
    assert figures[calls("SendAndReceiveMessage", "OK")] == 1
    assert figures[calls("GetStats", "OK")] == 1
    assert figures[calls("GetStats", "INVALID_ARGUMENT")] == 1
    assert figures[plain("chat_messages_stored_total")] == 4
    assert figures[plain("chat_slow_consumers_total")] == 0
    assert figures[plain("chat_presence_updates_total")] == 0  # in process: nothing shared
    latency = frozenset({("method", "GetStats")})
    assert figures[("chat_call_duration_seconds_count", latency)] == 2
    assert 0 < figures[("chat_call_duration_seconds_sum", latency)] < 10
    infinite = frozenset({("method", "GetStats"), ("le", "+Inf")})
    assert figures[("chat_call_duration_seconds_bucket", infinite)] == 2


async def test_a_listener_cut_off_for_falling_behind_is_counted(
    server_process: Start, channel_to: Callable[..., Channel]
) -> None:
    scraper = Scraper(server_process, "--queue-size", "5")
    small_window = Configuration(http2_connection_window_size=65535, http2_stream_window_size=65535)
    async with AsyncExitStack() as stack:
        listener = await Chatter.open(stack, channel_to(scraper.server, small_window), user="slow")
        sender = await Chatter.open(stack, channel_to(scraper.server), user="fast")
        for _ in range(30):  # 240 KB: more than the listener's window and queue hold
            await sender.say("x" * 8000)
        with pytest.raises(GRPCError) as error:
            while await listener.recv_kind(MessageReplyKind.CHAT):
                pass
    assert error.value.status is Status.RESOURCE_EXHAUSTED
    figures = await asyncio.to_thread(scraper.scrape)
    assert figures[plain("chat_slow_consumers_total")] == 1
    assert figures[calls("SendAndReceiveMessage", "RESOURCE_EXHAUSTED")] == 1
    assert figures[plain("chat_messages_stored_total")] == 30


LISTENER_RECEIVE_BUFFER = 16 * 1024
"""The silent listener's socket buffer: small, so that the server's own send buffer is what
fills (the kernel grows a receive buffer far past a send buffer's limit)."""


def send_buffer_limit() -> int:
    """The most a socket's send buffer grows to on this machine (`tcp_wmem`'s last figure)."""
    return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[-1])


async def test_a_listener_that_reads_nothing_is_cut_off_whatever_its_windows(
    server_process: Start, channel_to: Callable[..., Channel]
) -> None:
    """With flow-control windows as wide as HTTP/2 allows, what stops its deliveries is its
    socket: once the connection takes no more, they are queued, and past the queue it is cut
    off, so the server never buffers without bound for it."""
    scraper = Scraper(server_process, "--queue-size", "5")
    host, port = split_address(scraper.server.address)
    text = "x" * 8000
    bound = (send_buffer_limit() + 2 * LISTENER_RECEIVE_BUFFER + 2**20) // len(text)
    async with AsyncExitStack() as stack:
        sender = await Chatter.open(stack, channel_to(scraper.server), user="fast", room="r")
        silent = stack.enter_context(socket.socket())
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LISTENER_RECEIVE_BUFFER)
        silent.connect((host, port))
        silent.sendall(opening(host, port, "r", "slow"))  # wide windows, then never a read
        assert (await sender.recv_kind(MessageReplyKind.JOIN)).user == "slow"
        left = False
        for _ in range(bound):
            await sender.send(text)
            while (reply := await sender.recv()) is not None and reply.kind != MessageReplyKind.ACK:
                left = left or reply.kind == MessageReplyKind.LEAVE
            if left:
                break
        assert left, f"{bound} messages of {len(text)} bytes and the silent listener is still on"
    figures = await asyncio.to_thread(scraper.scrape)
    assert figures[plain("chat_slow_consumers_total")] == 1


async def test_refusals_past_the_service_s_limits_are_counted_by_reason(
    server_process: Start, channel_to: Callable[..., Channel]
) -> None:
    scraper = Scraper(
        server_process, "--max-rooms", "1", "--token", "t", "--max-auth-failures", "1"
    )
    channel = channel_to(scraper.server)
    async with AsyncExitStack() as stack:
        chatter = await Chatter.open(stack, channel, token="t", room="a")
        await chatter.say("one")
        await chatter.send("two", room="b")
        assert (await chatter.recv_kind(MessageReplyKind.ERROR)).room == "b"
    for _ in range(3):  # one failure, then two past the limit: RESOURCE_EXHAUSTED
        with pytest.raises(GRPCError):
            async with AsyncExitStack() as stack:
                await (await Chatter.open(stack, channel, token="wrong")).recv()
    figures = await asyncio.to_thread(scraper.scrape)
    refused = "chat_refusals_total"
    assert figures[(refused, frozenset({("reason", "rooms")}))] == 1
    assert figures[(refused, frozenset({("reason", "auth_failures")}))] == 2
    assert figures[plain("chat_store_write_failures_total")] == 0


def test_a_metrics_port_that_is_taken_is_one_line_and_exit_code_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags = ["--host", "127.0.0.1", "--port", str(free_port()), "--metrics-port", str(port)]
        reason = refused_server_start(*flags)
    assert reason.startswith(f"chat-server: cannot serve metrics on 127.0.0.1:{port}: ")


async def test_http2_refusals_and_connections_are_counted(server_process: Start) -> None:
    scraper = Scraper(server_process, "--http2", "direct", "--h2-max-pings", "5")
    client = await RawClient.connect("127.0.0.1", scraper.server.port)
    for _ in range(20):
        client.h2.ping(b"12345678")
    await client.flush()
    await asyncio.wait_for(client.closed.wait(), 10)
    await client.close()
    figures = await asyncio.to_thread(scraper.scrape)
    assert figures[("chat_http2_refusals_total", frozenset({("reason", "pings")}))] == 1
    assert figures[("chat_http2_refusals_total", frozenset({("reason", "resets")}))] == 0
    assert plain("chat_http2_connections") in figures  # its value: racing the close
