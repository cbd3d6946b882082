"""Fixtures of the scheduler tests: an app on the test Redis whose enqueues are recorded,
and a scheduler run in-process with a clock that only the test moves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from rediq import Rediq, hookimpl
from rediq_core.broker import EnqueueOutcome
from rediq_core.message import TaskMessage
from rediq_core.plugins import make_plugin_host
from rediq_core.worker.cron import CronScheduler


class Enqueued:
    """A plugin recording the messages the scheduler enqueued."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[TaskMessage] = asyncio.Queue()

    @hookimpl
    def rediq_after_task_enqueue(self, message: TaskMessage, outcome: EnqueueOutcome) -> None:
        self.messages.put_nowait(message)


@pytest.fixture
async def enqueued() -> Enqueued:
    return Enqueued()


@pytest.fixture
async def app(
    rediq_redis_url: str, rediq_namespace: str, enqueued: Enqueued
) -> AsyncIterator[Rediq]:
    app = Rediq(
        rediq_redis_url, namespace=rediq_namespace, plugins=make_plugin_host(plugins=[enqueued])
    )
    try:
        yield app
    finally:
        await app.close()


class ManualClock:
    """The scheduler's clock (epoch ms): it moves only when the test moves it, so what
    fires depends on the test's steps, not on how fast the machine is."""

    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout_s} s for {what}"
        await asyncio.sleep(0.01)  # re-check interval of a bounded wait


def planned_past(scheduler: CronScheduler, clock: ManualClock) -> Callable[[], bool]:
    """Every next tick of ``scheduler`` lies after the clock: nothing more can fire until
    the clock moves."""
    return lambda: bool(scheduler.next_ms) and min(scheduler.next_ms.values()) > clock()


async def fire_next(
    scheduler: CronScheduler, clock: ManualClock, enqueued: Enqueued
) -> TaskMessage:
    """Move the clock to the scheduler's earliest next tick and return the run it fired,
    once the scheduler planned past the clock (and fired nothing else)."""
    await until(planned_past(scheduler, clock), "the scheduler to plan its next tick")
    clock.now_ms = min(scheduler.next_ms.values())
    message = await asyncio.wait_for(enqueued.messages.get(), 10)
    await until(planned_past(scheduler, clock), "the scheduler to plan past the fired tick")
    assert enqueued.messages.empty(), f"also fired: {enqueued.messages.get_nowait()}"
    return message


async def run_until_fired(
    app: Rediq, start_ms: int, enqueued: Enqueued
) -> tuple[CronScheduler, TaskMessage]:
    """Run a scheduler whose clock starts at ``start_ms`` and moves to the first tick."""
    clock = ManualClock(start_ms)
    scheduler = CronScheduler(app, app.get_broker(), ["default"], clock=clock)
    running = asyncio.create_task(scheduler.run())
    try:
        return scheduler, await fire_next(scheduler, clock, enqueued)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
