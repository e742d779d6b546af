"""For tests, the bench and the soak: a chat stream driven over grpclib, free ports, and servers
(chat and Redis) run as real processes."""

import asyncio
import contextlib
import filecmp
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError, StreamTerminatedError

from chat.client.status import raise_status
from chat.contract import SEND_AND_RECEIVE, bearer
from chat.server.encoding import Choice as EncodingChoice
from chat.server.http2 import Choice as Http2Choice
from gen.grpc.chat import MessageReply, MessageReplyKind, MessageRequest

ROOT = Path(__file__).resolve().parent.parent
REPLY_TIMEOUT = 10.0
"""Seconds a test waits for a reply before it fails instead of hanging."""

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium, which the page's tests drive through Playwright (never a browser of its
own: Playwright's downloads are not used)."""
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
"""Chromium without the network traffic of its own it would make (updates, sync)."""

PATHS: dict[str, tuple[EncodingChoice, Http2Choice]] = {
    "reference": ("betterproto", "grpclib"),
    "fast": ("handwritten", "direct"),
}
"""The server's two paths: the encoding and the HTTP/2 transport each runs."""


def path_flags(path: str) -> tuple[str, ...]:
    """The server flags that choose a path of PATHS."""
    encoding, http2 = PATHS[path]
    return ("--encoding", encoding, "--http2", http2)


class Chatter:
    """One SendAndReceiveMessage stream; `recv` fails the test instead of hanging.

    Leaving the exit stack hangs up (RST_STREAM) a stream that has not ended by itself.
    """

    def __init__(self, stream: Stream[Any, MessageReply]) -> None:
        self.stream = stream
        self.ended = False
        self.error: Exception | None = None

    @classmethod
    async def open(
        cls, stack: AsyncExitStack, channel: Channel, token: str = "", **metadata: str
    ) -> "Chatter":
        """Opens a stream with `chat-*` metadata (user="ann": chat-user), and `token` as the
        bearer token when given."""
        md = {f"chat-{key.replace('_', '-')}": value for key, value in metadata.items()}
        md.update(bearer(token) if token else {})
        stream = channel.request(
            SEND_AND_RECEIVE, Cardinality.STREAM_STREAM, MessageRequest, MessageReply, metadata=md
        )
        await stream.__aenter__()
        chatter = cls(stream)
        stack.push_async_callback(chatter.hang_up)
        await stream.send_request()
        return chatter

    async def hang_up(self) -> None:
        if not self.ended:
            self.ended = True
            await self.stream.cancel()
        error = self.error
        with contextlib.suppress(GRPCError):  # the status the test has already seen
            await self.stream.__aexit__(type(error) if error else None, error, None)

    async def send(self, text: str, **fields: str) -> None:
        await self.stream.send_message(MessageRequest(message=text, **fields))

    async def recv(self) -> MessageReply | None:
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                reply = await self.stream.recv_message()
            if reply is None:
                self.ended = True
                raise_status(self.stream)
        except StreamTerminatedError as error:  # reset after the trailers: they say why
            self.ended, self.error = True, error
            raise_status(self.stream)
            raise
        except Exception as error:
            self.ended, self.error = True, error
            raise
        return reply

    async def recv_kind(self, kind: int) -> MessageReply:
        """The next reply of `kind`, skipping the others but ERROR."""
        while True:
            reply = await self.recv()
            assert reply is not None, f"stream ended while waiting for {kind!r}"
            if reply.kind == kind:
                return reply
            assert reply.kind != MessageReplyKind.ERROR, reply

    async def say(self, text: str, **fields: str) -> MessageReply:
        """Sends and waits for the ACK."""
        await self.send(text, **fields)
        return await self.recv_kind(MessageReplyKind.ACK)


class RawRequests(ProtoCodec):
    """A client codec that sends bytes as they are: for requests no generated class would
    write (cut, oversized, mutated)."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if type(message) is bytes:
            return message
        return super().encode(message, message_type)


def grpc_web_body(*messages: bytes) -> bytes:
    """Requests in gRPC-Web's framing (flag byte, big-endian length), written here and not by
    the server's code, so that tests check the server against the protocol."""
    return b"".join(b"\x00" + len(message).to_bytes(4, "big") + message for message in messages)


def grpc_web_reply(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """A gRPC-Web response body: its messages, and the trailers of its last frame (0x80)."""
    messages: list[bytes] = []
    trailers: dict[str, str] = {}
    while body:
        flags, size = body[0], int.from_bytes(body[1:5], "big")
        payload, body = body[5 : 5 + size], body[5 + size :]
        assert len(payload) == size, "a frame is cut short"
        if flags == 0x80:
            assert not body, "the trailer frame is not the last"
            for line in payload.decode("ascii").split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    trailers[key.strip()] = value.strip()
        else:
            assert flags == 0, f"frame flags {flags:#x}"
            messages.append(payload)
    return messages, trailers


async def http_exchange(url: str, request: bytes, seconds: float = REPLY_TIMEOUT) -> bytes:
    """Sends `request` as it is (bytes no HTTP client would write) to the host and port of
    `url` and returns everything the server answers until it closes the connection."""
    host, _, port = url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port.partition("/")[0]))
    try:
        writer.write(request)
        async with asyncio.timeout(seconds):
            return await reader.read()
    finally:
        writer.close()


def differences(left: Path, right: Path) -> list[str]:
    """Files that differ between two trees, or are in only one (for the staleness tests)."""
    compared = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [*compared.left_only, *compared.right_only, *compared.diff_files, *compared.funny_files]
    for name in compared.common_dirs:
        found += [f"{name}/{entry}" for entry in differences(left / name, right / name)]
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`python -m chat.server` on a free port, its log in a file; stopped by the fixture."""

    def __init__(
        self,
        log_path: Path,
        store: str,
        *flags: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        web: bool = False,
        files: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.files = files
        """The process's limit of open files (soft and hard), when a test sets one."""
        self.web_port = free_port() if web else 0
        self.env = {**os.environ, **(env or {})}
        self.address = f"127.0.0.1:{self.port}"
        tls = "--tls-cert" in flags
        self.web_url = f"http{'s' if tls else ''}://127.0.0.1:{self.web_port}"
        """The page and gRPC-Web, when started with `web`."""
        self.log_path = log_path
        self.args = [
            sys.executable,
            "-m",
            "chat.server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--store",
            store,
            "--web-port",
            str(self.web_port),
            *flags,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServerProcess":
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=log,
                cwd=ROOT,
                env=self.env,
                preexec_fn=None if self.files is None else self._limit_files,
            )
        wait_accepting(self.port, self.proc)
        if self.web_port:
            wait_accepting(self.web_port, self.proc)
        return self

    def _limit_files(self) -> None:
        import resource

        assert self.files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.files, self.files))

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(timeout)
        return code

    def rss_kib(self) -> int:
        assert self.proc is not None
        return rss_kib(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text()


def rss_kib(pid: int) -> int:
    """A process's resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"process {pid} reports no VmRSS")


def wait_accepting(port: int, proc: subprocess.Popen[bytes], seconds: float = 15) -> None:
    """Returns once the port accepts connections; fails early if the process died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} before accepting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing accepted on port {port} within {seconds}s")


def run_client(
    args: Sequence[str], stdin: str = "", timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m chat.client ARGS` with `stdin` and `env` added to the environment, its output
    captured."""
    return subprocess.run(
        [sys.executable, "-m", "chat.client", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def refused_server_start(*flags: str, env: dict[str, str] | None = None) -> str:
    """Runs `python -m chat.server FLAGS --store memory://` expecting it to refuse to start;
    asserts it says why in one line with exit code 1, and returns that line."""
    result = subprocess.run(
        [sys.executable, "-m", "chat.server", "--store", "memory://", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("chat-server: "), result.stderr
    return result.stderr


class RedisProcess:
    """A real redis-server on a free port; its append-only file keeps the data across a restart
    (`durable`), or it keeps nothing (as a cache would be run)."""

    def __init__(self, workdir: Path, *, durable: bool = True) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedisProcess":
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *(persistence if self.durable else ["--appendonly", "no"]),
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_accepting(self.port, self.proc)
        return self

    def stop(self, signum: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)
        self.proc.wait(15)

    def wipe(self) -> None:
        """Deletes a stopped server's data, as if it came back from a lost disk."""
        shutil.rmtree(self.workdir / "appendonlydir", ignore_errors=True)

    def info(self, section: str) -> dict[str, str]:
        """`INFO section` as a dict, read with redis-cli."""
        return redis_cli(self.port, "INFO", section)


CLUSTER_WAIT = 30.0
"""Seconds a local cluster may take to agree on its slots before the fixture fails."""


class RedisClusterProcesses:
    """A local Redis Cluster: three redis-server primaries (no replicas) on free ports, each
    with its own folder, joined by `redis-cli --cluster create`. The store URL names one node."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        self.ports = [free_port() for _ in range(nodes)]
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> "RedisClusterProcesses":
        for port in self.ports:
            folder = self.workdir / f"node-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--cluster-port",  # the bus on a free port too, not port + 10000
                    str(free_port()),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(folder / "nodes.conf"),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(folder),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.procs.append(proc)
            wait_accepting(port, proc)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        create = ["--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(
            ["redis-cli", *create],
            check=True,
            capture_output=True,
            timeout=CLUSTER_WAIT,
        )
        deadline = time.monotonic() + CLUSTER_WAIT
        while not all(self._ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster on {nodes} is not ok in {CLUSTER_WAIT}s")
            time.sleep(0.1)  # a poll of the cluster's state, not a synchronisation
        return self

    def flush(self) -> None:
        """Deletes every node's data: a fresh cluster for the next test."""
        for port in self.ports:
            redis_cli(port, "FLUSHALL")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(15)

    @staticmethod
    def _ok(port: int) -> bool:
        return redis_cli(port, "CLUSTER", "INFO").get("cluster_state") == "ok"


def redis_cli(port: int, *command: str) -> dict[str, str]:
    """A command's `field:value` lines (INFO, CLUSTER INFO) from the redis-server on `port`,
    run with redis-cli."""
    result = subprocess.run(
        ["redis-cli", "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=10,
    )
    fields = (line.partition(":") for line in result.stdout.splitlines() if ":" in line)
    return {key: value.strip() for key, _, value in fields}


SCREEN_WAIT = 15.0
"""How long a test waits for the screen to show something before it fails."""
EXITED = re.compile(r"\[exited (\d+)\]")


class Screen:
    """`python -m chat.client ARGS` in a 120x40 tmux pane; `[exited N]` is printed when it ends."""

    def __init__(self, socket: str, args: list[str], env: dict[str, str]) -> None:
        self._tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
        command = shlex.join([sys.executable, "-m", "chat.client", *args])
        settings = [f"-e{key}={value}" for key, value in env.items()]
        shell = f'cd {shlex.quote(str(ROOT))} && {command}; echo "[exited $?]"; sleep 600'
        self._run("new-session", "-d", "-x", "120", "-y", "40", *settings, shell)

    def _run(self, *args: str) -> str:
        return subprocess.run(
            [*self._tmux, *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout

    def type(self, line: str) -> None:
        """Types `line` and presses Enter."""
        self._run("send-keys", "-l", line)
        self._run("send-keys", "Enter")

    def press(self, key: str) -> None:
        """Presses a key by its tmux name: C-c, C-d."""
        self._run("send-keys", key)

    def text(self) -> str:
        """Everything in the pane, its scrollback included, as plain lines."""
        return self._run("capture-pane", "-p", "-J", "-S", "-")

    def wait_for(self, pattern: str) -> str:
        """The screen once `pattern` (a regex) shows on it; fails the test after SCREEN_WAIT."""
        deadline = time.monotonic() + SCREEN_WAIT
        while True:
            screen = self.text()
            if re.search(pattern, screen, re.MULTILINE):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen:\n{screen}")
            time.sleep(0.05)  # a poll of the screen, not a synchronisation

    def exit_status(self) -> int:
        """The client's exit code, once it has exited."""
        match = EXITED.search(self.wait_for(EXITED.pattern))
        assert match is not None
        return int(match.group(1))

    def close(self) -> None:
        subprocess.run([*self._tmux, "kill-server"], capture_output=True, timeout=10)
