"""Delivery correctness in the worker: crash budget versus retries, clock skew, internal
failures, and a forced stop with a task that ignores cancellation."""

from __future__ import annotations

import asyncio
import itertools
import signal
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from rediq import Rediq, TaskState
from rediq_core.broker import Delivery, Lease
from rediq_core.message import TaskMessage
from rediq_core.worker import Worker, WorkerConfig
from rediq_core.worker.leases import LeaseTable
from rediq_core.worker.runner import TaskRunner

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

SKEW = """
if os.environ.get("REDIQ_TEST_CLOCK_SKEW_S"):  # this process's wall clock is off
    _skew, _real_ns = int(os.environ["REDIQ_TEST_CLOCK_SKEW_S"]), time.time_ns
    time.time_ns = lambda: _real_ns() + _skew * 1_000_000_000
    time.time = lambda: _real_ns() / 1e9 + _skew
"""


async def test_retries_do_not_use_up_the_crash_budget(harness: Harness) -> None:
    """Four ordinary failures, then the worker dies once (OOM kill, deploy): the task has
    retries left and lost its lease only once, so it runs again and succeeds."""
    marker = harness.dir / "killed-once"
    m = harness.write_app(f"""
@app.task(task_retries=10)
async def flaky():
    retried = current_task_retried()
    out("ATTEMPT", retried)
    if retried < 4:
        raise RuntimeError("ordinary failure")
    if not os.path.exists({str(marker)!r}):
        open({str(marker)!r}, "w").close()
        os.kill(os.getpid(), 9)  # the worker dies holding the task
    return "ok"
""")
    env = {"REDIQ_LEASE_MS": "1000", "REDIQ_BACKOFF_BASE_MS": "1"}
    handle = await m.flaky().enqueue()
    first = harness.start(env=env)
    assert first.wait_exit(20) == -signal.SIGKILL
    harness.start(env=env)
    assert await handle.result(timeout=20) == "ok"


async def test_retry_backoff_runs_on_the_server_clock(harness: Harness) -> None:
    """A worker whose clock is a minute behind Redis still waits out the backoff."""
    m = harness.write_app(
        SKEW
        + """
@app.task(task_retries=2)
async def twice_failing():
    out("ATTEMPT", current_task_retried(), time.monotonic())
    if current_task_retried() < 2:
        raise RuntimeError("again")
    return "ok"
"""
    )
    handle = await m.twice_failing().enqueue()
    worker = harness.start(env={"REDIQ_TEST_CLOCK_SKEW_S": "-60", "REDIQ_BACKOFF_BASE_MS": "400"})
    assert await handle.result(timeout=15) == "ok"
    starts = [float(line.split()[2]) for line in worker.wait_for("^ATTEMPT", count=3)]
    gaps_ms = [round((b - a) * 1000) for a, b in itertools.pairwise(starts)]
    # Backoff with jitter draws from [d/2, d]: d = 400 ms, then 800 ms.
    assert gaps_ms[0] >= 200 and gaps_ms[1] >= 400, gaps_ms


async def test_runners_survive_internal_errors_while_redis_is_unreachable(
    rediq_redis_url: str, rediq_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal error in a runner, followed by a failing hand-back (Redis down), must
    not end the runner: later tasks still run, and the failed ones come back."""
    app = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace)

    @app.task
    async def echo(n: int) -> int:
        return n

    real_execute = TaskRunner.execute
    broken = {"execute": 2, "release": 2}

    async def execute(self: TaskRunner, delivery: Any) -> None:
        if broken["execute"] > 0:
            broken["execute"] -= 1
            raise RuntimeError("internal error")
        await real_execute(self, delivery)

    monkeypatch.setattr(TaskRunner, "execute", execute)
    broker = app.get_broker()
    real_release = broker.release

    async def release(*args: Any, **kwargs: Any) -> Any:
        if broken["release"] > 0:
            broken["release"] -= 1
            raise RedisConnectionError("Redis is down")
        return await real_release(*args, **kwargs)

    monkeypatch.setattr(broker, "release", release)
    worker = Worker(
        app,
        WorkerConfig(task_concurrency=2, handle_signals=False, lease_ms=1000, lease_renew_ms=300),
    )
    running = asyncio.ensure_future(worker.run())
    try:
        first = [await echo(n).enqueue() for n in range(2)]
        later = [await echo(n).enqueue() for n in range(2, 7)]
        results = [await h.result(timeout=10) for h in later + first]
        assert results == [2, 3, 4, 5, 6, 0, 1]
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(running, 15)
        await app.close()


async def test_forced_stop_keeps_a_task_that_ignores_cancellation(harness: Harness) -> None:
    """A second signal while a task runs blocking code in a thread: the task is not handed
    back while that code still runs (another worker would run it concurrently)."""
    m = harness.write_app("""
def blocking_code():
    time.sleep(3)
    out("DONE")  # from the executor thread: the code ran to its end

@app.task
async def stubborn():
    out("STARTED")
    await run_in_current_executor(blocking_code)
""")
    handle = await m.stubborn().enqueue()
    worker = harness.start(env={"REDIQ_LEASE_MS": "1000"})
    worker.wait_for("^STARTED")
    worker.signal(signal.SIGINT)
    worker.wait_for("shutting down gracefully")
    worker.signal(signal.SIGINT)
    worker.wait_for("ignored cancellation|handed|still running", timeout=10)
    for _ in range(3):  # across more than one lease length, while the code still runs
        assert await handle.state() is TaskState.ACTIVE
        await asyncio.sleep(0.5)
    assert worker.wait_exit(10) == 1
    assert "DONE" in worker.lines
    # Unsettled, its lease expires once the process is gone; another worker runs it again.
    again = harness.start(env={"REDIQ_LEASE_MS": "1000"})
    again.wait_for("^STARTED", timeout=10)
    record = await handle.info()
    assert record is not None and record.deliveries == 2


def _delivery(task_id: str, number: int) -> Delivery:
    message = TaskMessage(
        id=task_id,
        name="t",
        queue="q",
        payload=b"[[],{}]",
        serializer="json",
        priority=0,
        max_retries=0,
        timeout_ms=None,
        result_ttl_s=0,
    )
    return Delivery(message, retried=0, deliveries=number, lease_deadline_ms=0)


def test_two_leases_of_one_task_are_kept_apart() -> None:
    """A stale and a newer lease of one task in one worker: each is tracked on its own."""
    table = LeaseTable()
    stale, newer = Lease("t1", 1), Lease("t1", 2)
    table.add("q", stale, "t")
    table.add("q", newer, "t")
    table.remove("q", stale)  # the stale attempt ends
    assert newer in table and stale not in table
    assert table.snapshot() == {"q": [newer]}


async def test_a_cancel_announced_before_the_lease_arrives_is_not_lost(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    """The claim ran, a cancel of the leased task was announced, and only then did the
    claim's reply register the lease here: the task is stopped all the same."""
    app = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace)
    worker = Worker(app, WorkerConfig(handle_signals=False))
    worker.runner = TaskRunner(
        app=app,
        worker_name="w",
        events=None,  # type: ignore[arg-type]
        settler=None,
        leases=worker.leases,  # type: ignore[arg-type]
        backoff=worker.config.backoff,
    )
    worker._cancel_announced("t1")
    delivery = _delivery("t1", 3)
    worker._leased(delivery)
    assert worker.runner.stop_requested == {delivery.lease}
    worker._leased(_delivery("t2", 1))  # no announcement: not stopped
    assert worker.runner.stop_requested == {delivery.lease}
    await app.close()


async def test_a_handed_task_starts_before_the_worker_waits_again(
    rediq_redis_url: str, rediq_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task handed to an idle worker starts before its fetcher begins the next wait:
    the registration (a round trip's worth of client work) is not on the pickup path."""
    from rediq_core.testing import run_worker
    from rediq_redis import RedisBroker

    waits = 0  # blocking fetches begun
    started_after: list[int] = []  # the number of waits begun when each task started
    fetch = RedisBroker.fetch

    async def counted_fetch(self: RedisBroker, *args: Any, **kwargs: Any) -> Any:
        nonlocal waits
        if kwargs.get("wait", True):
            waits += 1
        return await fetch(self, *args, **kwargs)

    monkeypatch.setattr(RedisBroker, "fetch", counted_fetch)
    app = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace)

    @app.task
    async def probe() -> None:
        started_after.append(waits)

    async with run_worker(app, task_concurrency=4):
        for round_ in range(3):
            for _ in range(2000):  # bounded (20 s): the idle worker begins its wait
                if waits > round_:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"round {round_}: the worker never waited")
            waiting = waits
            await (await probe().enqueue()).result(timeout=20)
            assert started_after[-1] == waiting, (
                f"round {round_}: the fetcher began another wait before the task started"
            )
    await app.close()
