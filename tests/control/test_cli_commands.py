"""Every control command as a subprocess against a real worker and redis-server: the
table and the --json document; bad input is a one-line error that changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rediq_core.errors import TaskCancelledError, TaskFailedError

from .conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(120)

APP = """
@app.task(task_queue="work")
async def add(a, b):
    return a + b

@app.task(task_queue="work")
async def fail():
    raise ValueError("kaboom")

@app.task(task_queue="work")
async def hold():
    await asyncio.sleep(60)
"""


async def state_of(m: Any, task_id: str) -> str | None:
    record = await m.app.control.task(task_id)
    return record.state.value if record else None


async def scenario(harness: Harness) -> dict[str, Any]:
    """A worker, three finished additions, a dead letter, a running and two scheduled tasks."""
    m = harness.write_app(APP)
    adds = [await m.add(n, 1).enqueue() for n in range(3)]
    failed = await m.fail().enqueue()
    held = await m.hold().groups("h").enqueue()
    scheduled = [await m.add(9, n).options(delay=600).enqueue() for n in range(2)]
    worker = harness.start("--queue-name", "work", "--worker-name", "cli-w")
    assert [await h.result(timeout=10) for h in adds] == [1, 2, 3]
    with pytest.raises(TaskFailedError):
        await failed.result(timeout=10)

    async def running() -> bool:
        return await state_of(m, held.id) == "active"

    await eventually(running, "the hold task to run")
    return {
        "m": m,
        "worker": worker,
        "adds": adds,
        "failed": failed,
        "held": held,
        "scheduled": scheduled,
    }


async def test_every_command_table_and_json(harness: Harness) -> None:
    s = await scenario(harness)
    m, held, failed = s["m"], s["held"], s["failed"]

    # queues
    table = await cli(harness, "queues")
    assert table.code == 0 and "work" in table.out and "running" in table.out
    [work] = [
        q
        for q in (await cli(harness, "queues", "--json", app=True)).json()["queues"]
        if q["name"] == "work"
    ]
    assert (work["pending"], work["scheduled"], work["active"], work["dead"]) == (0, 2, 1, 1)
    assert work["totals"] == {
        "enqueued": 7,
        "succeeded": 3,
        "failed": 1,
        "retried": 0,
        "expired": 0,
    }
    assert sum(minute["succeeded"] for minute in work["minutes"]) == 3
    assert work["paused"] is False and set(work["rates_per_minute"]) == set(work["totals"])

    # workers
    table = await cli(harness, "workers")
    assert table.code == 0 and "cli-w" in table.out
    [w] = (await cli(harness, "workers", "--json")).json()["workers"]
    assert w["name"] == "cli-w" and "work" in w["queues"] and w["concurrency"] == 100
    assert w["pid"] == s["worker"].proc.pid and w["stale"] is False and w["version"]

    # tasks, by state
    table = await cli(harness, "tasks", "work", "--state", "scheduled")
    assert table.code == 0 and all(h.id in table.out for h in s["scheduled"])
    doc = (await cli(harness, "tasks", "work", "--state", "scheduled", "--json")).json()
    assert {t["id"] for t in doc["tasks"]} == {h.id for h in s["scheduled"]}
    assert doc["tasks"][0]["due_at_ms"] <= doc["tasks"][1]["due_at_ms"]
    page = (
        await cli(harness, "tasks", "work", "--state", "scheduled", "--limit", "1", "--json")
    ).json()
    assert len(page["tasks"]) == 1 and page["next_cursor"] == "1"
    [active] = (await cli(harness, "tasks", "work", "--state", "active", "--json")).json()["tasks"]
    assert active["id"] == held.id and active["worker"].startswith("cli-w@")
    assert active["groups"] == ["h"] and active["lease_deadline_ms"]
    [dead] = (await cli(harness, "tasks", "work", "--state", "dead", "--json")).json()["tasks"]
    assert dead["id"] == failed.id and dead["error"]["message"] == "kaboom"

    # task
    add_id = s["adds"][0].id
    table = await cli(harness, "task", add_id, app=True)
    assert table.code == 0 and "succeeded" in table.out and "add" in table.out
    task = (await cli(harness, "task", add_id, "--json", app=True)).json()["task"]
    assert (task["state"], task["result"], task["name"], task["queue"]) == (
        "succeeded",
        1,
        "add",
        "work",
    )
    assert task["enqueued_at_ms"] <= task["started_at_ms"] <= task["finished_at_ms"]

    # dead letters: list, requeue (it fails again), delete
    table = await cli(harness, "dead-letters", "work")
    assert table.code == 0 and failed.id in table.out and "kaboom" in table.out
    listed = (await cli(harness, "dead-letters", "work", "list", "--json")).json()
    assert [t["id"] for t in listed["tasks"]] == [failed.id]
    doc = (await cli(harness, "dead-letters", "work", "requeue", failed.id, "--json")).json()
    assert doc == {"queue": "work", "action": "requeue", "count": 1}

    async def dead_again() -> bool:
        return (await m.app.control.queue("work")).dead == 1

    await eventually(dead_again, "the requeued task to fail again")
    table = await cli(harness, "dead-letters", "work", "requeue")
    assert table.code == 0 and table.out.strip() == "requeued 1 dead letter(s) of 'work'"
    await eventually(dead_again, "the requeued task to fail again")
    table = await cli(harness, "dead-letters", "work", "delete", failed.id, "--yes")
    assert table.code == 0 and table.out.strip() == "deleted 1 dead letter(s) of 'work'"
    await m.fail().enqueue()
    await eventually(dead_again, "another task to fail")
    done = await cli(harness, "dead-letters", "work", "delete", "--yes", "--json")
    assert done.code == 0 and done.json()["count"] == 1
    assert await m.app.control.task(failed.id) is None

    # cancel (running: requested, then cancelled on the worker)
    doc = (await cli(harness, "cancel", held.id, "--yes", "--json")).json()
    assert doc["outcomes"] == {held.id: "requested"}
    with pytest.raises(TaskCancelledError):
        await held.result(timeout=10)
    table = await cli(harness, "cancel", s["scheduled"][0].id, "--yes")
    assert table.code == 0 and "cancelled" in table.out

    # delete
    doc = (await cli(harness, "delete", add_id, "--yes", "--json")).json()
    assert doc == {"deleted": [add_id], "not_deleted": []}
    assert (await cli(harness, "task", add_id)).code == 1
    table = await cli(harness, "delete", s["adds"][1].id, "--yes")
    assert table.code == 0 and s["adds"][1].id in table.out and "deleted" in table.out

    # pause / resume
    assert (await cli(harness, "pause", "work")).out.strip() == "queue 'work' paused"
    assert (await m.app.control.queue("work")).paused
    doc = (await cli(harness, "resume", "work", "--json")).json()
    assert doc == {"queue": "work", "paused": False, "changed": True}
    doc = (await cli(harness, "pause", "work", "--json")).json()
    assert doc == {"queue": "work", "paused": True, "changed": True}
    assert (await cli(harness, "resume", "work")).out.strip() == "queue 'work' resumed"

    # purge
    doc = (await cli(harness, "purge", "work", "--state", "scheduled", "--yes", "--json")).json()
    assert doc == {"queue": "work", "states": ["scheduled"], "removed": 1}
    await m.add(5, 5).options(delay=600).enqueue()
    table = await cli(harness, "purge", "work", "--yes")
    assert table.code == 0
    assert (
        table.out.strip()
        == "removed 1 task(s) from 'work' (pending, waiting, limited, scheduled, dead)"
    )

    # stop-worker: the worker finishes and exits 0
    doc = (await cli(harness, "stop-worker", "cli-w", "--yes", "--json")).json()
    assert len(doc["asked"]) == 1 and doc["asked"][0].startswith("cli-w@")
    assert await asyncio.to_thread(s["worker"].wait_exit, 20) == 0
    harness.start("--queue-name", "work", "--worker-name", "cli-w2")
    table = await cli(harness, "stop-worker", "--all", "--yes")
    assert table.code == 0 and table.out.startswith("asked cli-w2@") and "to stop" in table.out
    assert await asyncio.to_thread(harness.workers[-1].wait_exit, 20) == 0
    assert (await cli(harness, "workers", "--json")).json() == {"workers": []}


async def fingerprint(m: Any) -> tuple[Any, ...]:
    """Everything a bad command could change: counts, counters and every listed task."""
    control = m.app.control
    o = await control.queue("work")
    listed = []
    for state in ("pending", "scheduled", "active", "failed"):
        page = await control.tasks("work", state, limit=1000)  # type: ignore[arg-type]
        listed.append(sorted((r.id, r.state.value, r.retried) for r in page.tasks))
    return (
        o.pending,
        o.scheduled,
        o.active,
        o.dead,
        o.paused,
        dict(o.totals),
        listed,
        len(await control.workers()),
    )


BAD = [
    (["task", "nope"], 1, "no task nope"),
    (["tasks", "nosuchqueue"], 1, "unknown queue 'nosuchqueue'"),
    (["tasks", "work", "--state", "bogus"], 2, "unknown state 'bogus'"),
    (["tasks", "work", "--cursor", "x"], 2, "bad cursor"),
    (["purge", "nosuchqueue", "--yes"], 1, "unknown queue"),
    (["purge", "work", "--state", "bogus", "--yes"], 2, "unknown state"),
    (["purge", "work"], 2, "pass --yes"),
    (["cancel", "nope", "--yes"], 1, "nope not found"),
    (["cancel", "--group", "nosuchgroup", "--yes"], 1, "no unfinished task"),
    (["cancel", "--yes"], 2, "name task ids or --group"),
    (["delete", "nope", "--yes"], 1, "not found or running"),
    (["dead-letters", "nosuchqueue"], 1, "unknown queue"),
    (["dead-letters", "work", "requeue", "nope"], 1, "nothing to requeue"),
    (["pause", "nosuchqueue"], 1, "unknown queue"),
    (["resume", "work"], 1, "was not paused"),
    (["stop-worker", "ghost", "--yes"], 1, "no registered worker 'ghost'"),
    (["stop-worker", "--yes"], 2, "name a worker"),
]


async def test_bad_input_is_one_line_and_changes_nothing(harness: Harness) -> None:
    s = await scenario(harness)
    before = await fingerprint(s["m"])
    for args, code, message in BAD:
        done = await cli(harness, *args)
        assert (done.code, done.out) == (code, ""), (args, done)
        assert done.err.startswith("error: ") and done.err.count("\n") == 1, (args, done.err)
        assert message in done.err, (args, done.err)
    for env_free in (["queues"], ["task", "x"]):  # neither app nor URL
        done = await cli(harness, *env_free, target=False)
        assert done.code == 2 and done.err.count("\n") == 1 and "--app" in done.err, done
    done = await cli(harness, "queues", "--app", "nosuchmodule:app", target=False)
    assert done.code == 2 and "cannot import module 'nosuchmodule'" in done.err
    assert done.err.count("\n") == 1
    assert await fingerprint(s["m"]) == before
