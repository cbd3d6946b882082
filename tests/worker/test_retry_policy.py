"""Retry policies through a real worker: retries per exception type, ``Retry(delay=)``,
per-call policies carried in the message, and backoff delays within their jitter bounds."""

from __future__ import annotations

import itertools

import pytest

from rediq import RetryPolicy
from rediq_core.errors import TaskFailedError

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

APP = """
class Transient(Exception): ...
class Fatal(Transient): ...

def attempt(tag):
    out("RUN", tag, current_task_info().task_id, current_task_retried(), f"{time.time():.4f}")

@app.task(retry=RetryPolicy(retries=3, retry_on=(Transient, TimeoutError),
                            dont_retry_on=(Fatal,), backoff="fixed", base=0.01))
async def typed(*errors):
    n = current_task_retried()
    attempt("typed")
    if n < len(errors):
        raise {"transient": Transient, "fatal": Fatal, "value": ValueError,
               "timeout": TimeoutError}[errors[n]](f"attempt {n}")
    return n

@app.task(task_retries=2)
async def asks(delay):
    attempt("asks")
    if current_task_retried() == 0:
        raise Retry(delay=delay)
    return current_task_retried()

@app.task(task_retries=1)
async def always_asks():
    attempt("always")
    raise Retry(delay=0.01, reason="not yet")

@app.task(retry=RetryPolicy(retries=4, backoff="fixed", base=0.4, jitter=0.5))
async def jittery():
    attempt("jittery")
    if current_task_retried() < 4:
        raise Transient("again")
    return "done"

@app.task(task_retries=5)
async def plain(kind):
    attempt("plain")
    if current_task_retried() < 2:
        raise {"key": KeyError, "value": ValueError}[kind]("boom")
    return current_task_retried()
"""


def times(harness: Harness, tag: str, task_id: str, expected: int) -> list[float]:
    """Start times of the task's attempts, once ``expected`` of them were read from the
    worker's output (the result can arrive before the reader thread saw every line)."""
    lines = harness.workers[0].wait_for(rf"^RUN {tag} {task_id} ", count=expected, timeout=10)
    return [float(line.split()[4]) for line in lines]


async def test_retries_follow_the_exception_type(harness: Harness) -> None:
    m = harness.write_app(APP)
    harness.start()
    ok = await m.typed("transient", "timeout", "transient").enqueue()
    assert await ok.result(timeout=20) == 3
    stopped = await m.typed("transient", "fatal", "transient").enqueue()
    with pytest.raises(TaskFailedError, match="Fatal") as failed:
        await stopped.result(timeout=20)
    assert "attempt 1" in str(failed.value)
    unlisted = await m.typed("value").enqueue()
    with pytest.raises(TaskFailedError, match="ValueError"):
        await unlisted.result(timeout=20)
    assert len(times(harness, "typed", stopped.id, 2)) == 2
    assert len(times(harness, "typed", unlisted.id, 1)) == 1


async def test_retry_with_a_delay_waits_that_long(harness: Harness) -> None:
    m = harness.write_app(APP)
    harness.start()
    handle = await m.asks(0.8).enqueue()
    assert await handle.result(timeout=20) == 1
    first, second = times(harness, "asks", handle.id, 2)
    assert second - first >= 0.75, second - first  # not before the delay it asked for
    harness.workers[0].wait_for(r"retrying in 800 ms")

    exhausted = await m.always_asks().enqueue()
    with pytest.raises(TaskFailedError, match="Retry.*not yet"):
        await exhausted.result(timeout=20)
    assert len(times(harness, "always", exhausted.id, 2)) == 2


async def test_jittered_delays_stay_in_bounds(harness: Harness) -> None:
    m = harness.write_app(APP)
    harness.start()
    handle = await m.jittery().enqueue()
    assert await handle.result(timeout=30) == "done"
    stamps = times(harness, "jittery", handle.id, 5)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(gaps) == 4
    assert all(gap >= 0.19 for gap in gaps), gaps  # not before the delay drawn from [0.2, 0.4] s
    delays = [
        int(line.split("retrying in ")[1].split()[0])
        for line in harness.workers[0].matching(r"retrying in \d+ ms")
    ]
    assert len(delays) == 4 and all(200 <= d <= 400 for d in delays), delays


async def test_a_call_carries_its_own_policy(harness: Harness) -> None:
    m = harness.write_app(APP)
    harness.start()
    refused = await m.plain("key").options(retry=RetryPolicy(dont_retry_on=(KeyError,))).enqueue()
    with pytest.raises(TaskFailedError, match="KeyError"):
        await refused.result(timeout=20)
    assert len(times(harness, "plain", refused.id, 1)) == 1
    by_name = (
        await m.plain("value")
        .options(retry=RetryPolicy(retries=1, retry_on=("builtins.LookupError",)))
        .enqueue()
    )
    with pytest.raises(TaskFailedError, match="ValueError"):
        await by_name.result(timeout=20)
    allowed = (
        await m.plain("key")
        .options(retry=RetryPolicy(retry_on=("builtins.LookupError",), backoff="fixed", base=0))
        .enqueue()
    )
    assert await allowed.result(timeout=20) == 2  # KeyError is a LookupError
    assert await (await m.plain("value").enqueue()).result(timeout=20) == 2  # unchanged
