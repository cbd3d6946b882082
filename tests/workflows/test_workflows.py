"""Workflows run end to end on Redis, on a Redis Cluster and on ``memory://`` with an
in-process worker:
results flow from step to step, groups keep their order, a chord's callback gets the list, nesting and mixed
queues work, and a failed or cancelled step stops everything after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from rediq import Rediq, TaskCancelledError, TaskExpiredError, TaskNotFoundError, TaskState
from rediq.testing import run_worker, using_broker
from rediq_core.canvas import chain, chord, group
from rediq_core.errors import WorkflowFailed

pytestmark = pytest.mark.timeout(60)

app = Rediq(redis_url="redis://production.invalid:6379/0")
ran: list[str] = []
started = asyncio.Event()


@app.task
async def fetch(url: str) -> str:
    ran.append(f"fetch {url}")
    return f"<{url}>"


@app.task(task_queue="cpu")
async def parse(text: str) -> int:
    ran.append(f"parse {text}")
    return len(text)


@app.task
async def store(value: int, table: str = "t") -> str:
    ran.append(f"store {value}")
    return f"{table}:{value}"


@app.task
async def square(i: int) -> int:
    return i * i


@app.task(task_queue="cpu")
async def total(values: list[int]) -> int:
    return sum(values)


@app.task(task_retries=1)
async def broken(x: int) -> int:
    ran.append("broken")
    raise ValueError(f"bad input {x}")


@app.task(task_retries=3)
async def late(x: int) -> int:
    ran.append("late")
    await asyncio.sleep(0.3)  # the work outlasts the step's deadline (0.1 s)
    raise ValueError("too late")


@app.task
async def blocked() -> int:
    ran.append("blocked")
    started.set()
    await asyncio.Event().wait()  # until cancelled
    return 0


@pytest.fixture(params=["redis", "memory", "cluster"])
async def wf_app(request: pytest.FixtureRequest) -> AsyncIterator[Rediq]:
    """On one Redis, on memory://, and on a Redis Cluster, where the two queues' keys are
    in different slots: every effect of one queue's step on the other's goes through the
    outbox."""
    global started
    ran.clear()
    started = asyncio.Event()  # of this test's event loop
    if request.param == "cluster":
        url = request.getfixturevalue("rediq_redis_cluster").url()
    elif request.param == "memory":
        url = "memory://"
    else:
        url = request.getfixturevalue("rediq_redis_url")
    async with (
        using_broker(app, url, namespace=f"wf{uuid.uuid4().hex[:8]}"),
        run_worker(app, queues=("default", "cpu")),
    ):
        yield app


async def test_a_chain_passes_each_result_on(wf_app: Rediq) -> None:
    handle = await chain(fetch("a.example"), parse.s(), store.s(table="pages")).enqueue()
    assert await handle.result(timeout=10) == "pages:11"
    assert ran == ["fetch a.example", "parse <a.example>", "store 11"]
    states = [s.state for s in await handle.status()]
    assert states == [TaskState.SUCCEEDED] * 3
    again = await wf_app.workflow(handle.id)  # found by its id alone
    assert await again.result(timeout=1) == "pages:11"


async def test_a_group_keeps_the_order_given_and_a_chord_gets_the_list(wf_app: Rediq) -> None:
    assert await (await group(square(i) for i in range(10)).enqueue()).result(timeout=10) == [
        i * i for i in range(10)
    ]
    handle = await chord(group(square(i) for i in range(200)), total.s()).enqueue()
    assert await handle.result(timeout=30) == sum(i * i for i in range(200))


async def test_nesting_and_mixed_queues(wf_app: Rediq) -> None:
    workflow = chain(
        fetch("x"),
        chord(group(parse.s(), parse.s()), total.s()),
        store.s(),
    )
    assert await (await workflow.enqueue()).result(timeout=10) == "t:6"
    chains = group(chain(fetch(u), parse.s()) for u in ("a", "bb", "ccc"))
    assert await (await chains.enqueue()).result(timeout=10) == [3, 4, 5]


async def test_a_failed_step_fails_the_workflow_and_nothing_after_it_runs(wf_app: Rediq) -> None:
    handle = await chain(fetch("u"), broken.s(), parse.s(), store.s()).enqueue()
    with pytest.raises(WorkflowFailed) as failed:
        await handle.result(timeout=10)
    assert failed.value.step == 1 and failed.value.task_name.endswith("broken")
    assert failed.value.state == "failed"
    assert failed.value.error is not None and "bad input <u>" in failed.value.error.message
    assert "step 1" in str(failed.value) and "bad input" in str(failed.value)
    assert ran == ["fetch u", "broken", "broken"]  # retried once, then dead-lettered
    states = [s.state for s in await handle.status()]
    assert states == [
        TaskState.SUCCEEDED,
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.CANCELLED,
    ]
    chord_handle = await chord([square(1), broken(2), square(3)], total.s()).enqueue()
    with pytest.raises(WorkflowFailed, match=r"step 1 .*broken.* failed"):
        await chord_handle.result(timeout=10)
    assert (await chord_handle.status())[3].state is TaskState.CANCELLED  # never ran


async def test_an_expired_step_fails_the_workflow_and_its_deadline_carries_on(
    wf_app: Rediq,
) -> None:
    handle = await chain(late(1).options(deadline=0.1), square.s(), store.s()).enqueue()
    # the deadline passed while the first attempt ran: its retry is refused and it expires;
    # the next step carried its deadline (tests/core/test_canvas.py), so it expires too
    # unless the first one's end reached it first (then it is cut short, cancelled)
    with pytest.raises(WorkflowFailed, match=r"step [01] \(.*(late|square)\) expired") as failed:
        await handle.result(timeout=10)
    assert failed.value.error is not None and failed.value.error.type == "rediq.TaskExpired"
    first = (await handle.status())[0]
    with pytest.raises(TaskExpiredError, match="deadline passed"):
        await (await wf_app.handle(first.id)).result(timeout=10)
    assert ran == ["late"]
    steps = await handle.status()
    assert steps[0].state is TaskState.EXPIRED
    assert steps[1].state in (TaskState.EXPIRED, TaskState.CANCELLED)
    assert steps[2].state is TaskState.CANCELLED


async def test_cancelling_stops_running_and_waiting_steps(wf_app: Rediq) -> None:
    handle = await chain(blocked(), parse.s(), store.s()).enqueue()
    await asyncio.wait_for(started.wait(), 10)
    await handle.cancel()  # two waiting steps at once, the running one through its worker
    # the steps are cancelled concurrently: the one the result waits for names itself, or
    # the step before it whose cancellation ended it
    with pytest.raises(WorkflowFailed, match=r"step [12] \((.*parse|.*store)\) cancelled"):
        await handle.result(timeout=10)
    first = (await handle.status())[0]
    with pytest.raises(TaskCancelledError):  # the running step ends as its worker cancels it
        await (await wf_app.handle(first.id)).result(timeout=10)
    states = [s.state for s in await handle.status()]
    assert states == [TaskState.CANCELLED] * 3
    assert "parse" not in " ".join(ran)


async def test_unknown_workflows_and_partial_steps_are_refused(wf_app: Rediq) -> None:
    with pytest.raises(TaskNotFoundError, match="no workflow"):
        await wf_app.workflow("0" * 32)


async def test_many_callbacks_start_at_once(wf_app: Rediq) -> None:
    """150 chord callbacks become ready together and each reads its members' results
    before it starts: in one lookup each, not one connection per member."""
    handles = [
        await chord(group(square(i) for i in range(n, n + 5)), total.s()).enqueue()
        for n in range(150)
    ]
    results = [await h.result(timeout=60) for h in handles]
    assert results == [sum(i * i for i in range(n, n + 5)) for n in range(150)]
