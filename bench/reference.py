"""The references: the tutorial's service on grpcio's asyncio server, messages in a list.

What a user of the tutorial would otherwise run; no logging, nothing added. Its code is generated
by grpcio-tools into a temporary folder when it starts. `python -m bench.reference --port P`;
with `--broadcast`, the broadcast a grpcio user would write: a queue per stream, and every
message received put on each other stream's queue, its reply on the sender's.
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


class BroadcastService(TutorialService):
    """The tutorial's service, its bidi stream delivering every message to every other stream."""

    def __init__(self, pb2: ModuleType) -> None:
        super().__init__(pb2)
        self._queues: set[asyncio.Queue[Any]] = set()

    async def SendAndReceiveMessage(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        own: asyncio.Queue[Any] = asyncio.Queue()
        self._queues.add(own)

        async def receive() -> None:
            async for request in request_iterator:
                self._messages.append(request.message)
                delivery = self._pb2.MessageReply(message=request.message)
                for queue in self._queues:
                    if queue is not own:
                        queue.put_nowait(delivery)
                reply = f"Server Responding to {request.message}"
                own.put_nowait(self._pb2.MessageReply(message=reply))
            own.put_nowait(None)

        receiving = asyncio.create_task(receive())
        try:
            while (reply := await own.get()) is not None:
                yield reply
        finally:
            self._queues.discard(own)
            receiving.cancel()


async def serve(host: str, port: int, broadcast: bool = False) -> None:
    """Serves until SIGINT or SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as out_dir:
        pb2, pb2_grpc = generate(Path(out_dir))
        server = grpc.aio.server()
        service = BroadcastService(pb2) if broadcast else TutorialService(pb2)
        pb2_grpc.add_ChatServiceServicer_to_server(service, server)
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
    parser.add_argument("--broadcast", action="store_true", help="deliver to every stream")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.broadcast))


if __name__ == "__main__":
    main()
