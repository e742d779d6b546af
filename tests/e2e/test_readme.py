"""Every example of README.md that needs only this machine, run in bash as a reader would run it
and compared with what the README shows after it, so that an example that drifts fails a test.

A ```console block is a session: each `$ ` line is a command (a line ending in `\\` goes on
onto the next), and the lines up to the next `$ ` are what it prints, stdout and stderr
together. HTML comments just before the fence, invisible on the rendered page, say how to run it:

- `<!-- not run: REASON -->`: the block is not run (it needs grpcurl, a terminal...);
- `<!-- setup: COMMAND -->`: COMMAND runs first in the block's shell, unchecked (the server a
  block assumes is running, in another terminal);
- `<!-- continues the block before -->`: the block goes on in the shell of the block before
  (its variables, its servers).

Each session runs in a fresh temporary folder, in one bash, with a clean environment (no CHAT_*
variable of the developer's), the virtual environment's `bin` first on PATH and this checkout
first on PYTHONPATH, so that `chat` and `chat-server` run the code under test; `just` reads the
checkout's justfile and runs its recipes in the session's folder. A command ending
in `&` runs in the background: the test waits until the server accepts on its ports and has
printed as many lines as the README shows (a server's log goes on, the rest is not compared),
and stops it (SIGTERM) when the session ends.

What varies from run to run is masked in both the README's lines and the output (MASKS), and
`...` in a README line stands for any text. The ports of the README (PORTS) are replaced by
free ones, in the commands and as the defaults (CHAT_PORT, CHAT_WEB_PORT, CHAT_SERVER), and
replaced back in the output; the session's folder is written `/home/ann/grpc.chat` (HOME_SHOWN).
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest

from harness import ROOT, clean_environment, free_port

README = ROOT / "README.md"
NOT_RUN = re.compile(r"<!-- not run: (.*) -->")
"""A block left out, and why."""
SETUP = re.compile(r"<!-- setup: (.*) -->")
"""A command run before the block, unchecked."""
CONTINUES = "<!-- continues the block before -->"
"""The block goes on in the shell of the block before."""
PORTS = (50051, 8080, 9100, 6379, 50061, 50062, 8081, 8082)
"""The README's ports (gRPC, web, metrics, Redis, two replicas' gRPC and web), each replaced by a
free one when the test runs."""
HOME_SHOWN = "/home/ann/grpc.chat"
"""The folder the README's examples run in."""
MASKS = (
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:\+00:00|Z)?"), "<time>"),
    (re.compile(r"uptime: \d+s"), "uptime: <n>s"),
    (re.compile(r'"uptime_seconds": [0-9.e+-]+'), '"uptime_seconds": <n>'),
    (re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*"), "<token>"),
    (re.compile(r"(_seconds_sum\{[^}]*\}) [0-9.e+-]+"), r"\1 <seconds>"),
    (re.compile(r" [0-9.]+ms in="), " <n>ms in="),
    (re.compile(r'"duration_ms": [0-9.]+'), '"duration_ms": <n>'),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
)
"""What differs between runs: times, uptimes, signed tokens, call durations, clients' ports."""
TOOLS = ("redis-server", "curl", "openssl", "od")
"""Programs beside the project's that examples run: a session that needs one that is missing is
skipped, naming it, as the suite's other tests skip (`.ci/run` installs them all)."""
COMMAND_TIMEOUT = 30.0
"""Seconds a command may take before the test fails."""


@dataclass
class Block:
    """A ```console block: where it starts, its commands with the lines shown after each, and
    its markers."""

    line: int
    commands: list[tuple[str, list[str]]] = field(default_factory=list)
    not_run: str | None = None
    setup: list[str] = field(default_factory=list)
    continues: bool = False
    preamble: list[str] = field(default_factory=list)
    """Lines before the first command: a block that shows no command must not be run."""
    unknown: list[str] = field(default_factory=list)
    """Comments above the fence that are no marker (a misspelt one would be ignored)."""

    def commands_text(self) -> list[str]:
        """The block's commands, as written."""
        return [command for command, _ in self.commands]


def console_blocks(text: str) -> list[Block]:
    """Every ```console block of a Markdown text, with the comments just before its fence."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```console":
            index += 1
            continue
        block = Block(line=index + 1)
        above = index - 1
        while above >= 0 and lines[above].startswith("<!--"):
            comment = lines[above].strip()
            if found := NOT_RUN.fullmatch(comment):
                block.not_run = found.group(1).strip()
            elif found := SETUP.fullmatch(comment):
                block.setup.insert(0, found.group(1))
            elif comment == CONTINUES:
                block.continues = True
            else:
                block.unknown.append(comment)
            above -= 1
        index += 1
        while lines[index].strip() != "```":
            line = lines[index]
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    index += 1
                    command += "\n" + lines[index]
                block.commands.append((command, []))
            elif block.commands:
                block.commands[-1][1].append(line)
            else:
                block.preamble.append(line)
            index += 1
        blocks.append(block)
        index += 1
    return blocks


def sessions(blocks: list[Block]) -> list[list[Block]]:
    """The blocks to run, each with the blocks that continue it."""
    grouped: list[list[Block]] = []
    for block in blocks:
        if block.not_run is not None:
            continue
        if block.continues:
            grouped[-1].append(block)
        else:
            grouped.append([block])
    return grouped


BLOCKS = console_blocks(README.read_text())
SESSIONS = sessions(BLOCKS)


def masked(line: str) -> str:
    """A line with what varies between runs replaced by a name for it."""
    for pattern, name in MASKS:
        line = pattern.sub(name, line)
    return line


def matches(shown: str, printed: str) -> bool:
    """Whether a printed line is the README's line, `...` in it standing for any text."""
    pattern = ".*".join(re.escape(part) for part in masked(shown).split("..."))
    return re.fullmatch(pattern, masked(printed)) is not None


class Shell:
    """One bash for a session, fed one command at a time, each command's output in a file."""

    def __init__(self, workdir: Path, outputs: Path, ports: dict[int, int]) -> None:
        self.workdir = workdir
        self.outputs = outputs
        self.ports = ports
        self.count = 0
        self.env = clean_environment(
            {
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                "HOME": str(workdir),
                "CHAT_PORT": str(ports[50051]),
                "CHAT_WEB_PORT": str(ports[8080]),
                "CHAT_SERVER": f"localhost:{ports[50051]}",
                "JUST_JUSTFILE": str(ROOT / "justfile"),
                "JUST_WORKING_DIRECTORY": str(workdir),
            }
        )
        self.bash = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=self.env,
            start_new_session=True,
        )

    def on_free_ports(self, command: str) -> str:
        """A command of the README with its ports replaced by the session's free ones."""
        for shown, port in self.ports.items():
            command = re.sub(rf"\b{shown}\b", str(port), command)
        return command

    def run(self, command: str) -> tuple[Path, int | None]:
        """Runs a command to its end, or, ending in `&`, until it is in the background; returns
        its output's file and its background pid."""
        assert self.bash.stdin is not None and self.bash.stdout is not None
        self.count += 1
        output = self.outputs / f"{self.count}.out"
        script = f"{{\n{command}\n}} </dev/null >{output} 2>&1\necho __done__ $!\n"
        self.bash.stdin.write(script.encode())
        self.bash.stdin.flush()
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.bash.stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = self.bash.stdout.readline().decode()
            assert line, f"bash exited while running {command!r}"
            if line.startswith("__done__"):
                pid = line.split()[1:]
                background = command.rstrip().endswith("&")
                return output, int(pid[0]) if background and pid else None
        raise AssertionError(f"{command!r} did not end within {COMMAND_TIMEOUT}s")

    def stop(self) -> None:
        """Stops the background jobs (SIGTERM, as a reader's `kill %1`), then bash."""
        assert self.bash.stdin is not None
        try:
            self.bash.stdin.write(b"kill $(jobs -p) 2>/dev/null; wait; exit 0\n")
            self.bash.stdin.close()
            self.bash.wait(COMMAND_TIMEOUT)
        finally:
            if self.bash.poll() is None:
                os.killpg(self.bash.pid, signal.SIGKILL)
                self.bash.wait()


def server_ports(command: str, env: dict[str, str]) -> list[int]:
    """The ports a background `chat-server` or `redis-server --port N` command listens on, by
    its flags or the defaults."""
    if command.startswith("redis-server"):
        return [int(re.findall(r"--port (\d+)", command)[0])]
    assert "chat-server" in command, f"the test waits only for servers: {command!r}"
    ports = []
    for flag, default in (("--port", "CHAT_PORT"), ("--web-port", "CHAT_WEB_PORT")):
        given = re.search(rf"{flag}[ =](\d+)", command)
        ports.append(int(given.group(1) if given else env[default]))
    if metrics := re.search(r"--metrics-port[ =](\d+)", command):
        ports.append(int(metrics.group(1)))
    return [port for port in ports if port]


def wait_for(pid: int, ports: list[int], output: Path, lines: int) -> None:
    """Returns once the process accepts on every port and has printed `lines` lines; fails if
    it exits first."""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    waiting = list(ports)
    while time.monotonic() < deadline:
        assert Path(f"/proc/{pid}").exists(), f"exited:\n{output.read_text()}"
        while waiting:
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.2).close()
            except OSError:
                break
            waiting.pop(0)
        if not waiting and len(output.read_text().splitlines()) >= lines:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready within {COMMAND_TIMEOUT}s:\n{output.read_text()}")


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    """A session's bash in a fresh folder, its background jobs stopped at the end."""
    workdir = tmp_path / "work"
    outputs = tmp_path / "outputs"
    workdir.mkdir()
    outputs.mkdir()
    running = Shell(workdir, outputs, {shown: free_port() for shown in PORTS})
    yield running
    running.stop()


def test_every_block_is_run_or_says_why_not() -> None:
    """A block that shows no command, or is left out, says why in its marker."""
    assert BLOCKS, "README.md has no console block"
    for block in BLOCKS:
        assert not block.unknown, f"README.md:{block.line}: not a marker: {block.unknown}"
        if block.not_run is not None:
            assert block.not_run, f"README.md:{block.line}: the marker gives no reason"
            assert not block.setup and not block.continues, f"README.md:{block.line}"
        else:
            assert block.commands and not block.preamble, (
                f"README.md:{block.line}: a block without a command first needs <!-- not run: -->"
            )
    for block, after in pairwise(BLOCKS):
        if after.continues:
            assert block.not_run is None, f"README.md:{after.line} continues a block not run"


@pytest.mark.parametrize("session", SESSIONS, ids=[f"line-{s[0].line}" for s in SESSIONS])
def test_the_readme_example_prints_what_the_readme_shows(
    session: list[Block], shell: Shell
) -> None:
    """Each command of the session prints the README's lines after it, masked as MASKS says."""
    text = " ".join(line for block in session for line in block.setup + block.commands_text())
    for tool in TOOLS:
        if re.search(rf"\b{tool}\b", text) and shutil.which(tool) is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{tool} is not installed; .ci/run installs it")
            pytest.skip(f"{tool} is not installed")
    home = str(shell.workdir.resolve())
    back = {str(port): str(shown) for shown, port in shell.ports.items()}
    for block in session:
        for setup in map(shell.on_free_ports, block.setup):
            output, pid = shell.run(setup)
            if pid is not None:
                wait_for(pid, server_ports(setup, shell.env), output, 0)
        for command, shown in block.commands:
            running = shell.on_free_ports(command)
            output, pid = shell.run(running)
            if pid is not None:
                wait_for(pid, server_ports(running, shell.env), output, len(shown))
            printed = output.read_text().replace(home, HOME_SHOWN).splitlines()
            printed = [re.sub(r"\b\d+\b", lambda n: back.get(n[0], n[0]), p) for p in printed]
            if pid is not None:
                printed = printed[: len(shown)]
            same = len(printed) == len(shown) and all(map(matches, shown, printed))
            assert same, (
                f"README.md:{block.line}: $ {command}\n"
                + "README shows:\n"
                + "\n".join(shown)
                + "\nprinted:\n"
                + "\n".join(printed)
            )
