"""One log line per call, as text or as JSON (--log-format json), from a real server process."""

import json
import logging
import re
import sys
from collections.abc import Callable

import pytest

from chat.server.logs import JsonFormatter
from harness import ServerProcess, refused_server_start, run_client

Start = Callable[..., ServerProcess]
CALL_FIELDS = {"peer", "method", "status", "duration_ms", "messages_in", "messages_out"}


def make_calls(server: ServerProcess) -> None:
    """A chat of two lines, stats, and stats for a bad room name; then the server stops."""
    assert run_client(["--server", server.address, "chat"], "one\ntwo\n").returncode == 0
    assert run_client(["--server", server.address, "stats"]).returncode == 0
    assert run_client(["--server", server.address, "stats", "--room", "b a d"]).returncode == 1
    assert server.stop() == 0  # every line is written once the process has exited


def test_json_logs_are_one_object_per_line_with_each_calls_figures(server_process: Start) -> None:
    server = server_process("memory://", "--log-format", "json")
    make_calls(server)
    entries = [json.loads(line) for line in server.log().splitlines()]
    assert all({"timestamp", "level", "logger", "message"} <= entry.keys() for entry in entries)
    calls = [entry for entry in entries if entry.keys() >= CALL_FIELDS]
    summary = [
        (c["method"].rsplit("/", 1)[1], c["status"], c["messages_in"], c["messages_out"])
        for c in calls
    ]
    assert summary == [
        ("SendAndReceiveMessage", "OK", 2, 2),
        ("GetStats", "OK", 1, 1),
        ("GetStats", "INVALID_ARGUMENT", 1, 0),
    ]
    for call in calls:
        assert call["level"] == "INFO"
        assert re.fullmatch(r"127\.0\.0\.1:\d+", call["peer"])
        assert isinstance(call["duration_ms"], float) and 0 <= call["duration_ms"] < 10_000


def test_text_logs_keep_one_readable_line_per_call(server_process: Start) -> None:
    server = server_process()
    make_calls(server)
    lines = [line for line in server.log().splitlines() if " chat.calls " in line]
    pattern = r"\S+ \S+ INFO chat\.calls 127\.0\.0\.1:\d+ /grpc\.chat\.ChatService/(\w+) (\w+) "
    pattern += r"\d+\.\dms in=(\d+) out=(\d+)"
    matches = [re.fullmatch(pattern, line) for line in lines]
    assert [m.groups() if m else line for m, line in zip(matches, lines, strict=True)] == [
        ("SendAndReceiveMessage", "OK", "2", "2"),
        ("GetStats", "OK", "1", "1"),
        ("GetStats", "INVALID_ARGUMENT", "1", "0"),
    ]


def test_an_error_with_a_traceback_stays_one_json_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("chat", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed" and "RuntimeError: boom" in entry["error"]


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--log-format", "xml"], "--log-format: 'xml' is not one of 'text', 'json'"),
        (["--log-level", "loud"], "--log-level: 'loud' is not one of 'debug', 'info',"),
    ],
)
def test_an_unknown_log_format_or_level_is_one_line_and_exit_code_2(
    flags: list[str], reason: str
) -> None:
    assert refused_server_start(*flags, code=2).startswith(f"chat-server: {reason}")
