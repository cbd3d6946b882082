"""The scheduler in-process against a real Redis: jitter, queues served, the control API."""

from __future__ import annotations

import asyncio

import pytest

from rediq import Rediq
from rediq_core.message import now_ms
from rediq_core.worker.cron import CronScheduler

from .conftest import Enqueued, ManualClock, fire_next, planned_past, run_until_fired, until


async def test_jitter_delays_the_run_within_its_bound(app: Rediq, enqueued: Enqueued) -> None:
    @app.cron("* * * * * *", name="spread", jitter=0.4)
    @app.task(task_name="job")
    async def job() -> None: ...

    _, message = await run_until_fired(app, now_ms(), enqueued)
    tick = int(message.headers["cron_tick_ms"])
    assert message.id == f"cron:spread:{tick}"
    assert message.eta_ms is not None and tick <= message.eta_ms <= tick + 400


async def test_only_schedules_of_served_queues_are_fired(app: Rediq) -> None:
    @app.cron("* * * * * *")
    @app.task(task_name="job")
    async def job() -> None: ...

    scheduler = CronScheduler(app, app.get_broker(), ["other"])
    assert not scheduler.schedules
    await asyncio.wait_for(scheduler.run(), 1)  # nothing to serve: returns at once


async def test_control_api_pause_trigger_resume(app: Rediq, enqueued: Enqueued) -> None:
    @app.cron("* * * * * *", name="beat")
    @app.task(task_name="job")
    async def job() -> None: ...

    await run_until_fired(app, now_ms() - 5_000, enqueued)  # a tick in the past: pending
    control = app.cron_control
    [status] = await control.list()
    assert status.name == "beat" and not status.paused and not status.orphaned
    assert status.last_state == "pending" and len(status.next_ticks_ms) == 3
    await control.pause("beat")
    assert (await control.list())[0].paused
    task_id = await control.trigger("beat")
    record = await app.get_broker().get_task(task_id, "default")
    assert record is not None and record.message is not None
    assert record.message.headers == {"cron": "beat"}
    await control.resume("beat")
    assert not (await control.list())[0].paused


async def test_a_stall_coalesces_the_due_ticks_into_one_run(
    app: Rediq, enqueued: Enqueued, caplog: pytest.LogCaptureFixture
) -> None:
    @app.cron("* * * * * *", name="beat")
    @app.task(task_name="job")
    async def job() -> None: ...

    clock = ManualClock(now_ms() - 10_000)
    scheduler = CronScheduler(app, app.get_broker(), ["default"], clock=clock)
    running = asyncio.create_task(scheduler.run())
    try:
        first = await fire_next(scheduler, clock, enqueued)
        clock.now_ms += 5_500  # the clock jumps as after a 5.5 s stall: 5 ticks are due
        second = await asyncio.wait_for(enqueued.messages.get(), 10)
        await until(planned_past(scheduler, clock), "the scheduler to plan past the stall")
        assert enqueued.messages.empty(), "the due ticks were not coalesced"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    gap = int(second.headers["cron_tick_ms"]) - int(first.headers["cron_tick_ms"])
    assert gap == 5_000, gap  # the latest due tick, not the first
    assert "cron beat: skipped 4 tick(s)" in caplog.text
