"""Fixtures of the scheduler tests: an app on the test Redis whose enqueues are recorded,
and a scheduler run in-process with an injected clock."""

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


def clock_starting_at(start_ms: int) -> Callable[[], int]:
    offset = start_ms - time.time_ns() // 1_000_000
    return lambda: time.time_ns() // 1_000_000 + offset


async def run_until_fired(
    app: Rediq, start_ms: int, enqueued: Enqueued
) -> tuple[CronScheduler, TaskMessage]:
    scheduler = CronScheduler(app, app.get_broker(), ["default"], clock=clock_starting_at(start_ms))
    running = asyncio.create_task(scheduler.run())
    try:
        message = await asyncio.wait_for(enqueued.messages.get(), 10)
        await asyncio.sleep(0.3)  # let a wrongly scheduled second tick show up too
        assert enqueued.messages.empty(), enqueued.messages.get_nowait()
        return scheduler, message
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
