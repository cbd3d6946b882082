"""``rediq task ID`` shows a task's progress, and with ``--logs`` its log lines, while it
runs and after it ended; ``rediq top`` lists running tasks with their progress (tables
and --json), against a real worker process and redis-server."""

from __future__ import annotations

from typing import Any

import pytest

from rediq_core.errors import TaskCancelledError

from .conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(120)

APP = """
import logging
log = logging.getLogger("shop.images")

@app.task(task_queue="work")
async def resize(name):
    await set_progress(0.4, "resizing")
    log.info("resizing %s", name)
    log.warning("large image")
    await asyncio.sleep(60)
"""


async def test_task_shows_progress_and_logs_while_running_and_after(harness: Harness) -> None:
    m = harness.write_app(APP)
    handle = await m.resize("cat.png").enqueue()
    harness.start("--queue-name", "work")

    async def reported() -> bool:
        return len((await handle.logs()).lines) == 2

    await eventually(reported, "the task's progress and two log lines")
    shown = await cli(harness, "task", handle.id)
    assert shown.code == 0, shown.err
    assert "████░░░░░░  40% resizing" in shown.out
    assert "shop.images" not in shown.out, "log lines only with --logs"
    logs = await cli(harness, "task", handle.id, "--logs")
    assert logs.code == 0, logs.err
    for text in ("resizing cat.png", "large image", "WARNING", "shop.images"):
        assert text in logs.out, logs.out
    doc: Any = (await cli(harness, "task", handle.id, "--logs", "--json")).json()["task"]
    assert doc["progress"]["fraction"] == 0.4 and doc["progress"]["message"] == "resizing"
    assert [x["message"] for x in doc["logs"]["lines"]] == ["resizing cat.png", "large image"]
    assert doc["logs"]["dropped"] == 0 and doc["logs"]["lines"][0]["level"] == "INFO"

    top: Any = (await cli(harness, "top", "--json")).json()
    [running] = top["running"]
    assert running["id"] == handle.id and running["progress"]["message"] == "resizing"
    table = await cli(harness, "top", "--once")
    assert "running tasks" in table.out and "40% resizing" in table.out, table.out

    await handle.cancel()
    with pytest.raises(TaskCancelledError):
        await handle.result(timeout=20)
    after: Any = (await cli(harness, "task", handle.id, "--logs", "--json")).json()["task"]
    assert after["state"] == "cancelled"
    assert [x["message"] for x in after["logs"]["lines"]] == ["resizing cat.png", "large image"]
    assert after["progress"]["message"] == "resizing"


async def test_a_task_without_reports_says_so(harness: Harness) -> None:
    m = harness.write_app(APP)
    handle = await m.resize("dog.png").enqueue()  # no worker: it never runs
    shown = await cli(harness, "task", handle.id, "--logs")
    assert shown.code == 0, shown.err
    assert "no log lines" in shown.out
    doc: Any = (await cli(harness, "task", handle.id, "--json")).json()["task"]
    assert doc["progress"] is None and "logs" not in doc
