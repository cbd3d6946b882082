"""The context accessors: available only where the seed's table says, with clear errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rediq import (
    ContextUnavailableError,
    TaskInfo,
    current_task_exception,
    current_task_groups,
    current_task_info,
    current_task_result,
    current_task_retried,
    run_in_current_executor,
)
from rediq_core.context import using

INFO = TaskInfo(
    task_id="abc",
    task_name="t",
    task_queue="q",
    task_priority=0,
    task_retries=2,
    task_timeout=None,
    groups=("g",),
    retried=1,
)


@pytest.mark.parametrize(
    ("accessor", "where"),
    [
        (current_task_info, "in a task function"),
        (current_task_groups, "in a task function"),
        (current_task_retried, "in a task function"),
        (current_task_result, "in after_task_success handlers"),
        (current_task_exception, "in after_task_failure handlers"),
    ],
)
def test_accessors_outside_context_raise(accessor: Callable[[], Any], where: str) -> None:
    with pytest.raises(
        ContextUnavailableError, match=f"{accessor.__name__}\\(\\) is only available {where}"
    ):
        accessor()


async def test_run_in_current_executor_outside_worker() -> None:
    with pytest.raises(ContextUnavailableError, match="inside a rediq worker"):
        await run_in_current_executor(lambda: 1)


async def test_values_inside_and_reset_after() -> None:
    with using(task=INFO, result=None):
        assert current_task_info() is INFO
        assert current_task_groups() == ("g",) and current_task_retried() == 1
        assert current_task_result() is None  # None is a real result, not "missing"
        with pytest.raises(ContextUnavailableError):
            current_task_exception()
    with pytest.raises(ContextUnavailableError):
        current_task_info()


async def test_thread_executor_copies_context() -> None:
    with ThreadPoolExecutor(2) as pool, using(executor=pool, task=INFO):
        seen = await run_in_current_executor(lambda: current_task_info().task_id)
    assert seen == "abc"


async def test_concurrent_tasks_see_their_own_context() -> None:
    async def run(task_id: str) -> str:
        info = TaskInfo(
            task_id=task_id,
            task_name="t",
            task_queue="q",
            task_priority=0,
            task_retries=0,
            task_timeout=None,
        )
        with using(task=info):
            await asyncio.sleep(0)
            return current_task_info().task_id

    assert await asyncio.gather(*(run(str(i)) for i in range(20))) == [str(i) for i in range(20)]
