"""End to end over TCP: the server and the client as real processes, console scripts included."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.client import split_address
from gen.grpc.chat import MessageReplyKind
from harness import (
    ROOT,
    Chatter,
    ServerProcess,
    clean_environment,
    free_port,
    run_client,
    wait_accepting,
)

Start = Callable[..., ServerProcess]


def test_pipe_chat_stats_and_messages_show_the_tutorial_behaviour(server_process: Start) -> None:
    server = server_process()
    chat = run_client(["--server", server.address, "chat", "--user", "ann"], "one\ntwo\nthree\n")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.splitlines() == [
        "Server Responding to one",
        "Server Responding to two",
        "Server Responding to three",
    ]
    stats = run_client(["--server", server.address, "--get-stats"])
    assert stats.stdout.splitlines()[0] == "Server has 3 messages"
    history = run_client(["--read-messages", "--server", server.address])
    lines = history.stdout.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["ann: one", "ann: two", "ann: three"]
    assert all("[general]" in line for line in lines)


def test_json_output_is_one_object_per_line(server_process: Start) -> None:
    server = server_process()
    run_client(["--server", server.address, "chat", "--room", "red"], "a\nb\n")
    messages = run_client(["--server", server.address, "messages", "--json", "--limit", "1"])
    assert '"id": 2' in messages.stdout and '"room": "red"' in messages.stdout
    assert len(messages.stdout.splitlines()) == 1
    stats = run_client(["--server", server.address, "stats", "--room", "red", "--json"])
    assert '"num_messages": 2' in stats.stdout


def test_a_refused_line_is_reported_and_the_rest_still_sent(server_process: Start) -> None:
    server = server_process("memory://", "--max-text-bytes", "10")
    chat = run_client(
        ["--server", server.address, "chat"], "short\nthis line is far too long\nok\n"
    )
    assert chat.returncode == 1
    assert chat.stdout.splitlines() == ["Server Responding to short", "Server Responding to ok"]
    assert "error: message is 25 bytes; the limit is 10 bytes" in chat.stderr


def test_console_scripts_serve_and_chat(tmp_path: Path) -> None:
    scripts = Path(sys.executable).parent
    if not (scripts / "chat-server").exists():
        pytest.fail("console scripts are not installed: pip install -e .")
    port = free_port()
    server = subprocess.Popen(
        [
            scripts / "chat-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--store",
            f"sqlite:///{tmp_path / 'chat.db'}",
            "--web-port",
            "0",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_accepting(port, server)
        chat = subprocess.run(
            [scripts / "chat", "--server", f"127.0.0.1:{port}", "chat"],
            input="hello\n",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert chat.stdout == "Server Responding to hello\n"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(15) == 0


def test_a_piped_chat_that_never_reached_the_server_says_only_that() -> None:
    result = run_client(["--server", f"127.0.0.1:{free_port()}", "chat"], "hello\n")
    assert result.returncode == 1
    assert result.stderr.startswith("chat: cannot reach the server at 127.0.0.1:"), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_an_unreachable_server_is_one_line_and_exit_code_1() -> None:
    result = run_client(["--server", f"127.0.0.1:{free_port()}", "stats"])
    assert result.returncode == 1
    assert result.stderr.startswith("chat: cannot reach the server at 127.0.0.1:")
    assert len(result.stderr.splitlines()) == 1


async def test_sigterm_ends_open_streams_with_unavailable_and_exits_0(
    server_process: Start,
) -> None:
    server = server_process()
    host, port = split_address(server.address)
    channel = Channel(host, port)
    try:
        async with AsyncExitStack() as stack:
            chatter = await Chatter.open(stack, channel)
            await chatter.say("before the stop")
            server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            with pytest.raises(GRPCError) as error:
                await chatter.recv()
            assert error.value.status is Status.UNAVAILABLE
        assert await asyncio.to_thread(server.proc.wait, 15) == 0  # type: ignore[union-attr]
    finally:
        channel.close()
    assert "stopped" in server.log()


async def test_every_acked_message_survives_kill_9(server_process: Start, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    server = server_process(store)
    host, port = split_address(server.address)
    channel = Channel(host, port)
    acked: list[int] = []
    enough = asyncio.Event()
    try:
        async with AsyncExitStack() as stack:
            writers = [await Chatter.open(stack, channel, user=f"w{n}") for n in range(4)]

            async def write(chatter: Chatter) -> None:
                for number in range(250):
                    await chatter.send(str(number))
                    acked.append((await chatter.recv_kind(MessageReplyKind.ACK)).id)
                    if len(acked) == 400:
                        enough.set()

            tasks = [asyncio.create_task(write(w)) for w in writers]
            await enough.wait()  # killed while the writers are still writing
            server.stop(signal.SIGKILL)
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        channel.close()
    assert len(acked) >= 400
    again = server_process(store, port=server.port)
    history = run_client(["--server", again.address, "messages", "--json"])
    stored = {int(line.split('"id": ')[1].split(",")[0]) for line in history.stdout.splitlines()}
    assert set(acked) <= stored


def test_the_just_recipes_hand_over_to_the_program_its_exit_code_and_lines_the_only_ones() -> None:
    """Ctrl-C (SIGINT to the terminal's process group) stops `just serve` with the server's
    exit code 0, and a client's failure is its one line: `just` adds none of its own."""
    just = shutil.which("just")
    assert just is not None, "just comes with the dev dependencies (rust-just)"
    port = free_port()
    serving = subprocess.Popen(
        [just, "serve", "--port", str(port), "--store", "memory://", "--web-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=clean_environment(),
        start_new_session=True,
    )
    wait_accepting(port, serving)
    os.killpg(serving.pid, signal.SIGINT)
    _, said = serving.communicate(timeout=20)
    assert serving.returncode == 0, said
    assert "error" not in said and said.rstrip().endswith("stopped"), said
    failed = subprocess.run(
        [just, "stats", "--server", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_environment(),
        timeout=30,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("chat: cannot reach the server"), failed.stderr
    assert len(failed.stderr.splitlines()) == 1, failed.stderr
