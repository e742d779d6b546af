"""Servers (chat and Redis) and clients run as real processes, with a clean environment: a
developer's exported CHAT_* variables never reach them."""

import filecmp
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.paths import ROOT


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its CHAT_* variables, and `extra` added."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith("CHAT_")}
    return {**kept, **(extra or {})}


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
        self.env = clean_environment(env)
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


def wait_accepting(port: int, proc: "subprocess.Popen[Any]", seconds: float = 15) -> None:
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
        env=clean_environment({"PYTHONUNBUFFERED": "1", **(env or {})}),
    )


def refused_server_start(*flags: str, env: dict[str, str] | None = None, code: int = 1) -> str:
    """Runs `python -m chat.server --store memory:// FLAGS` expecting it to refuse to start;
    asserts it says why in one line with exit code `code` (1: it could not start, 2: a setting
    cannot be right), and returns that line."""
    result = subprocess.run(
        [sys.executable, "-m", "chat.server", "--store", "memory://", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=clean_environment(env),
    )
    assert result.returncode == code, result.stderr
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
