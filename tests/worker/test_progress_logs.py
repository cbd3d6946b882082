"""Task progress and logs end to end, with a worker in the test's event loop, on Redis
and on ``memory://``: read while the task runs and after it ended, bounded, kept apart
between concurrent tasks, every attempt of a retried task, and nothing for a task that
reports nothing."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from rediq import (
    ContextUnavailableError,
    Rediq,
    TaskHandle,
    current_task_info,
    run_in_current_executor,
    set_progress,
)
from rediq.testing import run_worker

pytestmark = pytest.mark.timeout(90)

T = TypeVar("T")
WAIT_S = 15.0
#: Short renewal rounds: reports reach the broker within one of them.
FAST = {"lease_ms": 1_500, "lease_renew_ms": 200}

log = logging.getLogger("tests.progress")
log.setLevel(logging.INFO)


async def until(read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str) -> T:
    """Read until ``ok`` holds (bounded by WAIT_S), or fail saying what was last read."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        value = await read()
        if ok(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not seen within {WAIT_S} s; last read: {value!r}")
        await asyncio.sleep(0.05)


def messages(logs: Any) -> list[str]:
    return [line.message for line in logs.lines]


async def test_progress_and_logs_are_read_while_running_and_after(app: Rediq) -> None:
    gate = asyncio.Event()

    @app.task
    async def resize(name: str) -> str:
        await set_progress(0.4, "resizing")
        log.info("resizing %s", name)
        log.warning("large image")
        await gate.wait()
        await set_progress(1.0, "done")
        log.info("done")
        return name

    async with run_worker(app, **FAST) as worker:
        handle = await resize("cat.png").enqueue()
        progress = await until(handle.progress, lambda p: p is not None, "progress")
        assert progress is not None and (progress.fraction, progress.message) == (0.4, "resizing")
        logs = await until(handle.logs, lambda x: len(x.lines) == 2, "two log lines")
        assert [(x.level, x.logger, x.message) for x in logs.lines] == [
            ("INFO", "tests.progress", "resizing cat.png"),
            ("WARNING", "tests.progress", "large image"),
        ]
        assert logs.dropped == 0 and logs.lines[0].attempt == 0
        assert worker.trails is not None
        sent = worker.trails.calls
        assert sent >= 1, "sent in a renewal round, before the task ended"
        gate.set()
        assert await handle.result(timeout=WAIT_S) == "cat.png"
        assert worker.trails.calls == sent + 1, "and the rest once, before its settlement"
    final = await handle.progress()
    assert final is not None and (final.fraction, final.message) == (1.0, "done")
    assert messages(await handle.logs())[-1] == "done", "the last lines are sent at settlement"


async def test_concurrent_tasks_keep_their_own_lines(app: Rediq) -> None:
    both = asyncio.Barrier(2)

    def blocking(n: int) -> None:
        log.info("thread of %s", n)

    @app.task
    async def chatty(n: int) -> None:
        await both.wait()  # both run at once in one worker
        for i in range(20):
            logging.getLogger(f"tests.progress.{n}").warning("task %s line %s", n, i)
            await asyncio.sleep(0)
        await run_in_current_executor(lambda: blocking(n))

    async with run_worker(app, **FAST):
        handles = [await chatty(n).enqueue() for n in (1, 2)]
        for h in handles:
            await h.result(timeout=WAIT_S)
    for n, h in zip((1, 2), handles, strict=True):
        lines = (await h.logs()).lines
        assert [x.message for x in lines] == [
            *(f"task {n} line {i}" for i in range(20)),
            f"thread of {n}",
        ]
        assert {x.logger for x in lines[:20]} == {f"tests.progress.{n}"}


async def test_logs_are_bounded_with_a_count_of_dropped_lines(app: Rediq) -> None:
    @app.task
    async def noisy() -> None:
        for i in range(50):
            log.warning("line %s", i)
        log.warning("long %s", "x" * 1500)

    async with run_worker(app, task_log_lines=10, task_log_bytes=2_000, **FAST):
        handle = await noisy().enqueue()
        await handle.result(timeout=WAIT_S)
    logs = await handle.logs()
    kept = messages(logs)
    assert kept[-1].startswith("long ") and len(kept) < 10
    assert kept[:-1] == [f"line {i}" for i in range(51 - len(kept), 50)]
    assert logs.dropped == 51 - len(kept)


async def test_a_retried_task_keeps_every_attempts_lines(app: Rediq) -> None:
    @app.task(task_retries=1)
    async def flaky() -> int:
        attempt = current_task_info().retried
        log.warning("attempt %s", attempt)
        await set_progress(0.5 * (attempt + 1), f"attempt {attempt}")
        if attempt == 0:
            raise ConnectionError("try again")
        return attempt

    async with run_worker(app, backoff=_no_backoff(), **FAST):
        handle = await flaky().enqueue()
        assert await handle.result(timeout=WAIT_S) == 1
    lines = (await handle.logs()).lines
    assert [(x.message, x.attempt) for x in lines] == [("attempt 0", 0), ("attempt 1", 1)]
    progress = await handle.progress()
    assert progress is not None and progress.message == "attempt 1"


async def test_an_ordinary_task_leaves_no_trail(app: Rediq, rediq_namespace: str) -> None:
    @app.task
    async def quiet() -> int:
        return 1

    async with run_worker(app, **FAST) as worker:
        handles = [await quiet().enqueue() for _ in range(20)]
        assert [await h.result(timeout=WAIT_S) for h in handles] == [1] * 20
        assert worker.trails is not None and worker.trails.calls == 0, "no report call"
    handle = handles[0]
    assert await handle.progress() is None
    assert (await handle.logs()).lines == ()
    if app.redis_url.startswith("redis"):
        redis = Redis.from_url(app.redis_url)
        try:
            found = [k async for k in redis.scan_iter(match=f"{{{rediq_namespace}:*}}:trail:*")]
        finally:
            await redis.aclose()
        assert found == []


async def test_set_progress_checks_its_arguments_and_where_it_is_called() -> None:
    with pytest.raises(ValueError, match=r"pass a number in \[0, 1\]"):
        await set_progress(1.5, "too far")
    with pytest.raises(TypeError, match="takes a number"):
        await set_progress("half", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="within 200"):
        await set_progress(0.5, "x" * 201)
    with pytest.raises(ContextUnavailableError, match="only available in a task function"):
        await set_progress(0.5, "outside")


@pytest.mark.parametrize(
    ("lines", "size"), [(-1, 65_536), (10, 100)], ids=["negative lines", "tiny byte cap"]
)
def test_bad_log_bounds_are_refused(lines: int, size: int) -> None:
    from rediq_core.errors import ConfigurationError
    from rediq_core.worker.config import WorkerConfig

    with pytest.raises(ConfigurationError, match="task_log_lines=.* task_log_bytes="):
        WorkerConfig(task_log_lines=lines, task_log_bytes=size)


EMBEDDED = """
import asyncio, logging
from rediq import Rediq
from rediq.testing import run_worker

app = Rediq(redis_url="memory://embedded")

@app.task
async def warn():
    logging.getLogger("app").warning("warning inside the task")

async def main():
    async with run_worker(app):
        await (await warn().enqueue()).result(timeout=10)
        logging.getLogger("app").warning("warning outside a task")

asyncio.run(main())
"""


def test_a_process_without_logging_setup_still_prints_warnings() -> None:
    """The capture handler on the root logger does not silence ``logging.lastResort``."""
    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "warning inside the task" in done.stderr
    assert "warning outside a task" in done.stderr


def _no_backoff() -> Any:
    from rediq_core.worker.backoff import Backoff

    return Backoff(base_ms=1, cap_ms=1, jitter=False)


_ = TaskHandle
