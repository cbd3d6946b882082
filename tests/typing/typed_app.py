"""Checked by mypy in tests/typing/test_types.py, never imported by pytest.

Every line that must fail type checking ends with ``# expect: <mypy error code>``;
the test compares mypy's errors with these marks, both ways.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, assert_type

from rediq import Rediq, TaskHandle
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

    add("1", 2)  # expect: arg-type
    add(1)  # expect: call-arg
    greet("ann", rude=True)  # expect: call-arg
    text: str = await handle.result()  # expect: assignment
    await add(1, 2).options(priority="high").enqueue()  # expect: arg-type
    print(text)
