"""`chat` as a shell command: every wrong value is named in one line with exit code 2, before any
connection; `messages --follow` outlives a server restart."""

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from harness import ROOT, ServerProcess, free_port, run_client


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["messages", "--after", "-1"], "--after: -1 is not between 0 and"),
        (["messages", "--limit", "-1"], "--limit: -1 is not between 0 and"),
        (["messages", "--limit", "many"], "--limit: 'many' is not a whole number"),
        (["--server", "localhost:99999", "stats"], "port 99999 is not between 1 and 65535"),
        (["stats", "--server", "localhost"], "'localhost' is not HOST:PORT"),
        (["chat", "--user", ""], "--user: '' is not a name"),
        (["chat", "--room", "no spaces"], "--room: 'no spaces' is not a room name"),
        (["chat", "--room", "@bob,ann"], "--room: '@bob,ann' is not a room name"),
        (["--bogus"], "unknown option --bogus"),
        (["stats", "--bogus"], "unknown option --bogus"),
        (["--bogus", "stats"], "unknown option --bogus"),
        (["talk"], "COMMAND: 'talk' is not one of chat, stats, messages"),
        (["stats", "--room"], "Option '--room' requires an argument"),
        ([], "a COMMAND is needed: chat, stats, messages"),
    ],
)
def test_a_wrong_value_is_named_in_one_line_with_exit_code_2(args: list[str], named: str) -> None:
    result = run_client(["--server", f"127.0.0.1:{free_port()}", *args])
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.rstrip("\n")], result.stderr
    assert result.stderr.startswith("chat: ")
    assert named in result.stderr
    assert "(see chat --help)" in result.stderr


def test_following_messages_goes_on_after_the_server_restarts(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    servers = [ServerProcess(tmp_path / "server.log", store).start()]
    follower = pexpect.spawn(
        sys.executable,
        ["-m", "chat.client", "--server", servers[0].address, "messages", "--follow"],
        cwd=str(ROOT),
        encoding="utf-8",
        timeout=20,
    )
    seen = io.StringIO()
    follower.logfile_read = seen
    try:
        say(servers[0], "before the restart")
        follower.expect("ann: before the restart")
        assert servers[0].stop() == 0
        follower.expect("lost the server at 127.0.0.1:")
        port = servers[0].port
        servers.append(ServerProcess(tmp_path / "again.log", store, port=port).start())
        follower.expect("is back; following again after message 1")
        say(servers[1], "after the restart")
        follower.expect("ann: after the restart")
        follower.sendintr()
        follower.expect(pexpect.EOF)
        follower.close()
        assert follower.exitstatus == 0
        assert "after_id" not in seen.getvalue()
        assert "Traceback" not in seen.getvalue()
    finally:
        follower.terminate(force=True)
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait()


def say(server: ServerProcess, text: str) -> None:
    result = run_client(["--server", server.address, "chat", "--user", "ann"], text + "\n")
    assert result.returncode == 0, result.stderr


def test_a_server_from_the_environment_that_is_no_address_names_the_variable() -> None:
    result = run_client(["stats"], env={"CHAT_SERVER": "localhost"})
    assert result.returncode == 2
    assert result.stderr == "chat: CHAT_SERVER: 'localhost' is not HOST:PORT (see chat --help)\n"


def test_the_connection_flags_work_before_and_after_the_command(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server.log", "memory://").start()
    try:
        for args in (["--server", server.address, "stats"], ["stats", "--server", server.address]):
            result = run_client(args, env={"CHAT_SERVER": f"127.0.0.1:{free_port()}"})
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("Server has 0 messages")
    finally:
        server.stop()


def test_the_chat_help_explains_user_and_room() -> None:
    shown = " ".join(
        run_client(["chat", "--help"], env={"CHAT_USER": "", "CHAT_ROOM": ""}).stdout.split()
    )
    assert (
        "--user USER your name in the room: 1-64 of A-Z a-z 0-9 _ . - (default: the user a "
        "signed --token names, else your login name" in shown
    )
    assert "--room ROOM the room to enter" in shown
    assert "(default: general; env CHAT_ROOM)" in shown


def test_messages_shows_messages_as_they_are_now_and_json_the_whole_log(
    server: ServerProcess, post: Callable[..., int]
) -> None:
    first = post(server, "ann", message="helo")
    second = post(server, "ann", message="gone soon")
    post(server, "ann", message="hello", action=1, target_id=first)
    post(server, "ann", action=2, target_id=second)
    post(server, "bob", message="👍", action=3, target_id=first)
    post(server, "bob", message="👍", action=4, target_id=first)
    post(server, "bob", message="the plan", action=7)
    post(server, "bob", message="hi ann", reply_to=first)
    lines = run_client(["--server", server.address, "messages"]).stdout.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["ann: hello", "bob: hi ann"]
    printed = run_client(["--server", server.address, "messages", "--json"]).stdout
    log = [json.loads(line) for line in printed.splitlines()]
    assert [(entry["kind"], entry["text"]) for entry in log] == [
        ("CHAT", "helo"),
        ("CHAT", "gone soon"),
        ("EDIT", "hello"),
        ("DELETE", ""),
        ("REACTION", "👍"),
        ("REACTION", "👍"),
        ("TOPIC", "the plan"),
        ("CHAT", "hi ann"),
    ]
    assert [log[2]["target_id"], log[3]["target_id"], log[4]["target_id"]] == [1, 2, 1]
    assert ("removed" in log[4], log[5]["removed"], log[7]["reply_to"]) == (False, True, 1)
