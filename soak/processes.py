"""The real processes a soak run starts, kills and restarts: chat servers and a redis-server.

Each keeps its port across restarts, so clients find a restarted process where the old one was.
"""

import asyncio
import signal
import subprocess
import sys
from asyncio.subprocess import Process as Child
from pathlib import Path

from harness import free_port, rss_kib

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 20.0


class StartError(Exception):
    """A process did not start: it exited, or its port stayed closed."""


async def wait_accepting(name: str, port: int, proc: Child) -> None:
    """Returns once the port accepts connections; raises StartError if the process dies first
    or takes longer than START_SECONDS."""
    try:
        async with asyncio.timeout(START_SECONDS):
            while not await _accepts(port):
                if proc.returncode is not None:
                    raise StartError(f"{name} exited with {proc.returncode} before accepting")
                await asyncio.sleep(0.05)  # polling the port: nothing else says it is open
    except TimeoutError:
        raise StartError(
            f"{name} accepted nothing on port {port} in {START_SECONDS:.0f}s"
        ) from None


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


class Process:
    """A child process on a fixed port that can be killed and started again."""

    def __init__(self, name: str, port: int, log_path: Path | None) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self.proc: Child | None = None
        self.starts = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    async def start(self) -> None:
        """Starts the process and waits until its port accepts connections."""
        if self.log_path is None:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
            )
        else:
            with self.log_path.open("ab") as log:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.command(), stdout=log, stderr=log, cwd=ROOT
                )
        self.starts += 1
        await wait_accepting(self.name, self.port, self.proc)

    async def stop(self, signum: int = signal.SIGKILL) -> int:
        """Sends `signum` (SIGKILL unless told) and waits for the process to exit."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.returncode is None:
            proc.send_signal(signum)
        async with asyncio.timeout(30):
            return await proc.wait()

    def rss_kib(self) -> int:
        """Resident memory of the process now, from /proc (Linux)."""
        assert self.proc is not None
        return rss_kib(self.proc.pid)


class ServerProcess(Process):
    """`python -m chat.server` on 127.0.0.1, its log appended to a file across restarts."""

    def __init__(self, name: str, store: str, log_path: Path, *flags: str) -> None:
        super().__init__(name, free_port(), log_path)
        self.store = store
        self.flags = flags
        self.address = f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "chat.server", "--host", "127.0.0.1"),
            *("--port", str(self.port), "--web-port", "0", "--store", self.store, *self.flags),
        ]

    def log(self) -> str:
        assert self.log_path is not None
        return self.log_path.read_text(errors="replace")


class RedisProcess(Process):
    """redis-server with an append-only file fsynced on every write: a SIGKILL loses no reply."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("redis", free_port(), None)
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)),
        ]
