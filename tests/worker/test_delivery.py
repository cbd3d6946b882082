"""Delivery correctness in the worker: crash budget versus retries, clock skew, internal
failures, and a forced stop with a task that ignores cancellation."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from rediq import Rediq, TaskState
from rediq_core.worker import Worker, WorkerConfig
from rediq_core.worker.runner import TaskRunner

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

SKEW = '''
if os.environ.get("REDIQ_TEST_CLOCK_SKEW_S"):  # this process's wall clock is off
    _skew, _real_ns = int(os.environ["REDIQ_TEST_CLOCK_SKEW_S"]), time.time_ns
    time.time_ns = lambda: _real_ns() + _skew * 1_000_000_000
    time.time = lambda: _real_ns() / 1e9 + _skew
'''


async def test_retries_do_not_use_up_the_crash_budget(harness: Harness) -> None:
    """Four ordinary failures, then the worker dies once (OOM kill, deploy): the task has
    retries left and lost its lease only once, so it runs again and succeeds."""
    marker = harness.dir / "killed-once"
    m = harness.write_app(f'''
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
''')
    env = {"REDIQ_LEASE_MS": "1000", "REDIQ_BACKOFF_BASE_MS": "1"}
    handle = await m.flaky().enqueue()
    first = harness.start(env=env)
    assert first.wait_exit(20) == -signal.SIGKILL
    harness.start(env=env)
    assert await handle.result(timeout=20) == "ok"


async def test_retry_backoff_runs_on_the_server_clock(harness: Harness) -> None:
    """A worker whose clock is a minute behind Redis still waits out the backoff."""
    m = harness.write_app(SKEW + '''
@app.task(task_retries=2)
async def twice_failing():
    out("ATTEMPT", current_task_retried(), time.monotonic())
    if current_task_retried() < 2:
        raise RuntimeError("again")
    return "ok"
''')
    handle = await m.twice_failing().enqueue()
    worker = harness.start(env={"REDIQ_TEST_CLOCK_SKEW_S": "-60",
                                "REDIQ_BACKOFF_BASE_MS": "400"})
    assert await handle.result(timeout=15) == "ok"
    starts = [float(line.split()[2]) for line in worker.wait_for("^ATTEMPT", count=3)]
    gaps_ms = [round((b - a) * 1000) for a, b in zip(starts, starts[1:], strict=False)]
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
    worker = Worker(app, WorkerConfig(task_concurrency=2, handle_signals=False,
                                      lease_ms=1000, lease_renew_ms=300))
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
    m = harness.write_app('''
@app.task
async def stubborn():
    out("STARTED")
    await run_in_current_executor(functools.partial(time.sleep, 3))
    out("DONE")
''')
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
    started = time.monotonic()
    while await handle.state() is not TaskState.PENDING:  # its lease expires, unsettled
        assert time.monotonic() - started < 3, "the lease never expired"
        await asyncio.sleep(0.05)
    record = await handle.info()
    assert record is not None and record.deliveries == 1
