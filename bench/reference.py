"""The reference: the tutorial's service on grpcio's asyncio server, messages in a list.

What a user of the tutorial would otherwise run; no logging, nothing added. Its code is generated
by grpcio-tools into a temporary folder when it starts. `python -m bench.reference --port P`.
"""

import argparse
import asyncio
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from bench.tutorial import generate


class TutorialService:
    """The tutorial's three RPCs, as it wrote them (grpcio finds them by these names)."""

    def __init__(self, pb2: ModuleType) -> None:
        self._pb2 = pb2
        self._messages: list[str] = []

    async def GetStats(self, request: Any, context: Any) -> Any:
        return self._pb2.StatsReply(num_messages=len(self._messages))

    async def GetMessages(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for message in self._messages:
            yield self._pb2.MessageReply(message=message)

    async def SendAndReceiveMessage(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        async for request in request_iterator:
            self._messages.append(request.message)
            yield self._pb2.MessageReply(message=f"Server Responding to {request.message}")


async def serve(host: str, port: int) -> None:
    """Serves until SIGINT or SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as out_dir:
        pb2, pb2_grpc = generate(Path(out_dir))
        server = grpc.aio.server()
        pb2_grpc.add_ChatServiceServicer_to_server(TutorialService(pb2), server)
        server.add_insecure_port(f"{host}:{port}")
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await server.stop(grace=None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
