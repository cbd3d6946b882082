"""``rediq workflow ID`` against a real worker process and redis-server: every step with
its state, the failing step's error, ``--json``, ``--cancel``, and a one-line error for an
unknown id."""

from __future__ import annotations

from typing import Any

import pytest

from rediq import TaskState, WorkflowFailed, chain, group
from tests.control.conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(120)

APP = """
@app.task(task_queue="io")
async def fetch(url):
    return url.upper()

@app.task(task_queue="cpu")
async def size(text):
    return len(text)

@app.task(task_queue="cpu")
async def fail(value):
    raise ValueError(f"cannot use {value}")

@app.task(task_queue="io")
async def hold():
    await asyncio.sleep(60)
"""


async def test_steps_states_errors_json_and_cancel(harness: Harness) -> None:
    m: Any = harness.write_app(APP)
    harness.start("--queue-name", "io", "--queue-name", "cpu", "--worker-name", "wf-w")
    done = await chain(m.fetch("ab"), m.size.s()).enqueue()
    assert await done.result(timeout=20) == 2
    failing = await chain(m.fetch("x"), group(m.size.s(), m.fail.s()), m.size.s()).enqueue()
    with pytest.raises(WorkflowFailed, match=r"step 2 \(.*fail\) failed"):
        await failing.result(timeout=20)

    table = await cli(harness, "workflow", done.id)
    assert table.code == 0, table.err
    assert f"workflow {done.id}: succeeded" in table.out and "cpu" in table.out
    doc = (await cli(harness, "workflow", failing.id, "--json")).json()["workflow"]
    assert doc["id"] == failing.id and doc["state"] == "failed"
    assert [s["state"] for s in doc["steps"]] == [
        "succeeded",
        "succeeded",
        "failed",
        "cancelled",
    ]
    assert [s["queue"] for s in doc["steps"]] == ["io", "cpu", "cpu", "cpu"]
    assert doc["steps"][2]["error"]["message"] == "cannot use X"
    assert "step 2 of workflow" in doc["steps"][3]["error"]["message"]

    held = await chain(m.hold(), m.size.s()).enqueue()

    async def running() -> bool:
        return (await held.status())[0].state is TaskState.ACTIVE

    await eventually(running, "the first step to run")
    cancelled = await cli(harness, "workflow", held.id, "--cancel", "--json")
    assert cancelled.code == 0, cancelled.err
    with pytest.raises(WorkflowFailed, match="cancelled"):
        await held.result(timeout=20)

    async def stopped() -> bool:
        return [s.state for s in await held.status()] == [TaskState.CANCELLED] * 2

    await eventually(stopped, "both steps to end cancelled")

    unknown = await cli(harness, "workflow", "0" * 32)
    assert unknown.code == 1 and "no workflow" in unknown.err and unknown.out == ""
