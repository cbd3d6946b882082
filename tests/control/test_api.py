"""The public API: another process (here: another app object) follows a task by its id
alone; worker status; destructive commands confirm on a terminal."""

from __future__ import annotations

import pexpect
import pytest

from rediq import (
    CancelOutcome,
    Rediq,
    TaskFailedError,
    TaskNotFoundError,
    TaskState,
    WorkerStatus,
)
from rediq_core.broker import WorkerRecord
from rediq_core.control import worker_status

from .conftest import CLI, Harness, eventually

pytestmark = pytest.mark.timeout(60)

APP = """
@app.task(task_queue="elsewhere")
async def double(n):
    return 2 * n

@app.task(task_queue="elsewhere")
async def broken():
    raise RuntimeError("nope")
"""


async def test_result_and_handle_by_id_alone(harness: Harness) -> None:
    m = harness.write_app(APP)
    ok, bad = await m.double(21).enqueue(), await m.broken().enqueue()
    other = Rediq(redis_url=harness.url, namespace=harness.namespace)  # knows no task
    try:
        handle = await other.handle(ok.id)
        assert (handle.id, handle.queue) == (ok.id, "elsewhere")
        assert await handle.state() is TaskState.PENDING
        harness.start("--queue-name", "elsewhere")
        assert await other.result(ok.id, timeout=10) == 42
        with pytest.raises(TaskFailedError, match="nope"):
            await other.result(bad.id, timeout=10)
        with pytest.raises(TaskNotFoundError):
            await other.handle("no-such-task")
        with pytest.raises(TaskNotFoundError):
            await other.result("no-such-task", timeout=1)
        record = await other.control.task(ok.id)
        assert record is not None and record.name == "double" and record.worker
        assert await other.control.cancel(ok.id) is CancelOutcome.FINISHED
        [status] = await other.control.workers()
        assert isinstance(status, WorkerStatus) and "elsewhere" in status.queues
        assert status.pid and status.concurrency == 100 and not status.stale
    finally:
        await other.close()


def test_stale_worker_entries_are_marked() -> None:
    fresh = worker_status(
        WorkerRecord(
            "w1",
            "w",
            ("q",),
            heartbeat_age_s=1.0,
            info={"pid": 7, "running_ids": ["a"], "processed": 3},
        )
    )
    assert (fresh.stale, fresh.pid, fresh.running_ids, fresh.processed) == (False, 7, ("a",), 3)
    assert worker_status(WorkerRecord("w2", "w", (), heartbeat_age_s=120.0)).stale


async def test_destructive_commands_confirm_on_a_terminal(harness: Harness) -> None:
    m = harness.write_app(APP)
    await m.app.enqueue_many([m.double(n) for n in range(3)])

    def purge(answer: str) -> tuple[int, str]:
        child = pexpect.spawn(
            CLI[0],
            [
                *CLI[1:],
                "purge",
                "elsewhere",
                "--redis-url",
                harness.url,
                "--namespace",
                harness.namespace,
            ],
            cwd=str(harness.dir),
            env=harness.env,
            encoding="utf-8",
        )
        child.expect(
            r"purge the pending, waiting, limited, scheduled, dead tasks of queue 'elsewhere'\?",
            timeout=20,
        )
        child.sendline(answer)
        child.expect(pexpect.EOF, timeout=20)
        child.close()
        return child.exitstatus, child.before or ""

    assert purge("n")[0] == 1
    assert (await m.app.control.queue("elsewhere")).pending == 3
    code, out = purge("y")
    assert code == 0 and "removed 3 task(s)" in out
    assert (await m.app.control.queue("elsewhere")).pending == 0


async def test_stop_all_workers(harness: Harness) -> None:
    m = harness.write_app(APP)
    first = harness.start("--queue-name", "elsewhere", "--worker-name", "a")
    second = harness.start("--queue-name", "elsewhere", "--worker-name", "b")

    async def both() -> bool:
        return len(await m.app.control.workers()) == 2

    await eventually(both, "both workers to register")
    assert len(await m.app.control.stop_all_workers()) == 2
    for worker in (first, second):
        assert worker.wait_exit(20) == 0
        assert worker.matching("stop requested by an operator")
    assert await m.app.control.workers() == []


async def test_workers_count_what_they_settle(rediq_redis_url: str, rediq_namespace: str) -> None:
    from rediq_core.broker import Settlement, TaskError
    from rediq_core.testing.broker_contract import make_message
    from rediq_core.worker.remote import CountingSettler

    app = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace)
    broker = app.get_broker()
    try:
        messages = [make_message("q") for _ in range(4)]
        await broker.enqueue(messages)
        await broker.fetch("q", worker_id="w", limit=4, lease_ms=10_000)
        settler = CountingSettler(broker, "w")
        error = TaskError("E", "boom")
        assert await settler.settle(Settlement(messages[0].id, "q", result=b"1"))
        assert await settler.settle(Settlement(messages[1].id, "q", error=error))
        assert await settler.settle(
            Settlement(messages[2].id, "q", error=error, retry_delay_ms=60_000)
        )
        assert not await settler.settle(Settlement("unknown", "q", result=b"1"))
        assert (settler.processed, settler.failed) == (2, 1)  # a retry is not the end
    finally:
        await app.close()
