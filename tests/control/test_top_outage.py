"""``rediq top`` through a Redis outage: the server stops under the running view, which
shows "disconnected since ..." with the error and keeps going; when the server is back,
the view resumes without the line (and ``q`` still quits with 0)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from rediq_redis.testing import RedisServer

from .conftest import Harness
from .test_top import quit_top, spawn_top

pytestmark = pytest.mark.timeout(120)

APP = """
@app.task(task_queue="firstq")
async def first():
    pass

@app.task(task_queue="secondq")
async def second():
    pass
"""
DISCONNECTED = re.compile(r"disconnected since \d\d:\d\d:\d\d: \S.*")


async def test_top_shows_an_outage_and_resumes(
    tmp_path: Path,
    rediq_redis_server_factory: Callable[..., RedisServer],
    rediq_namespace: str,
) -> None:
    server = rediq_redis_server_factory()
    harness = Harness(tmp_path, server.url(), rediq_namespace)
    m = harness.write_app(APP)
    await m.first().enqueue()
    child = spawn_top(harness, rows=50)
    try:
        child.expect("firstq", timeout=30)
        server.stop()
        child.expect(DISCONNECTED, timeout=40)
        assert child.isalive(), "rediq top exited on the outage"
        server.start()  # no persistence: the server comes back empty
        await m.second().enqueue()
        child.expect("secondq", timeout=40)
        # one whole frame (header to header) after the recovery: no outage line in it
        child.expect("rediq top", timeout=20)
        child.expect("rediq top", timeout=20)
        assert "secondq" in child.before and "disconnected" not in child.before, child.before
        quit_top(child)
    finally:
        if child.isalive():
            child.terminate(force=True)
        await harness.close()
