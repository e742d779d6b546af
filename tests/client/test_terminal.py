"""The interactive client in a pseudo-terminal, against a real server over TCP."""

import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from chat.testing import ROOT, ServerProcess, run_client

Start = Callable[..., ServerProcess]
PROMPT = "ann@general>"


@pytest.fixture
def terminal() -> Iterator[Callable[[ServerProcess], tuple[pexpect.spawn, io.StringIO]]]:
    """Starts `chat chat --user ann` in a pseudo-terminal; every one is ended after the test."""
    children: list[pexpect.spawn] = []

    def spawn(server: ServerProcess) -> tuple[pexpect.spawn, io.StringIO]:
        env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
        child = pexpect.spawn(
            sys.executable,
            ["-m", "chat.client", "--server", server.address, "chat", "--user", "ann"],
            env=env,
            cwd=str(ROOT),
            encoding="utf-8",
            timeout=15,
            dimensions=(30, 120),
        )
        seen = io.StringIO()
        child.logfile_read = seen
        children.append(child)
        return child, seen

    yield spawn
    for child in children:
        child.terminate(force=True)


def say(server: ServerProcess, user: str, text: str) -> None:
    result = run_client(["--server", server.address, "chat", "--user", user], text + "\n")
    assert result.returncode == 0, result.stderr


def test_shows_others_messages_presence_and_its_own_then_quits_with_0(
    server_process: Start,
    terminal: Callable[[ServerProcess], tuple[pexpect.spawn, io.StringIO]],
) -> None:
    server = server_process()
    child, _ = terminal(server)
    child.expect("connected as ann in general")
    child.expect(PROMPT)
    say(server, "bob", "hi ann")
    child.expect("bob joined general")
    child.expect("bob.*: hi ann")
    child.expect("bob left general")
    child.sendline("hello bob")
    child.expect("ann.*: hello bob")
    history = run_client(["--server", server.address, "messages"])
    assert history.stdout.splitlines()[-1].endswith("[general] ann: hello bob")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_reconnects_after_a_restart_and_misses_nothing(
    server_process: Start,
    terminal: Callable[[ServerProcess], tuple[pexpect.spawn, io.StringIO]],
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    server = server_process(store)
    child, seen = terminal(server)
    child.expect(PROMPT)
    say(server, "bob", "before the restart")
    child.expect("before the restart")
    assert server.stop() == 0
    child.expect("reconnecting in")
    again = server_process(store, port=server.port)
    say(again, "bob", "while ann was away")  # stored before or after ann is back
    child.expect("while ann was away")
    say(again, "bob", "after the restart")
    child.expect("after the restart")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    log = seen.getvalue()
    for text in ("before the restart", "while ann was away", "after the restart"):
        assert log.count(f": {text}") == 1, (text, log)


def test_a_line_typed_while_the_server_is_away_is_pending_then_sent_once(
    server_process: Start,
    terminal: Callable[[ServerProcess], tuple[pexpect.spawn, io.StringIO]],
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    server = server_process(store)
    child, _ = terminal(server)
    child.expect(PROMPT)
    assert server.stop() == 0
    child.expect("reconnecting in")
    child.sendline("typed while away")
    child.expect("pending: typed while away")
    again = server_process(store, port=server.port)
    child.expect(r"\d\d:\d\d:\d\d .*ann.*: typed while away")  # its ACK, once it is back
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    history = run_client(["--server", again.address, "messages"])
    assert [line.split("] ", 1)[1] for line in history.stdout.splitlines()] == [
        "ann: typed while away"
    ]


def test_a_bad_room_name_is_one_line_and_exit_1(
    server_process: Start,
    terminal: Callable[[ServerProcess], tuple[pexpect.spawn, io.StringIO]],
) -> None:
    server = server_process()
    env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chat.client", "--server", server.address, "chat", "--room", "no spaces"],
        env=env,
        cwd=str(ROOT),
        encoding="utf-8",
        timeout=15,
    )
    child.expect("INVALID_ARGUMENT: chat-room name")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
