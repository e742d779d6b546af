"""`chat-server` as a shell command: a help that shows every default and variable, and a failure
to start that is one line naming the value at fault, with nothing printed before it."""

import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import pexpect

from chat.server import config
from chat.server.config import Settings
from harness import (
    ROOT,
    ServerProcess,
    clean_environment,
    free_port,
    refused_server_start,
    run_client,
)


def server_command(
    *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chat.server", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=clean_environment(env),
    )


def test_the_help_shows_every_flags_default_and_variable_under_its_heading() -> None:
    result = server_command("--help")
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stdout.split())
    flags = [field for field in dataclasses.fields(Settings) if config.SETTING in field.metadata]
    for field in flags:
        flag = "--" + field.name.replace("_", "-")
        assert f"{flag} " in shown, flag
        assert f"env var: CHAT_{field.name.upper()};" in shown, field.name
    assert shown.count("; default: ") == len(flags)
    assert "[env var: CHAT_STORE; default: sqlite:///chat.db]" in shown
    assert "sqlite:////PATH (four slashes: an absolute path" in shown
    store = shown.index("Store (what the --store URL keeps, and how): ")
    for flag in ("--store ", "--max-memory-bytes ", "--presence-interval ", "--presence-timeout "):
        assert shown.index(flag) > store, flag
    assert "--edit-window SECONDS how long after sending a message its author may edit it" in shown


def test_an_unknown_flag_is_named_in_one_line_with_exit_code_2() -> None:
    result = server_command("--bogus")
    assert result.returncode == 2
    assert result.stderr == "chat-server: unknown option --bogus (see chat-server --help)\n"


def test_a_drain_time_from_the_environment_that_is_no_number_is_one_line_with_exit_code_2() -> None:
    result = server_command(env={"CHAT_DRAIN_SECONDS": "soon"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "chat-server: CHAT_DRAIN_SECONDS: 'soon' is not a number (see chat-server --help)\n"
    )


def test_a_negative_drain_time_from_a_flag_is_one_line_with_exit_code_2() -> None:
    result = server_command("--drain-seconds", "-5")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "chat-server: --drain-seconds: -5.0 is not in the range x>=0 (see chat-server --help)\n"
    )


def test_a_store_url_with_no_backend_is_one_line_with_exit_code_2() -> None:
    line = refused_server_start("--store", "postgres://db", code=2)
    assert line.startswith("chat-server: --store: 'postgres://db' names no store; use memory://")


def test_a_host_it_cannot_listen_on_is_named() -> None:
    line = refused_server_start("--host", "999.1.1.1", "--port", str(free_port()))
    assert "cannot listen on --host 999.1.1.1 --port" in line


def test_a_port_in_use_is_one_line_with_nothing_before_it(tmp_path: Path) -> None:
    running = ServerProcess(tmp_path / "server.log", "memory://").start()
    try:
        line = refused_server_start("--host", "127.0.0.1", "--port", str(running.port))
    finally:
        running.stop()
    assert f"cannot listen on --host 127.0.0.1 --port {running.port}" in line
    assert "address already in use" in line


def test_the_first_log_line_is_the_listening_line(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server.log", "memory://").start()
    assert server.stop() == 0
    assert " listening on 127.0.0.1:" in server.log().splitlines()[0]


def test_a_sqlite_url_whose_folder_is_missing_explains_three_and_four_slashes() -> None:
    line = refused_server_start("--store", "sqlite:///tmp/no-such-folder/chat.db")
    assert f"is the file {ROOT}/tmp/no-such-folder/chat.db" in line
    assert "sqlite:///chat.db is chat.db in the working directory" in line
    assert "four slashes make a path absolute" in line


def test_a_sqlite_url_meant_as_absolute_is_named_with_the_four_slash_form(tmp_path: Path) -> None:
    meant = tmp_path / "chat.db"
    line = refused_server_start("--store", f"sqlite://{meant}")  # three slashes in all
    assert f"for {meant} write sqlite:///{meant}" in line


def test_stopping_counts_its_open_calls_in_good_english(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server.log", "memory://").start()
    follower = pexpect.spawn(
        sys.executable,
        ["-m", "chat.client", "--server", server.address, "messages", "--follow"],
        cwd=str(ROOT),
        encoding="utf-8",
        timeout=20,
    )
    follower.logfile_read = io.StringIO()
    try:
        sent = run_client(["--server", server.address, "chat", "--user", "ann"], "hi\n")
        assert sent.returncode == 0, sent.stderr
        follower.expect("ann: hi")  # the follower's call is open
        assert server.stop() == 0
    finally:
        follower.terminate(force=True)
    assert "stopping: 1 call open" in server.log()
