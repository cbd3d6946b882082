"""An app with a few tasks, per test, on a real redis-server or on ``memory://``, and a
worker for it running in the test's event loop while threads use the blocking API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from rediq import Rediq, TaskDefinition


@dataclass
class SyncApp:
    app: Rediq
    add: TaskDefinition[[int, int], int]
    boom: TaskDefinition[[], None]
    nap: TaskDefinition[[float], str]


def make_app(url: str, namespace: str) -> SyncApp:
    app = Rediq(broker_url=url, namespace=namespace)

    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    @app.task
    async def boom() -> None:
        raise ValueError("boom")

    @app.task(task_queue="naps")
    async def nap(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "rested"

    return SyncApp(app, add, boom, nap)


@pytest.fixture(params=["redis", "memory"])
async def sync_app(request: pytest.FixtureRequest, rediq_namespace: str) -> AsyncIterator[SyncApp]:
    """The app on a real redis-server, then on ``memory://``; closed (its sync loop
    included) at the end."""
    url: Any = (
        request.getfixturevalue("rediq_redis_url")
        if request.param == "redis"
        else f"memory://sync-{uuid.uuid4().hex[:8]}"
    )
    made = make_app(url, rediq_namespace)
    try:
        yield made
    finally:
        await made.app.close()
