"""The dashboard's workflow page against a ``rediq dashboard`` subprocess, a worker and a
real Redis: every step with its state and error, the link from a step's task page, a
cancel button that cancels, and 404 for an unknown id."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rediq import TaskState, WorkflowFailed, chain
from tests.control.conftest import eventually

from .conftest import Harness, start_dashboard
from .test_dashboard_security import token_of

APP = """
@app.task
async def inc(x):
    return x + 1

@app.task
async def fail(x):
    raise ValueError(f"no {x}")

@app.task
async def hold():
    await asyncio.sleep(60)
"""


async def test_workflow_page_steps_link_and_cancel(harness: Harness) -> None:
    m: Any = harness.write_app(APP)
    harness.start()
    failed = await chain(m.inc(1), m.fail.s(), m.inc.s()).enqueue()
    with pytest.raises(WorkflowFailed):
        await failed.result(timeout=20)
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get(f"/workflows/{failed.id}")
        assert page.status_code == 200
        assert 'id="state">failed<' in page.text
        for state in ("succeeded", "failed", "cancelled"):
            assert f">{state}</span>" in page.text, state
        assert "ValueError: no 2" in page.text and "Cancel" not in page.text
        step = await client.get(f"/tasks/{failed.id}-1")
        assert f'href="/workflows/{failed.id}"' in step.text  # a step links to its workflow

        held = await chain(m.hold(), m.inc.s()).enqueue()

        async def running() -> bool:
            return (await held.status())[0].state is TaskState.ACTIVE

        await eventually(running, "the first step to run")
        token = await token_of(client, f"/workflows/{held.id}")
        done = await client.post(f"/workflows/{held.id}/cancel", data={"csrf_token": token})
        assert done.status_code == 303 and "cancelled" in done.headers["location"]

        async def stopped() -> bool:
            return [s.state for s in await held.status()] == [TaskState.CANCELLED] * 2

        await eventually(stopped, "both steps to end cancelled")
        missing = await client.get(f"/workflows/{'0' * 32}")
        assert missing.status_code == 404 and "No workflow" in missing.text
