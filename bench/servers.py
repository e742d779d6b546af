"""The servers under test, each its own process on a free port, started and stopped per round."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from bench.load import Endpoint
from chat.contract import bearer
from chat.server import tokens
from harness import free_port

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0

REFERENCE = "grpcio"
"""The tutorial's service on grpcio: what every ratio is taken against."""
OURS_MEMORY = "fast-memory"
OURS_SQLITE = "fast-sqlite"
OURS_REFERENCE_PATH = "betterproto-memory"
"""Ours on the reference path (betterproto on grpclib's documented API), memory store."""
BROADCAST = "grpcio-broadcast"
"""The tutorial's service on grpcio with the broadcast a grpcio user would write."""
FLOOR = "floor"
"""A plain socket server writing the same bytes: what a delivery costs at the least."""
OURS_SIGNED = "fast-signed"
"""fast-memory asking for a signed token (JWT) on every call."""
TARGETS = (REFERENCE, OURS_MEMORY, OURS_SQLITE, OURS_REFERENCE_PATH, OURS_SIGNED, BROADCAST, FLOOR)
SIGNED_SECRET = "the-benchmark-secret-for-signed-tokens-0123456789"
"""fast-signed asks for tokens signed with this HS256 secret; every call of its load carries one,
as a user's client would."""
SERVER_FLAGS = ("--rate-limit", "0", "--h2-max-connections-per-address", "20000")
"""Flood control off: one benchmark client sends thousands of messages a second on purpose, and
grpcio's service has no such limit; and every listener of fan-out and the crowd connects from
this one address (a public deployment's default allows 256)."""

FAST = ("--encoding", "handwritten", "--http2", "direct")
REFERENCE_PATH = ("--encoding", "betterproto", "--http2", "grpclib")


def command(target: str, port: int, workdir: Path) -> list[str]:
    """How each target is run: ours with its defaults (INFO logging: one line per call) on the
    path it names, so a gate that refuses the fast path stops the run instead of hiding."""
    address = ["--host", HOST, "--port", str(port)]
    if target == REFERENCE:
        return [sys.executable, "-m", "bench.reference", *address]
    if target == BROADCAST:
        return [sys.executable, "-m", "bench.reference", *address, "--broadcast"]
    if target == FLOOR:
        return [sys.executable, "-m", "bench.floor", *address]
    server = [sys.executable, "-m", "chat.server", *address, *SERVER_FLAGS, "--web-port", "0"]
    if target == OURS_REFERENCE_PATH:
        return [*server, "--store", "memory://", *REFERENCE_PATH]
    if target == OURS_SIGNED:
        return [*server, "--store", "memory://", "--jwt-secret", SIGNED_SECRET, *FAST]
    store = "memory://" if target == OURS_MEMORY else f"sqlite:///{workdir / 'bench.db'}"
    return [*server, "--store", store, *FAST]


def metadata(target: str) -> tuple[tuple[str, str], ...]:
    """What every call of the load sends to `target`: a signed token for fast-signed."""
    if target != OURS_SIGNED:
        return ()
    token = tokens.mint(SIGNED_SECRET.encode(), "HS256", "bench", ttl=24 * 3600)
    return tuple(bearer(token).items())


class ServerProcess:
    """One target running in `workdir` (its log and database there); stopped on exit."""

    def __init__(self, target: str, workdir: Path) -> None:
        self.target = target
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self._log_path = workdir / "server.log"
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                command(target, self.port, workdir), stdout=log, stderr=log, cwd=ROOT
            )
        self.endpoint = Endpoint(HOST, self.port, self._proc.pid, metadata(target))

    async def ready(self) -> "ServerProcess":
        """Returns once the port accepts connections; fails early if the server died."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            failure = self.failure()
            if failure:
                raise RuntimeError(failure)
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return self
        raise RuntimeError(f"{self.target} accepted nothing within {START_TIMEOUT:.0f}s")

    def failure(self) -> str | None:
        """Why the server is gone (its exit code and last log line), or None while it runs."""
        if self._proc.poll() is None:
            return None
        lines = self._log_path.read_text(errors="replace").splitlines()
        last = [line for line in lines[-20:] if " INFO " not in line][-1:]
        return f"{self.target} exited with code {self._proc.returncode}" + "".join(
            f": {line.strip()}" for line in last
        )

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
