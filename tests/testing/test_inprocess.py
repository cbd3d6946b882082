"""The documented pattern (docs/testing.md): an app's tasks run to completion in the
test's own process and event loop, on ``memory://``, with no Redis at all."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rediq import Rediq, Retry, RetryPolicy, TaskFailedError
from rediq.testing import run_worker, using_broker

pytestmark = pytest.mark.timeout(60)

# The module-level app of the code under test, configured for production.
app = Rediq(redis_url="redis://production.invalid:6379/0")
seen: list[int] = []


@app.task
async def add(a: int, b: int) -> int:
    return a + b


@app.task(retry=RetryPolicy(retries=2, backoff="fixed", base=0.01))
async def flaky(n: int) -> int:
    seen.append(n)
    if len(seen) < 3:
        raise Retry(delay=0.02) if len(seen) == 1 else ConnectionError("flaky")
    return n


@app.task(task_queue="slow")
async def slow() -> str:
    await asyncio.sleep(1.5)  # longer than the lease below: the keeper thread renews it
    return "done"


@pytest.fixture
async def memory_app() -> AsyncIterator[Rediq]:
    async with using_broker(app, "memory://", namespace=f"t{uuid.uuid4().hex[:8]}"):
        yield app


async def test_tasks_run_to_completion_in_process(memory_app: Rediq) -> None:
    async with run_worker(memory_app, queues=("default", "slow"), lease_ms=600, lease_renew_ms=200):
        handle = await add(1, 2).enqueue()
        assert await handle.result(timeout=5) == 3
        assert await (await flaky(8).enqueue()).result(timeout=5) == 8 and seen == [8, 8, 8]
        assert await (await memory_app.handle(handle.id)).result(timeout=1) == 3
        assert await (await slow().enqueue()).result(timeout=10) == "done"
    assert app.redis_url == "memory://"


async def test_failures_are_reported_as_with_redis(memory_app: Rediq) -> None:
    async with run_worker(memory_app):
        handle = await add(1, "x").enqueue()  # type: ignore[arg-type]
        with pytest.raises(TaskFailedError, match="TypeError"):
            await handle.result(timeout=5)


async def test_the_app_is_pointed_back_afterwards() -> None:
    async with using_broker(app, "memory://", namespace="elsewhere"):
        assert app.get_broker().url == "memory://"
    assert app.redis_url == "redis://production.invalid:6379/0"
    assert app.namespace == "rediq"


FIXTURE_USER = """
async def test_uses_a_fixture(rediq_namespace):
    assert rediq_namespace.startswith("t")
"""


@pytest.mark.parametrize("opt_in", [False, True])
def test_the_pytest_fixtures_are_opt_in(tmp_path: Path, opt_in: bool) -> None:
    (tmp_path / "test_user.py").write_text(FIXTURE_USER)
    options = ["-p", "rediq.testing"] if opt_in else []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            *options,
            "test_user.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if opt_in:
        assert done.returncode == 0, done.stdout
    else:
        assert done.returncode != 0 and "fixture 'rediq_namespace' not found" in done.stdout
