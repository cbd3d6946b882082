"""The dashboard's queue page shows the use of every limit (running and held-back tasks
per limit, the queue's own limits) and lists the limited tasks, against a ``rediq
dashboard`` subprocess, a worker and a real Redis."""

from __future__ import annotations

from typing import Any

import httpx

from tests.control.conftest import eventually

from .conftest import Harness, start_dashboard

APP = """
@app.task(task_queue="inbox", concurrency_limit=1, concurrency_key="tenant")
async def hold(tenant):
    await asyncio.sleep(60)
"""


async def test_a_queue_page_shows_its_limits_and_limited_tasks(harness: Harness) -> None:
    m: Any = harness.write_app(APP)
    await m.app.control.set_limits("inbox", concurrency=5, rate="30/m")
    handles = [await m.hold("acme").enqueue() for _ in range(3)]
    harness.start("--queue-name", "inbox")

    async def held_back() -> bool:
        return (await m.app.control.queue("inbox")).limited == 2

    await eventually(held_back, "two tasks held back by the limit")
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        page = (await client.get("/queues/inbox")).text
        assert "2 limited" in page
        table = page[page.index('<table id="limits">') :]
        table = table[: table.index("</table>")]
        assert "queue: at most 5 running" in table and "queue: 30/m" in table
        assert '<td class="mono">c:hold:acme</td><td>1</td><td>2</td>' in table
        listed = (await client.get("/queues/inbox?state=limited")).text
        shown = [h.id for h in handles if h.id in listed]
        assert len(shown) == 2, listed[-2000:]
