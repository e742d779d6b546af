"""Ending a call's helper tasks for sure, even when a library has swallowed a cancellation."""

import asyncio
from collections.abc import Collection
from typing import Any

CANCEL_AGAIN_SECONDS = 0.5
"""How long a cancelled task may run on before it is cancelled once more."""


async def cancel_and_wait(tasks: Collection["asyncio.Future[Any]"]) -> None:
    """Cancels the tasks and returns once every one of them has ended.

    A task still running after a while is cancelled again: on Python 3.11 `asyncio.wait_for`
    (which redis-py wraps around every command) drops a cancellation that arrives together
    with the command's result, and the task goes on — to wait for a request that never comes.
    """
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECONDS)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: a failure here was already reported through the call
