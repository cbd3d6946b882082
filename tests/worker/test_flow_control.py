"""Flow control end to end, with an in-process worker on Redis and on ``memory://``: the
task options users write (docs/flow-control.md) and what their handles show; bad options
fail at decoration or enqueue with a message that says what to do."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from rediq import (
    ConfigurationError,
    Rediq,
    TaskCancelledError,
    TaskExpiredError,
    TaskFailedError,
    TaskState,
)
from rediq.testing import run_worker, using_broker
from rediq_core.message import now_ms

pytestmark = pytest.mark.timeout(60)

app = Rediq(redis_url="redis://production.invalid:6379/0")
ran: list[str] = []
running: dict[str, int] = {}
most: dict[str, int] = {}
release = asyncio.Event()


@app.task(concurrency_limit=2, concurrency_key="tenant")
async def per_tenant(tenant: str, n: int) -> int:
    running[tenant] = running.get(tenant, 0) + 1
    most[tenant] = max(most.get(tenant, 0), running[tenant])
    await asyncio.sleep(0.02)  # the work: long enough for others to start beside it
    running[tenant] -= 1
    return n


@app.task(unique="until_done", unique_key="user")
async def rebuild(user: int, reason: str) -> str:
    await release.wait()
    ran.append(f"rebuild {user} {reason}")
    return reason


@app.task(debounce=timedelta(milliseconds=200), debounce_key="doc")
async def reindex(doc: int, version: int) -> int:
    ran.append(f"reindex {doc} v{version}")
    return version


@app.task(task_queue="idle")
async def never_served() -> None:
    ran.append("never")


@pytest.fixture(params=["redis", "memory"])
async def flow_app(request: pytest.FixtureRequest) -> AsyncIterator[Rediq]:
    global release
    ran.clear()
    running.clear()
    most.clear()
    release = asyncio.Event()  # of this test's event loop
    url = "memory://" if request.param == "memory" else request.getfixturevalue("rediq_redis_url")
    async with (
        using_broker(app, url, namespace=f"fc{uuid.uuid4().hex[:8]}"),
        run_worker(app, queues=("default",), task_concurrency=20),
    ):
        yield app


async def test_a_concurrency_limit_per_key_holds_on_a_busy_worker(flow_app: Rediq) -> None:
    handles = [await per_tenant(t, n).enqueue() for n in range(12) for t in ("a", "b")]
    assert [await h.result(timeout=20) for h in handles] == [n for n in range(12) for _ in "ab"]
    assert most == {"a": 2, "b": 2}  # 20 slots on the worker, 2 running per tenant


async def test_a_unique_call_follows_the_task_holding_its_key(flow_app: Rediq) -> None:
    first = await rebuild(7, "signup").enqueue()
    again = await rebuild(7, "login").enqueue()
    other = await rebuild(8, "login").enqueue()
    assert first.accepted and not again.accepted and other.accepted
    assert again.hex() == first.hex()  # the duplicate's handle is the first task's
    release.set()
    assert await again.result(timeout=10) == "signup"
    assert await other.result(timeout=10) == "login"
    later = await rebuild(7, "again").enqueue()  # the first one ended: stored
    assert later.accepted and await later.result(timeout=10) == "again"
    assert sorted(ran) == ["rebuild 7 again", "rebuild 7 signup", "rebuild 8 login"]


async def test_a_burst_of_debounced_calls_runs_the_last_one(flow_app: Rediq) -> None:
    handles = [await reindex(1, v).enqueue() for v in range(5)]
    assert await handles[-1].result(timeout=10) == 4
    for superseded in handles[:-1]:
        with pytest.raises(TaskCancelledError):
            await superseded.result(timeout=10)
    assert ran == ["reindex 1 v4"]


async def test_a_task_no_worker_started_in_time_expires(flow_app: Rediq) -> None:
    handle = await never_served().options(expires=0.1).enqueue()  # no worker serves "idle"
    record = await flow_app.control.task(handle.hex())
    assert record is not None and record.enqueued_at_ms is not None
    for _ in range(500):  # the expiry passes while nobody claims
        if now_ms() >= record.enqueued_at_ms + 150:
            break
        await asyncio.sleep(0.01)  # re-check interval of a bounded wait
    async with run_worker(flow_app, queues=("idle",)):
        # its first claim ends the task, which never runs
        with pytest.raises(TaskExpiredError, match="expiry") as expired:
            await handle.result(timeout=40)
    assert isinstance(expired.value, TaskFailedError) and ran == []
    assert await handle.state() is TaskState.EXPIRED


def test_bad_options_fail_at_decoration_with_what_to_write() -> None:
    async def task(user: int) -> None: ...

    cases = {
        "rate_limit='100/sec'": {"rate_limit": "100/sec"},
        "concurrency_limit=0": {"concurrency_limit": 0},
        "names no argument": {"concurrency_limit": 1, "concurrency_key": "tenant"},
        "needs a rate_limit": {"rate_limit_key": "user"},
        "unique='always'": {"unique": "always"},
        "debounce=-1": {"debounce": -1},
        "expires=0": {"expires": 0},
    }
    for expected, options in cases.items():
        with pytest.raises(ConfigurationError, match=expected.replace("(", r"\(")):
            app.task(task_name=f"bad-{uuid.uuid4().hex}", **options)(task)  # type: ignore[arg-type]
