"""Group cancel: 200 tasks of group ``g``, 50 of them running, all end cancelled; tasks
of other groups are untouched."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rediq_core.errors import TaskCancelledError

from .conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(120)

APP = """
@app.task(task_queue="grp")
async def hold(n):
    await asyncio.sleep(120)
"""


async def test_cancel_a_group_with_running_tasks(harness: Harness) -> None:
    m = harness.write_app(APP)
    tagged = await m.app.enqueue_many([m.hold(n).groups("g", f"n{n}") for n in range(200)])
    others = await m.app.enqueue_many(
        [m.hold(n).groups("other").options(priority=10) for n in range(20)]
    )
    harness.start(
        "--queue-name",
        "grp",
        "--skip-default-queue",
        "--worker-task-concurrency",
        "50",
        "--worker-queue-size",
        "0",
    )

    async def fifty_running() -> bool:
        return (await m.app.control.queue("grp")).active == 50

    await eventually(fifty_running, "50 tasks of group g to run")
    started = time.perf_counter()
    done = await cli(harness, "cancel", "--group", "g", "--yes", "--json")
    assert done.code == 0, done
    assert done.json()["counts"] == {
        "cancelled": 150,
        "requested": 50,
        "finished": 0,
        "not_found": 0,
    }

    async def ended(handle: Any) -> None:
        with pytest.raises(TaskCancelledError):
            await handle.result(timeout=20)

    for start in range(0, len(tagged), 25):  # bounded concurrency of blocking waits
        await asyncio.gather(*(ended(h) for h in tagged[start : start + 25]))
    print(f"\n[measure] group_cancel_200_with_50_running_s = {time.perf_counter() - started:.2f}")
    for handle in others:
        record = await m.app.control.task(handle.id)
        assert record is not None and record.state.value in ("pending", "active"), record
        assert record.groups == ("other",)
    assert not (await m.app.control.cancel_group("g"))  # nothing of g is left
