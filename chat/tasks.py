"""Ending a call's helper tasks for sure, even when a library has swallowed a cancellation."""

import asyncio
from collections.abc import Collection
from typing import Any

from chat.errors import drop_tracebacks

CANCEL_AGAIN_SECONDS = 0.5
"""How long a cancelled task may run on before it is cancelled once more."""


async def cancel_and_wait(tasks: Collection["asyncio.Future[Any]"]) -> None:
    """Cancels the tasks and returns once every one of them has ended.

    A task still running after a while is cancelled again: on Python 3.11 `asyncio.wait_for`
    (which redis-py wraps around every command) drops a cancellation that arrives together
    with the command's result, and the task goes on — to wait for a request that never comes.

    A failure of theirs was reported through the call already, so it is retrieved whenever the
    task ends: even when this wait is cancelled first (the server shutting down), the task is
    not left to log "Task exception was never retrieved", nor to keep what its traceback
    holds.
    """
    for task in tasks:
        task.add_done_callback(_retrieve)
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECONDS)


def _retrieve(task: "asyncio.Future[Any]") -> None:
    """Takes the task's failure as seen, and cuts it loose from its traceback: the frames in
    it hold what holds the task (a call, its stream), a cycle only a full collection frees."""
    if not task.cancelled() and (error := task.exception()) is not None:
        drop_tracebacks(error)
