"""Task execution semantics through real worker processes."""

from __future__ import annotations

import pytest

from rediq_core.broker import CancelOutcome, TaskState
from rediq_core.errors import TaskCancelledError, TaskFailedError
from rediq_core.testing.broker_contract import make_message

from .conftest import Harness

pytestmark = pytest.mark.timeout(60)

EVENTS = """
def tag():
    info = current_task_info()
    return f"{info.task_name} {info.task_id} {current_task_retried()}"

@app.event
async def before_task_start():
    out("EV start", tag())

@app.event
async def before_task_retry():
    out("EV retry", tag())

@app.event
async def after_task_success():
    out("EV success", tag(), repr(current_task_result()))

@app.event
async def after_task_failure():
    out("EV failure", tag(), type(current_task_exception()).__name__)
"""


async def test_priorities_run_lowest_first(harness: Harness) -> None:
    m = harness.write_app("""
@app.task
async def job(n):
    out("RUN", n)
""")
    priorities = [5, -3, 9, 0, 5, 1, -3, 7]
    handles = [await m.job(p).options(priority=p).enqueue() for p in priorities]
    harness.start("--worker-task-concurrency", "1", "--worker-queue-size", "0")
    for handle in handles:
        await handle.result(timeout=20)
    ran = [int(line.split()[1]) for line in harness.workers[0].matching(r"^RUN ")]
    assert ran == sorted(priorities)


async def test_several_queues_and_skip_default_queue(harness: Harness) -> None:
    m = harness.write_app("""
@app.task(task_queue="a")
async def in_a():
    return "a"

@app.task(task_queue="b")
async def in_b():
    return "b"

@app.task
async def in_default():
    return "default"
""")
    a, b, d = (await m.in_a().enqueue(), await m.in_b().enqueue(), await m.in_default().enqueue())
    worker = harness.start("--queue-name", "a", "--queue-name", "b", "--skip-default-queue")
    assert (await a.result(timeout=20), await b.result(timeout=20)) == ("a", "b")
    assert await d.state() is TaskState.PENDING
    worker.signal(2)
    assert worker.wait_exit() == 0
    worker = harness.start()  # the default queue only
    assert await d.result(timeout=20) == "default"


async def test_retries_fire_events_in_the_seed_order(harness: Harness) -> None:
    m = harness.write_app(
        EVENTS
        + """
@app.task(task_retries=3)
async def flaky():
    out("RUN flaky", current_task_retried())
    if current_task_retried() < 2:
        raise RuntimeError("not yet")
    return current_task_retried()
"""
    )
    handle = await m.flaky().enqueue()
    worker = harness.start()
    assert await handle.result(timeout=20) == 2
    lines = worker.wait_for(r"^(EV|RUN) ", count=7)
    assert [" ".join(line.split()[:2] + line.split()[-1:]) for line in lines] == [
        "EV start 0",
        "RUN flaky 0",
        "EV retry 1",
        "RUN flaky 1",
        "EV retry 2",
        "RUN flaky 2",
        "EV success 2",
    ]


async def test_timeout_fails_the_attempt_then_retries_then_fails(harness: Harness) -> None:
    m = harness.write_app(
        EVENTS
        + """
@app.task(task_timeout=100, task_retries=1)
async def slow():
    await asyncio.sleep(5)
"""
    )
    handle = await m.slow().enqueue()
    worker = harness.start()
    with pytest.raises(TaskFailedError, match="exceeded its timeout of 100 ms"):
        await handle.result(timeout=20)
    lines = worker.wait_for(r"^EV ", count=3)
    assert [line.split()[1] for line in lines] == ["start", "retry", "failure"]
    assert lines[-1].endswith("TimeoutError")


async def test_running_task_is_cancelled_by_the_announcement(harness: Harness) -> None:
    """The worker's safety net (its lease keeper learns of a cancellation when it renews
    the lease) renews only once a minute here: a cancelled result within 20 s came through
    the announcement, not the safety net."""
    m = harness.write_app(
        EVENTS
        + """
@app.task
async def forever():
    out("STARTED")
    await asyncio.sleep(60)
"""
    )
    handle = await m.forever().enqueue()
    worker = harness.start(env={"REDIQ_LEASE_MS": "180000", "REDIQ_LEASE_RENEW_MS": "60000"})
    worker.wait_for("^STARTED")
    assert await handle.cancel() is CancelOutcome.REQUESTED
    with pytest.raises(TaskCancelledError):
        await handle.result(timeout=20)
    assert worker.wait_for("^EV failure")[0].endswith("TaskCancelledError")


async def test_bad_input_is_dead_lettered_and_the_worker_goes_on(harness: Harness) -> None:
    m = harness.write_app("""
@app.task
async def add(a, b):
    return a + b
""")
    broker = m.app.get_broker()
    good = m.app.build_message(m.add(1, 2))
    unknown = make_message("default", id="unknown-name", name="nope", payload=good.payload)
    bad_args = make_message(
        "default", id="bad-args", name="add", payload=b"[[1], {}]", max_retries=3
    )
    not_json = make_message("default", id="not-json", name="add", payload=b"\x80\x04")
    foreign = make_message("default", id="foreign", name="add", payload=b"x", serializer="pickle")
    await broker.enqueue([unknown, bad_args, not_json, foreign, good])
    worker = harness.start()
    assert await m.app.get_broker().wait_finished(good.id, "default", 20) is not None
    for task_id, reason in [
        ("unknown-name", "unknown task name 'nope'"),
        ("bad-args", "arguments do not match"),
        ("not-json", "does not deserialize"),
        ("foreign", "not accepted by this app"),
    ]:
        record = await broker.wait_finished(task_id, "default", 20)
        assert record is not None and record.state is TaskState.FAILED, task_id
        assert record.error is not None and reason in record.error.message, record.error
    assert len(worker.matching("dead-lettered")) == 4
    assert worker.proc.poll() is None
