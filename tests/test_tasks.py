"""A call's helper tasks end for sure, even when a library swallowed their cancellation."""

import asyncio

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
