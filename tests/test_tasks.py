"""A call's helper tasks end for sure, even when a library swallowed their cancellation."""

import asyncio
import gc
from typing import Any

from chat.tasks import cancel_and_wait


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    never, waiting, swallowed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        try:
            waiting.set()
            await never.wait()
        except asyncio.CancelledError:  # what asyncio.wait_for does on Python 3.11 at times
            swallowed.set()
        await never.wait()  # and on it goes, to wait for what never comes

    task = asyncio.create_task(stubborn())
    await waiting.wait()
    async with asyncio.timeout(5):
        await cancel_and_wait([task])
    assert swallowed.is_set() and task.cancelled()


async def test_a_failed_task_does_not_stop_the_others_being_ended() -> None:
    async def fails() -> None:
        raise ValueError("already reported")

    waiting = asyncio.create_task(asyncio.Event().wait())
    failed = asyncio.create_task(fails())
    await asyncio.wait([failed])
    await cancel_and_wait([failed, waiting])
    assert waiting.cancelled() and isinstance(failed.exception(), ValueError)


async def test_a_failure_after_the_waiter_was_cancelled_is_retrieved_all_the_same() -> None:
    """A call's task cancelled while it waits for its helpers (the server shutting down): a
    helper failing after that is not left to say "Task exception was never retrieved"."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    cancelled, release = asyncio.Event(), asyncio.Event()

    async def fails_late() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await release.wait()
            raise RuntimeError("the stream closed meanwhile") from None

    helper = asyncio.create_task(fails_late())
    waiter = asyncio.create_task(cancel_and_wait([helper]))
    await cancelled.wait()
    waiter.cancel()
    await asyncio.wait([waiter])
    release.set()
    await asyncio.wait([helper])  # ended, and its failure not looked at here
    del helper, waiter  # the waiter's traceback holds the helper
    gc.collect()
    try:
        assert not [context for context in reported if "never retrieved" in context["message"]]
    finally:
        loop.set_exception_handler(None)
