"""Clients of the tutorial's protocol keep working: a grpcio client generated from its proto."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from bench.tutorial import generate
from harness import ServerProcess


def test_a_tutorial_grpcio_client_gets_the_tutorials_behaviour(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    pb2, pb2_grpc = generate(tmp_path)
    server = server_process()
    with grpc.insecure_channel(server.address) as channel:
        stub: Any = pb2_grpc.ChatServiceStub(channel)
        requests = (pb2.MessageRequest(message=text) for text in ("one", "two", "three"))
        replies = [reply.message for reply in stub.SendAndReceiveMessage(requests, timeout=10)]
        assert replies == [
            "Server Responding to one",
            "Server Responding to two",
            "Server Responding to three",
        ]
        assert stub.GetStats(pb2.EmptyRequest(), timeout=10).num_messages == 3
        history = [r.message for r in stub.GetMessages(pb2.EmptyRequest(), timeout=10)]
        assert history == ["one", "two", "three"]
