"""Operator traps, as subprocesses against real workers and redis-server: a queue that
nobody consumes, a worker name shared by several workers, a queue never seen (a typo)
that must not be paused by accident, an empty queue to forget, and group deletion of
tasks that already ended."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rediq import TaskState
from rediq_core.broker import WorkerRecord

from .conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(120)

APP = """
@app.task(task_queue="reports")
async def report(n):
    return n

@app.task(task_queue="work")
async def add(a, b):
    return a + b
"""


def one_line_error(done: Any) -> str:
    assert (done.code, done.out) == (1, ""), done
    assert done.err.startswith("error: ") and done.err.count("\n") == 1, done.err
    return str(done.err)


async def test_queues_mark_pending_tasks_that_no_live_worker_consumes(harness: Harness) -> None:
    m = harness.write_app(APP)
    await m.report(1).enqueue()
    handle = await m.add(1, 2).enqueue()
    harness.start("--queue-name", "work", "--skip-default-queue")
    assert await handle.result(timeout=20) == 3

    queues = {q["name"]: q for q in (await cli(harness, "queues", "--json")).json()["queues"]}
    assert (queues["reports"]["consumers"], queues["reports"]["no_consumer"]) == (0, True)
    assert (queues["work"]["consumers"], queues["work"]["no_consumer"]) == (1, False)
    table = await cli(harness, "queues")
    assert table.code == 0, table
    [reports] = [line for line in table.out.splitlines() if "reports" in line]
    [work] = [line for line in table.out.splitlines() if " work " in line]
    assert "no consumer" in reports and "no consumer" not in work

    overview = await m.app.control.queue("reports")
    assert overview.no_consumer and overview.consumers == 0


async def test_stop_worker_refuses_a_name_that_several_workers_share(harness: Harness) -> None:
    m = harness.write_app(APP)
    twins = [harness.start("--queue-name", "work", "--worker-name", "twin") for _ in range(2)]

    async def both_registered() -> bool:
        return len(await m.app.control.workers()) == 2

    await eventually(both_registered, "both workers to register")
    by_pid = {w.pid: w.id for w in await m.app.control.workers()}
    ids = [by_pid[t.proc.pid] for t in twins]

    said = one_line_error(await cli(harness, "stop-worker", "twin", "--yes"))
    assert all(i in said for i in ids) and "worker id" in said and "--all" in said, said
    assert all(t.proc.poll() is None for t in twins)

    asked = (await cli(harness, "stop-worker", ids[0], "--yes", "--json")).json()["asked"]
    assert asked == [ids[0]]
    assert await asyncio.to_thread(twins[0].wait_exit, 20) == 0
    assert twins[1].proc.poll() is None, "the other worker of that name was stopped too"

    async def one_left() -> bool:
        return [w.id for w in await m.app.control.workers()] == [ids[1]]

    await eventually(one_left, "the stopped worker to leave the registry")
    elsewhere = WorkerRecord(  # a second live entry named "twin" (on another host)
        id="twin@elsewhere:1:abcdef", name="twin", queues=("work",), heartbeat_age_s=0
    )
    await m.app.control.broker.heartbeat(elsewhere, 60)
    done = await cli(harness, "stop-worker", "twin", "--all", "--yes", "--json")
    assert done.code == 0 and sorted(done.json()["asked"]) == sorted([ids[1], elsewhere.id])
    assert await asyncio.to_thread(twins[1].wait_exit, 20) == 0


async def test_pause_needs_force_for_a_queue_never_seen(harness: Harness) -> None:
    m = harness.write_app(APP)
    await m.add(1, 2).enqueue()
    said = one_line_error(await cli(harness, "pause", "wrok"))
    assert "unknown queue 'wrok'" in said and "--force" in said, said
    assert "wrok" not in await m.app.control.queues()
    assert not await m.app.control.queue_known("wrok")

    done = await cli(harness, "pause", "later", "--force", "--json")
    assert done.json() == {"queue": "later", "paused": True, "changed": True}
    assert (await m.app.control.queue("later")).paused


async def test_pause_force_works_in_a_namespace_that_holds_nothing_yet(harness: Harness) -> None:
    """A new deployment pauses its queue before its first task: --force says the operator
    means a queue (and so a namespace) that holds nothing yet."""
    m = harness.write_app(APP)
    done = await cli(harness, "pause", "first", "--force", "--json")
    assert done.code == 0 and done.json() == {"queue": "first", "paused": True, "changed": True}
    assert (await m.app.control.queue("first")).paused


async def test_an_empty_queue_can_be_forgotten(harness: Harness) -> None:
    m = harness.write_app(APP)
    await m.add(1, 2).enqueue()
    assert (await cli(harness, "pause", "typo", "--force")).code == 0

    said = one_line_error(await cli(harness, "forget", "work", "--yes"))
    assert "not empty" in said and "1 pending" in said, said
    assert not await m.app.control.forget("work")
    assert "work" in await m.app.control.queues()

    done = await cli(harness, "forget", "typo", "--yes", "--json")
    assert done.code == 0 and done.json() == {"queue": "typo", "forgotten": True}
    assert "typo" not in await m.app.control.queues()
    assert not (await m.app.control.queue("typo")).paused
    listed = (await cli(harness, "queues", "--json")).json()["queues"]
    assert [q["name"] for q in listed] == ["work"]

    said = one_line_error(await cli(harness, "forget", "typo", "--yes"))
    assert "unknown queue 'typo'" in said, said
    assert (await cli(harness, "forget", "work")).code == 2  # no --yes off a terminal


async def test_delete_group_finds_tasks_that_ended(harness: Harness) -> None:
    m = harness.write_app(APP)
    tagged = [await m.add(n, 1).groups("user:42").enqueue() for n in range(3)]
    other = await m.add(5, 5).groups("user:7").enqueue()
    harness.start("--queue-name", "work", "--skip-default-queue")
    assert [await h.result(timeout=20) for h in tagged] == [1, 2, 3]
    assert await other.result(timeout=20) == 10

    done = await cli(harness, "delete", "--group", "user:42", "--yes", "--json")
    assert done.code == 0, done
    assert done.json() == {"group": "user:42", "deleted": 3}
    assert [await m.app.control.task(h.id) for h in tagged] == [None] * 3
    record = await m.app.control.task(other.id)
    assert record is not None and record.state is TaskState.SUCCEEDED
    said = one_line_error(await cli(harness, "delete", "--group", "user:42", "--yes"))
    assert "no task to delete" in said
