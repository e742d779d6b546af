"""The interactive client against a real server over TCP: in a pseudo-terminal (pexpect) where
the bytes matter, in a tmux pane where what the user sees on the screen matters."""

import io
import signal
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pexpect
import pytest

from harness import RedisProcess, Screen, ServerProcess, free_port, run_client

Start = Callable[..., ServerProcess]
Open = Callable[..., Screen]
PROMPT = "ann@general>"
TIME = r"\d\d:\d\d:\d\d"
N = r"#\d+"
"""A message's short number, as the chat shows it before the user."""


def say(server: ServerProcess, user: str, text: str, room: str = "general") -> None:
    result = run_client(
        ["--server", server.address, "chat", "--user", user, "--room", room], text + "\n"
    )
    assert result.returncode == 0, result.stderr


def history(server: ServerProcess) -> str:
    return run_client(["--server", server.address, "messages"]).stdout


def test_entering_a_room_shows_its_last_messages_and_who_is_online(
    server: ServerProcess, screen: Open
) -> None:
    for text in ("one", "two", "three"):
        say(server, "bob", text)
    carol = screen("--server", server.address, "chat", "--user", "carol")
    carol.wait_for("carol@general>")
    ann = screen("--server", server.address, "chat", "--user", "ann")
    seen = ann.wait_for("ann@general>")
    lines = [line for line in seen.splitlines() if line.strip()]
    assert lines[0] == f"-- connecting to {server.address} as ann"
    assert lines[1].startswith(f"-- connected to {server.address} as ann; /help lists")
    assert lines[2] == "-- general: the last 3 messages"
    assert [line.split(" ", 2)[2] for line in lines[3:6]] == [
        "#1 bob: one",
        "#2 bob: two",
        "#3 bob: three",
    ]
    assert lines[6] == "-- online in general: carol"
    carol.wait_for(f"{TIME} \\* ann joined general")


def test_a_sent_line_shows_once_pending_until_its_ack_then_as_stored(
    server: ServerProcess, screen: Open
) -> None:
    ann = screen("--server", server.address, "chat", "--user", "ann")
    ann.wait_for(PROMPT)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)  # the ACK cannot come before the server goes on
    try:
        ann.type("hello bob")
        ann.wait_for(r"^  ann: hello bob  \(sending\)$")
    finally:
        server.proc.send_signal(signal.SIGCONT)
    ann.wait_for(f"{TIME} {N} ann: hello bob$")
    ann.type("/help")
    seen = ann.wait_for("/quit +leave")
    assert seen.count("hello bob") == 1, seen
    assert history(server).endswith("[general] ann: hello bob\n")


def test_irc_commands_are_carried_out_and_never_posted(server: ServerProcess, screen: Open) -> None:
    bob = screen("--server", server.address, "chat", "--user", "bob")
    bob.wait_for("bob@general>")
    ann = screen("--server", server.address, "chat", "--user", "ann")
    ann.wait_for(PROMPT)
    ann.type("/help")
    ann.wait_for("/join ROOM +leave this room for ROOM")
    ann.type("/who")
    ann.wait_for("-- online in general: bob and you")
    ann.type("/me waves")
    bob.wait_for(f"{TIME} {N} \\* ann waves")
    ann.type("/dance")
    ann.wait_for("-- unknown command /dance: /help lists the commands")
    ann.type("//dance is a command")
    bob.wait_for(f"{TIME} {N} ann: /dance is a command")
    ann.type("/join no spaces")
    ann.wait_for("-- 'no spaces' is not a room name: 1-64 characters")
    ann.type("/join dev")
    ann.wait_for("-- dev: no messages yet")
    ann.type("in dev")
    ann.wait_for(f"{TIME} {N} ann: in dev")
    ann.wait_for("ann@dev>")
    ann.type("/rooms")
    ann.wait_for(
        r"-- 2 rooms; /join ROOM to enter one\n--   dev \(1 online\)\n--   general \(1 online\)"
    )
    bob.wait_for("ann left general")
    ann.type("/quit")
    assert ann.exit_status() == 0
    assert "in dev" not in bob.text()
    stored = history(server)
    assert "* ann waves" in stored
    assert "[dev] ann: in dev" in stored
    for command in ("/help", "/who", "/dance\n", "/join", "/rooms", "/quit"):
        assert command not in stored, stored


@pytest.mark.parametrize("key", ["C-c", "C-d"])
def test_ctrl_c_and_ctrl_d_leave_at_once_with_0_and_no_traceback(
    server: ServerProcess, screen: Open, key: str
) -> None:
    ann = screen("--server", server.address, "chat", "--user", "ann")
    ann.wait_for(PROMPT)
    ann.type("last words")
    ann.wait_for(f"{TIME} {N} ann: last words")
    ann.press(key)
    assert ann.exit_status() == 0
    seen = ann.text()
    assert "Traceback" not in seen and "exception" not in seen, seen


def test_a_user_the_token_does_not_name_is_refused_before_anything_says_connected(
    screen: Open, tmp_path: Path
) -> None:
    secret = "0123456789abcdef0123456789abcdef"
    server = ServerProcess(tmp_path / "server.log", "memory://", "--jwt-secret", secret).start()
    try:
        claims = {"sub": "ann", "exp": int(time.time()) + 600}
        anns = jwt.encode(claims, secret, algorithm="HS256")
        bob = screen("--server", server.address, "--token", anns, "chat", "--user", "bob")
        assert bob.exit_status() == 1
        shown = bob.text()
        assert "PERMISSION_DENIED: chat-user 'bob' is not you" in shown, shown
        assert "-- connected" not in shown and "bob@general>" not in shown, shown
    finally:
        server.stop()


def test_a_server_that_was_never_up_is_said_so_and_the_client_exits_1(
    terminal: Callable[..., tuple[pexpect.spawn, io.StringIO]],
) -> None:
    child, seen = terminal(f"127.0.0.1:{free_port()}", "--user", "ann")
    child.expect("chat: cannot reach the server at 127.0.0.1:")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "connected to" not in seen.getvalue()


def test_a_refused_token_is_said_before_anything_claims_a_connection(
    tmp_path: Path, terminal: Callable[..., tuple[pexpect.spawn, io.StringIO]]
) -> None:
    server = ServerProcess(tmp_path / "server.log", "memory://", env={"CHAT_TOKEN": "s3cret"})
    server.start()
    try:
        child, seen = terminal(server.address, "--user", "ann", CHAT_TOKEN="")
        child.expect("chat: the server does not know who you are \\(UNAUTHENTICATED")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1
        assert "connected to" not in seen.getvalue()
    finally:
        server.stop(signal.SIGKILL)


@pytest.mark.parametrize(("login", "user"), [("zed", "zed"), ("not a name!", "anonymous")])
def test_the_default_user_is_the_login_name_when_the_server_would_take_it(
    server: ServerProcess,
    terminal: Callable[..., tuple[pexpect.spawn, io.StringIO]],
    login: str,
    user: str,
) -> None:
    child, _ = terminal(server.address, LOGNAME=login, CHAT_USER="")
    child.expect(f"{user}@general>")
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_others_messages_and_presence_show_live(
    server_process: Start, terminal: Callable[..., tuple[pexpect.spawn, io.StringIO]]
) -> None:
    server = server_process()
    child, _ = terminal(server.address, "--user", "ann")
    child.expect(PROMPT)
    say(server, "bob", "hi ann")
    child.expect("bob joined general")
    child.expect("bob.*: hi ann")
    child.expect("bob left general")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_reconnects_after_a_restart_saying_so_once_and_misses_nothing(
    server_process: Start,
    terminal: Callable[..., tuple[pexpect.spawn, io.StringIO]],
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    server = server_process(store)
    child, seen = terminal(server.address, "--user", "ann")
    child.expect(PROMPT)
    say(server, "bob", "before the restart")
    child.expect("before the restart")
    assert server.stop() == 0
    child.expect("-- disconnected: the server is shutting down; reconnecting")
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
    assert log.count("-- disconnected") == 1, log
    assert log.count("-- reconnected") == 1, log
    assert "after_id" not in log


def test_a_line_typed_while_the_server_is_away_is_pending_then_stored_once(
    server_process: Start, screen: Open, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    server = server_process(store)
    ann = screen("--server", server.address, "chat", "--user", "ann")
    ann.wait_for(PROMPT)
    assert server.stop() == 0
    ann.wait_for("-- disconnected")
    ann.type("typed while away")
    ann.wait_for(r"^  ann: typed while away  \(waiting for the server\)$")
    again = server_process(store, port=server.port)
    ann.wait_for(f"{TIME} {N} ann: typed while away$")
    ann.type("/help")
    seen = ann.wait_for("/quit +leave")
    assert seen.count("typed while away") == 1, seen
    assert history(again).endswith("[general] ann: typed while away\n")


def test_leaving_while_the_server_is_away_says_what_was_never_sent(
    server: ServerProcess, screen: Open
) -> None:
    ann = screen("--server", server.address, "chat", "--user", "ann")
    ann.wait_for(PROMPT)
    assert server.stop() == 0
    ann.wait_for("-- disconnected")
    ann.type("lost words")
    ann.wait_for(r"^  ann: lost words  \(waiting for the server\)$")
    ann.press("C-d")
    assert ann.exit_status() == 0
    assert "-- not sent: 1 line, never acknowledged" in ann.text()


def test_a_refused_line_is_named_in_its_error_and_leaves_the_others_to_their_acks(
    tmp_path: Path, screen: Open
) -> None:
    server = ServerProcess(
        tmp_path / "server.log", "memory://", "--max-text-bytes", "20", "--rate-limit", "0"
    )
    server.start()
    try:
        ann = screen("--server", server.address, "chat", "--user", "ann")
        ann.wait_for(PROMPT)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)  # all three are pending when the answers come
        try:
            for text in ("short one", "x" * 30, "short two"):
                ann.type(text)
            ann.wait_for(r"^  ann: short two  \(sending\)$")
        finally:
            server.proc.send_signal(signal.SIGCONT)
        ann.wait_for(f"{TIME} {N} ann: short one$")
        ann.wait_for(f"not sent: message is 30 bytes; the limit is 20 .*: {'x' * 30}$")
        ann.wait_for(f"{TIME} {N} ann: short two$")
        assert "(sending)" not in ann.text()
        stored = [line.split("] ", 1)[1] for line in history(server).splitlines()]
        assert stored == ["ann: short one", "ann: short two"]
    finally:
        server.stop(signal.SIGKILL)


def test_ctrl_d_while_the_server_is_down_leaves_at_once(
    server: ServerProcess, terminal: Callable[..., tuple[pexpect.spawn, io.StringIO]]
) -> None:
    child, _ = terminal(server.address, "--user", "ann")
    child.expect(PROMPT)
    assert server.stop() == 0
    child.expect("-- disconnected")
    started = time.monotonic()
    child.sendcontrol("d")
    child.expect(pexpect.EOF, timeout=5)
    child.close()
    assert child.exitstatus == 0
    assert time.monotonic() - started < 2.0


def test_an_outage_of_redis_is_told_once_when_it_begins_and_once_when_it_ends(
    redis_server: RedisProcess,
    terminal: Callable[..., tuple[pexpect.spawn, io.StringIO]],
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "server.log", redis_server.url).start()
    try:
        child, seen = terminal(server.address, "--user", "ann")
        child.expect(PROMPT)
        child.sendline("ready")
        child.expect(rf"{TIME} {N} \S*ann\S*: ready")  # acknowledged: the stream is open
        redis_server.stop()
        child.expect("-- disconnected: the server cannot store messages now: lost Redis")
        redis_server.start()
        child.expect("-- reconnected", timeout=30)
        child.sendline("still here")
        child.expect(rf"{TIME} {N} \S*ann\S*: still here")
        assert seen.getvalue().count("-- disconnected") == 1, seen.getvalue()
        assert seen.getvalue().count("-- reconnected") == 1, seen.getvalue()
    finally:
        server.stop(signal.SIGKILL)


def test_a_dumb_terminal_gets_the_line_mode_of_pipes(
    server: ServerProcess, terminal: Callable[..., tuple[pexpect.spawn, io.StringIO]]
) -> None:
    child, seen = terminal(server.address, "--user", "ann", TERM="dumb")
    child.sendline("plain words")
    child.expect("Server Responding to plain words")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "\x1b[" not in seen.getvalue()
