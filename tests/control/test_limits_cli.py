"""``rediq limits`` against a real worker process and redis-server: the use of a task's
concurrency limit per key, the tasks it holds back (also in ``rediq tasks --state
limited`` and ``rediq queues``), setting and clearing a queue's own limits, and one-line
errors for bad input."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(120)

APP = """
@app.task(task_queue="work", concurrency_limit=1, concurrency_key="tenant")
async def hold(tenant, n):
    await asyncio.sleep(60)
"""


async def test_limits_listed_set_and_cleared(harness: Harness) -> None:
    m: Any = harness.write_app(APP)
    handles = [await m.hold("acme", n).enqueue() for n in range(3)]
    harness.start("--queue-name", "work", "--worker-name", "limits-w")

    async def held_back() -> bool:
        states = [(await m.app.control.task(h.id)).state.value for h in handles]
        return sorted(states) == ["active", "limited", "limited"]

    await eventually(held_back, "one task running and two limited")

    doc = (await cli(harness, "limits", "work", "--json")).json()["limits"]
    assert doc == [
        {
            "queue": "work",
            "concurrency": None,
            "rate": None,
            "uses": [
                {
                    "name": "c:hold:acme",
                    "kind": "concurrency",
                    "running": 1,
                    "limited": 2,
                    "next_start_ms": None,
                }
            ],
        }
    ]
    table = await cli(harness, "limits")
    assert table.code == 0 and "c:hold:acme" in table.out, table.err
    listed = (await cli(harness, "tasks", "work", "--state", "limited", "--json")).json()
    assert len(listed["tasks"]) == 2
    queues = (await cli(harness, "queues", "--json")).json()["queues"]
    assert [q["limited"] for q in queues if q["name"] == "work"] == [2]

    done = await cli(harness, "limits", "work", "--concurrency", "5", "--rate", "100/s", "--json")
    assert done.code == 0, done.err
    assert done.json()["limits"][0]["concurrency"] == 5
    assert done.json()["limits"][0]["rate"] == "100/s"
    kept = await cli(harness, "limits", "work", "--concurrency", "none", "--json")
    assert (kept.json()["limits"][0]["concurrency"], kept.json()["limits"][0]["rate"]) == (
        None,
        "100/s",
    )
    cleared = await cli(harness, "limits", "work", "--clear", "--json")
    assert cleared.json()["limits"][0]["rate"] is None
    assert (await m.app.control.limits("work"))[0].limits.empty

    for bad in (("--concurrency", "many"), ("--rate", "fast"), ("--clear", "--rate", "1/s")):
        refused = await cli(harness, "limits", "work", *bad)
        assert refused.code == 2 and refused.out == "" and "error" in refused.err, refused
    unknown = await cli(harness, "limits", "nowhere")
    assert unknown.code == 1 and "unknown queue" in unknown.err
    no_queue = await cli(harness, "limits", "--rate", "1/s")
    assert no_queue.code == 2 and "QUEUE" in no_queue.err
