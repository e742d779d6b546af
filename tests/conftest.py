"""Fixtures that start real things (a service served in process as serve() serves it, its web
door, server processes, clients in pseudo-terminals and tmux panes) and stop them."""

import asyncio
import dataclasses
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pexpect
import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from playwright.async_api import Browser, async_playwright

from chat.client import split_address
from chat.contract import USER
from chat.server.app import grpc_server
from chat.server.config import Settings
from chat.server.health import HealthChecks
from chat.server.service import ChatService
from chat.server.web.app import start as start_web
from chat.server.web.cors import Origins
from chat.store import DEDUPE_WINDOW, Store, open_store
from chat.store.memory import MemoryStore
from gen.grpc.chat import ChatServiceStub, MessageReply, MessageReplyKind, MessageRequest
from harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PATHS,
    ROOT,
    RedisClusterProcesses,
    RedisProcess,
    Screen,
    ServerProcess,
    free_port,
    path_flags,
    serving,
)
from harness.tokens import AUDIENCE, ISSUER, SECRET

Spawn = Callable[..., tuple[pexpect.spawn, io.StringIO]]
ALLOWED_ORIGIN = "http://allowed.example"
"""The one other origin the web door under test lets in."""


@pytest.fixture(params=sorted(PATHS))
def path(request: pytest.FixtureRequest) -> str:
    """The server path under test: every test that starts a service or a server runs on the
    reference path (betterproto on grpclib's API) and on the fast one."""
    name: str = request.param
    return name


NO_RATE_LIMIT = ("--rate-limit", "0")
"""Tests send faster than people type: flood control is off unless a test is about it."""


@pytest.fixture
def settings(path: str) -> Settings:
    encoding, http2 = PATHS[path]
    return Settings(store="memory://", encoding=encoding, http2=http2, rate_limit=0)


@pytest.fixture
def signed_settings(settings: Settings) -> Settings:
    """The settings under test, asking for tokens signed as `harness.tokens.mint` signs them."""
    return dataclasses.replace(
        settings, jwt_secret=SECRET, jwt_audience=AUDIENCE, jwt_issuer=ISSUER
    )


@pytest.fixture
async def service(settings: Settings) -> ChatService:
    return ChatService(MemoryStore(), settings)


@pytest.fixture
async def channel(service: ChatService) -> AsyncIterator[Channel]:
    async with serving(service) as channel:
        yield channel


@pytest.fixture
def allowed_origin() -> str:
    """The one other origin `web_url`'s door lets in."""
    return ALLOWED_ORIGIN


@pytest.fixture
async def web_url(service: ChatService) -> AsyncIterator[str]:
    """The web door of the `service` fixture (the same one `channel` reaches), on real TCP."""
    port = free_port()
    runner = await start_web(service, "127.0.0.1", port, Origins({ALLOWED_ORIGIN}))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP and WebSocket client, closed at the end."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
def server_process(tmp_path: Path, path: str) -> Iterator[Callable[..., ServerProcess]]:
    """Starts `python -m chat.server` processes on the path under test; every one is stopped
    at the end of the test."""
    started: list[ServerProcess] = []

    def start(
        store: str = "memory://",
        *flags: str,
        port: int | None = None,
        web: bool = False,
        files: int | None = None,
    ) -> ServerProcess:
        log = tmp_path / f"server-{len(started)}.log"
        flags = (*path_flags(path), *NO_RATE_LIMIT, *flags)  # a test's own flags come last
        server = ServerProcess(log, store, *flags, port=port, web=web, files=files).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture
async def channel_to() -> AsyncIterator[Callable[..., Channel]]:
    """Opens grpclib channels to server processes (optionally configured); closes them all."""
    opened: list[Channel] = []

    def connect(server: ServerProcess, config: Configuration | None = None) -> Channel:
        host, port = split_address(server.address)
        opened.append(Channel(host, port, config=config))
        return opened[-1]

    yield connect
    for channel in opened:
        channel.close()


def installed(tool: str, install: str) -> str:
    """The path of `tool`; skips the test without it, or fails it under CI, which installs it."""
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed; .ci/run installs it")
        pytest.skip(f"{tool} is not installed ({install})")
    return found


@pytest.fixture
def npm() -> str:
    """npm, for tests that build the page or run a gRPC-Web client under Node."""
    installed("node", "apt-get install nodejs")
    return installed("npm", "apt-get install npm")


@pytest.fixture
def web_modules(npm: str) -> Path:
    """web/node_modules as web/package-lock.json pins it (installed once with `npm ci`)."""
    modules = ROOT / "web" / "node_modules"
    if not (modules / ".package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT / "web", check=True)
    return modules


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium under Playwright, with a fresh profile; closed at the end."""
    installed(str(CHROMIUM), "apt-get install chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own (append-only file, so a restart keeps the data)."""
    installed("redis-server", "apt-get install redis-server")
    server = RedisProcess(tmp_path).start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture
def volatile_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server that keeps nothing on disk: killed, it comes back empty."""
    installed("redis-server", "apt-get install redis-server")
    server = RedisProcess(tmp_path, durable=False).start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def _cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """One local 3-node Redis Cluster for the whole run (made once: it takes seconds)."""
    installed("redis-server", "apt-get install redis-server")
    installed("redis-cli", "apt-get install redis-tools")
    cluster = RedisClusterProcesses(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(_cluster: RedisClusterProcesses) -> RedisClusterProcesses:
    """The local Redis Cluster, emptied for the test."""
    _cluster.flush()
    return _cluster


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """A Redis of the test's own, or the local cluster emptied: the replicas' store."""
    fixture = "redis_server" if request.param == "redis" else "redis_cluster"
    url: str = request.getfixturevalue(fixture).url
    return url


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
async def open_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Store]]]:
    """Opens stores of one backend (all on the same data); closes them after the test. Redis:
    a redis-server of the test's own, or the local 3-node cluster."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chat.db'}"
    elif request.param == "redis":
        url = request.getfixturevalue("redis_server").url
    else:
        url = request.getfixturevalue("redis_cluster").url
    opened: list[Store] = []

    async def open_(max_history: int = 0, dedupe_window: float = DEDUPE_WINDOW) -> Store:
        opened.append(await open_store(url, max_history=max_history, dedupe_window=dedupe_window))
        return opened[-1]

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A memory server on the default path: for tests where the server's path does not matter."""
    started = ServerProcess(tmp_path / "server.log", "memory://").start()
    yield started
    assert started.proc is not None
    started.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
    started.stop(signal.SIGKILL)


def spawn(address: str, *args: str, **env: str) -> tuple[pexpect.spawn, io.StringIO]:
    """`chat --server ADDRESS chat ARGS` in a pseudo-terminal, with everything it wrote kept."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chat.client", "--server", address, "chat", *args],
        env={**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm", **env},
        cwd=str(ROOT),
        encoding="utf-8",
        timeout=15,
        dimensions=(30, 120),
    )
    seen = io.StringIO()
    child.logfile_read = seen
    return child, seen


@pytest.fixture
def terminal() -> Iterator[Spawn]:
    """Starts clients in pseudo-terminals (`spawn`); every one is ended after the test."""
    children: list[pexpect.spawn] = []

    def start(address: str, *args: str, **env: str) -> tuple[pexpect.spawn, io.StringIO]:
        child, seen = spawn(address, *args, **env)
        children.append(child)
        return child, seen

    yield start
    for child in children:
        child.terminate(force=True)


@pytest.fixture
def screen() -> Iterator[Callable[..., Screen]]:
    """Opens clients in tmux panes: `screen(*args, LOGNAME="ann")`; ends them all after the test."""
    if shutil.which("tmux") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is not installed; .ci/run installs it")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    opened: list[Screen] = []

    def open_screen(*args: str, **env: str) -> Screen:
        socket = f"chat-test-{os.getpid()}-{len(opened)}-{time.monotonic_ns()}"
        opened.append(Screen(socket, list(args), {"TERM": "xterm", **env}))
        return opened[-1]

    yield open_screen
    for opened_screen in opened:
        opened_screen.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store of each backend, for rules that every store must keep alike (Redis: a
    redis-server of the test's own)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.db'}"
    url: str = request.getfixturevalue("redis_server").url
    return url


@pytest.fixture
async def service_on() -> AsyncIterator[Callable[[str, Settings], Awaitable[Channel]]]:
    """Serves ChatService in process, as serve() does, on the store a URL names, with the given
    settings; closes channels and stores after the test."""
    async with AsyncExitStack() as stack:

        async def serve(url: str, settings: Settings) -> Channel:
            store = await open_store(url)
            stack.push_async_callback(store.close)
            service = ChatService(store, dataclasses.replace(settings, store=url))
            return await stack.enter_async_context(serving(service))

        yield serve


@pytest.fixture
async def port_on() -> AsyncIterator[Callable[[str, Settings], Awaitable[int]]]:
    """Serves ChatService on a loopback TCP port as serve() does, on the store a URL names,
    with the given settings; returns the port, for tests that open several connections. Stops
    servers and stores after the test."""
    async with AsyncExitStack() as stack:

        async def serve(url: str, settings: Settings) -> int:
            store = await open_store(url)
            stack.push_async_callback(store.close)
            service = ChatService(store, dataclasses.replace(settings, store=url))
            server = grpc_server(service, HealthChecks(store, service))
            port = free_port()
            await server.start("127.0.0.1", port)

            async def stop() -> None:
                service.shut_down()
                server.close()
                await server.wait_closed()

            stack.push_async_callback(stop)
            return port

        yield serve


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
def post() -> Callable[..., int]:
    """`post(server, user, room="general", message=..., action=..., target_id=...)`: one
    request stored as `user` (the test fails on its refusal); the id it was stored under."""
    return _post
