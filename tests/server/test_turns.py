"""The loop's time budget per turn, shared by every stream that handles requests."""

import asyncio
import time

from chat.server.turns import TURN_SECONDS, Turns

REQUESTS = 2000
WORK = 0.0001
"""Seconds each request takes: 2,000 of them would hold the loop for 0.2 s at least."""


async def handle(turns: Turns, handled: list[int]) -> None:
    for _ in range(REQUESTS):
        if turns.over():
            await asyncio.sleep(0)
        deadline = time.perf_counter() + WORK
        while time.perf_counter() < deadline:
            pass
        handled.append(1)


async def test_streams_with_requests_in_hand_let_another_task_run_within_a_turn_s_budget() -> None:
    turns = Turns()
    handled: list[int] = []
    seen_after: list[int] = []

    async def other() -> None:
        seen_after.append(len(handled))

    streams = [asyncio.create_task(handle(turns, handled)) for _ in range(10)]
    await asyncio.sleep(0)  # the streams have begun
    await other()
    await asyncio.gather(*streams)
    # One turn's budget of requests, and one more per stream at most, ran before the other.
    assert seen_after[0] <= TURN_SECONDS / WORK + 10 + 10
    assert len(handled) == 10 * REQUESTS
