"""The server (on both paths) and the client run on grpclib alone: grpcio is never imported."""

import subprocess
import sys

from harness import ROOT

PROGRAM = """
import asyncio, sys
from chat import client, server  # noqa: F401
from chat.client import terminal  # noqa: F401
from chat.server.config import Settings
from chat.server.service import ChatService
from harness import serving
from chat.store.memory import MemoryStore
from gen.grpc.chat import ChatServiceStub, MessageRequest, StatsRequest

async def main(encoding, http2) -> None:
    settings = Settings(store="memory://", encoding=encoding, http2=http2)
    service = ChatService(MemoryStore(), settings)
    async with serving(service) as channel:
        stub = ChatServiceStub(channel)
        async def one():
            yield MessageRequest(message="hi")
        replies = [r async for r in stub.send_and_receive_message(one())]
        assert replies[0].message == "Server Responding to hi", replies
        assert (await stub.get_stats(StatsRequest())).num_messages == 1

asyncio.run(main("betterproto", "grpclib"))
asyncio.run(main("handwritten", "direct"))
loaded = sorted(m for m in sys.modules if m == "grpc" or m.startswith(("grpc.", "grpc_tools")))
print(loaded)
"""


def test_running_server_and_client_code_never_imports_grpcio() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
