"""The one race behind "unless the client hangs up" and "unless the backend is lost":
whichever ends first wins, and the loser is always cancelled."""

from __future__ import annotations

import asyncio

import pytest

from stenostack.http.race import cancel_unless


class Stopped(Exception):
    pass


async def finished(seconds: float, value: str = "done") -> str:
    await asyncio.sleep(seconds)
    return value


def test_work_that_ends_first_gives_its_result_and_the_stop_is_cancelled() -> None:
    async def run() -> tuple[str, bool]:
        stop = asyncio.ensure_future(asyncio.sleep(30))
        result = await cancel_unless(finished(0.01, "heard"), stop, Stopped)
        await asyncio.sleep(0)  # let the cancellation land
        return result, stop.cancelled()

    assert asyncio.run(asyncio.wait_for(run(), 10)) == ("heard", True)


def test_a_stop_that_ends_first_cancels_the_work_and_raises_the_error() -> None:
    async def run() -> asyncio.Future[str]:
        work = asyncio.ensure_future(finished(30))
        with pytest.raises(Stopped):
            await cancel_unless(work, asyncio.sleep(0.01), Stopped)
        return work

    work = asyncio.run(asyncio.wait_for(run(), 10))
    assert work.cancelled()


def test_the_works_own_error_passes_through() -> None:
    async def failing() -> str:
        raise ValueError("broken")

    async def run() -> str:
        return await cancel_unless(failing(), asyncio.sleep(30), Stopped)

    with pytest.raises(ValueError, match="broken"):
        asyncio.run(asyncio.wait_for(run(), 10))


def test_cancelling_the_caller_cancels_the_work_and_the_stop() -> None:
    async def run() -> tuple[bool, bool]:
        work = asyncio.ensure_future(finished(30))
        stop = asyncio.ensure_future(asyncio.sleep(30))
        racing = asyncio.ensure_future(cancel_unless(work, stop, Stopped))
        await asyncio.sleep(0.01)
        racing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await racing
        await asyncio.sleep(0)
        return work.cancelled(), stop.cancelled()

    assert asyncio.run(asyncio.wait_for(run(), 10)) == (True, True)
