"""Checked by mypy in tests/typing/test_types.py, never imported by pytest.

Every line that must fail type checking ends with ``# expect: <mypy error code>``;
the test compares mypy's errors with these marks, both ways.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, assert_type

from rediq import QueueFlow, QueueLimits, Rediq, TaskHandle, WorkflowHandle, chain, chord, group
from rediq_core import TaskCall

app = Rediq(redis_url="redis://localhost:6379/0")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task(task_name="greet", task_queue="mail", task_retries=2)
async def greet(name: str, *, polite: bool = False) -> str:
    return f"hello {name}"


@app.task
async def nothing() -> None:
    return None


@app.task
async def total(values: list[int]) -> int:
    return sum(values)


@app.task(rate_limit="10/m", rate_limit_key="tenant", concurrency_limit=2, fair_key="tenant")
async def limited(n: int, tenant: str) -> None:
    pass


async def main() -> None:
    call = add(1, 2)
    assert_type(call, TaskCall[int])
    assert_type(call.groups("g").options(priority=1, delay=dt.timedelta(seconds=1)), TaskCall[int])
    handle = await call.enqueue()
    assert_type(handle, TaskHandle[int])
    assert_type(await handle.result(), int)
    assert_type(await handle.result(timeout=dt.timedelta(seconds=5)), int)
    assert_type(await (await greet("ann", polite=True).enqueue()).result(), str)
    assert_type(await (await nothing().enqueue()).result(), None)
    by_id = await app.handle(handle.hex())
    assert_type(by_id, TaskHandle[Any])
    assert_type(await add.fn(1, 2), int)
    handles = await app.enqueue_many([add(1, 2), add(3, 4)])
    assert_type(handles, list[TaskHandle[int]])

    # workflows: a handle's type follows the last step
    flow = await chain(add(1, 2), add.s(3), greet.s()).enqueue()
    assert_type(flow, WorkflowHandle[str])
    assert_type(await flow.result(timeout=5), str)
    fan = await group(add(i, i) for i in range(3)).enqueue()
    assert_type(await fan.result(), list[int])
    joined = await chord(group(add(i, i) for i in range(3)), total.s()).enqueue()
    assert_type(await joined.result(), int)
    assert_type(await app.workflow(flow.id), WorkflowHandle[Any])
    chain(add(1, 2), 42)  # expect: call-overload

    # flow control: task options, per call, and the queue's own limits
    assert_type(await limited(1, "acme").options(concurrency_limit=3).enqueue(), TaskHandle[None])
    [emails] = await app.control.limits("emails")
    assert_type(emails, QueueFlow)
    assert_type(await app.control.set_limits("emails", concurrency=5, rate="10/s"), QueueLimits)
    await app.control.set_limits("emails", concurrency="five")  # expect: arg-type
    await (
        limited(2, "acme").options(unique="until_done", debounce=dt.timedelta(seconds=2)).enqueue()
    )
    await limited(2, "acme").options(unique="sometimes").enqueue()  # expect: arg-type

    add("1", 2)  # expect: arg-type
    add(1)  # expect: call-arg
    greet("ann", rude=True)  # expect: call-arg
    text: str = await handle.result()  # expect: assignment
    await add(1, 2).options(priority="high").enqueue()  # expect: arg-type
    print(text)


def sync_view() -> None:
    """The blocking twins are typed like the async API (docs/sync.md)."""
    handle = add(1, 2).options(priority=1).enqueue_sync()
    assert_type(handle, TaskHandle[int])
    assert_type(handle.result_sync(timeout=5), int)
    assert_type(app.handle_sync(handle.id), TaskHandle[Any])
    assert_type(app.result_sync(handle.id, timeout=5), Any)
    assert_type(app.enqueue_many_sync([add(1, 2), add(3, 4)]), list[TaskHandle[int]])
    flow = chain(add(1, 2), add.s(3), greet.s()).enqueue_sync()
    assert_type(flow.result_sync(timeout=5), str)
    assert_type(app.workflow_sync(flow.id), WorkflowHandle[Any])
    text: str = handle.result_sync()  # expect: assignment
    print(text)
