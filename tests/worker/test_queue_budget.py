"""One budget of task slots shared by every queue a worker consumes.

``--worker-task-concurrency`` is the number of tasks running at once, whatever queue they
come from: no runner idles while a consumed queue has due work. Across queues the order
is fair (they take turns) by default; strict (as listed) and weighted are opt-ins.
In-process workers against a real redis-server; every wait is on a condition, bounded.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shlex
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from rediq_core.app import Rediq
from rediq_core.errors import ConfigurationError
from rediq_core.handle import TaskHandle
from rediq_core.testing import run_worker
from rediq_core.worker import QueueOrder, WorkerConfig
from rediq_core.worker.budget import Budget
from rediq_core.worker.config import parse_queue_names, unconsumed_queues

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

WAIT_S = 20.0


def _app(url: str, namespace: str) -> Rediq:
    return Rediq(redis_url=url, namespace=namespace)


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


async def _results(handles: list[TaskHandle[None]]) -> None:
    for handle in handles:
        await handle.result(timeout=WAIT_S)


@pytest.mark.parametrize("queues", [("reports", "emails"), ("reports", "emails", "audit")])
@pytest.mark.parametrize("enqueued", ["before the start", "while idle"])
async def test_one_busy_queue_gets_the_whole_budget(
    rediq_redis_url: str, rediq_namespace: str, queues: tuple[str, ...], enqueued: str
) -> None:
    app = _app(rediq_redis_url, rediq_namespace)
    concurrency = 6
    running = 0
    all_running = asyncio.Event()

    @app.task(task_queue="reports")
    async def report() -> None:
        nonlocal running
        running += 1
        if running == concurrency:
            all_running.set()
        await all_running.wait()  # ends only once all of them run at the same time

    handles = []
    if enqueued == "before the start":
        handles = [await report().enqueue() for _ in range(concurrency)]
    async with run_worker(
        app, queues=queues, skip_default_queue=True, task_concurrency=concurrency
    ):
        if enqueued == "while idle":
            handles = [await report().enqueue() for _ in range(concurrency)]
        try:
            await asyncio.wait_for(all_running.wait(), WAIT_S)
        except TimeoutError:
            all_running.set()  # let them end
            pytest.fail(
                f"{running} of {concurrency} tasks on 'reports' ran at once, with"
                f" --worker-task-concurrency {concurrency} over queues {', '.join(queues)}"
                " (the other queues are empty)"
            )
        await _results(handles)
    await app.close()


async def _run_order(
    app: Rediq, tasks: dict[str, int], *, concurrency: int = 1, **config: object
) -> list[str]:
    """Enqueue ``tasks[queue]`` tasks on each queue, then run a worker over the queues (in
    the dict's order) until all ended; return the queues in the order the tasks started."""
    order: list[str] = []

    @app.task
    async def job(queue: str) -> None:
        order.append(queue)
        await asyncio.sleep(0)

    handles = [
        await job(queue).options(queue=queue).enqueue()
        for queue, count in tasks.items()
        for _ in range(count)
    ]
    async with run_worker(
        app,
        queues=tuple(tasks),
        skip_default_queue=True,
        task_concurrency=concurrency,
        **config,
    ):
        await _results(handles)
    await app.close()
    return order


@pytest.mark.parametrize("queues", [("a", "b"), ("a", "b", "c")])
async def test_fair_order_takes_turns(
    rediq_redis_url: str, rediq_namespace: str, queues: tuple[str, ...]
) -> None:
    app = _app(rediq_redis_url, rediq_namespace)
    order = await _run_order(app, dict.fromkeys(queues, 3))
    assert order == list(queues) * 3, f"the queues did not take turns: {order}"


@pytest.mark.parametrize("queues", [("a", "b"), ("c", "b", "a")])
async def test_strict_order_serves_the_first_listed_queue_first(
    rediq_redis_url: str, rediq_namespace: str, queues: tuple[str, ...]
) -> None:
    app = _app(rediq_redis_url, rediq_namespace)
    order = await _run_order(app, dict.fromkeys(queues, 3), queue_order="strict")
    assert order == [q for q in queues for _ in range(3)], f"not in listed order: {order}"


async def test_weights_share_the_budget_in_proportion(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    app = _app(rediq_redis_url, rediq_namespace)
    order = await _run_order(
        app, {"critical": 8, "bulk": 8}, queue_weights={"critical": 3, "bulk": 1}
    )
    first = Counter(order[:8])
    assert first == {"critical": 6, "bulk": 2}, f"weights 3:1, first 8 runs: {order[:8]}"
    assert "bulk" in order[:4], f"the lighter queue waited too long: {order[:8]}"


async def test_a_slow_queue_does_not_starve_a_fast_one(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    """Slow tasks end only when the test lets one go, once both runners hold one; every
    slot they free is shared fairly, so the fast queue's tasks all end while the slow
    queue still has tasks waiting."""
    app = _app(rediq_redis_url, rediq_namespace)
    slow_count, fast_count, concurrency = 8, 3, 2
    slow_started: list[asyncio.Event] = []
    finish = asyncio.Event()
    fast_done = 0

    @app.task(task_queue="slow")
    async def slow() -> None:
        gate = asyncio.Event()
        slow_started.append(gate)
        if not finish.is_set():
            await gate.wait()

    @app.task(task_queue="fast")
    async def fast() -> None:
        nonlocal fast_done
        fast_done += 1

    slow_handles = [await slow().enqueue() for _ in range(slow_count)]
    fast_handles = [await fast().enqueue() for _ in range(fast_count)]
    async with run_worker(
        app, queues=("slow", "fast"), skip_default_queue=True, task_concurrency=concurrency
    ):
        released = 0

        def runners_full_or_fast_done() -> bool:
            return len(slow_started) - released == concurrency or fast_done == fast_count

        while fast_done < fast_count:
            await _until(
                runners_full_or_fast_done,
                f"slow tasks fill the runners or the fast ones end ({fast_done} ended,"
                f" {len(slow_started)} slow ones started, {released} let go)",
            )
            if fast_done < fast_count:
                slow_started[released].set()
                released += 1
        started = len(slow_started)
        finish.set()
        for gate in slow_started:
            gate.set()
        await _results([*slow_handles, *fast_handles])
    assert started < slow_count, (
        f"the fast queue's {fast_count} tasks ended only after {started} of {slow_count}"
        " slow tasks had started"
    )
    await app.close()


async def test_a_worker_warns_about_task_queues_it_does_not_consume(
    rediq_redis_url: str, rediq_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(rediq_redis_url, rediq_namespace)

    @app.task
    async def ping() -> None: ...

    @app.task(task_name="build_report", task_queue="reports")
    async def build_report() -> None: ...

    @app.task(task_name="mail_report", task_queue="reports")
    async def mail_report() -> None: ...

    @app.cron("0 3 * * *")
    @app.task(task_name="cleanup", task_queue="nightly")
    async def cleanup() -> None: ...

    with caplog.at_level(logging.WARNING, logger="rediq.worker"):
        async with run_worker(app):
            pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        "tasks build_report, mail_report go to queue 'reports', which this worker does not"
        " consume (add --queue-name reports)" in warnings
    ), warnings
    assert (
        "task cleanup goes to queue 'nightly', which this worker does not consume"
        " (add --queue-name nightly)" in warnings
    ), warnings
    assert not [w for w in warnings if "'default'" in w], warnings
    await app.close()


async def test_default_worker_names_are_unique_and_name_host_and_pid(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    app = _app(rediq_redis_url, rediq_namespace)
    host_pid = f"@{socket.gethostname()}:{os.getpid()}"
    async with run_worker(app) as first, run_worker(app) as second:
        names = {w.name: w.id for w in await app.control.workers()}
    assert first.name != second.name, "two workers got the same default name"
    assert set(names) == {first.name, second.name}, names
    for name, worker_id in names.items():
        assert name.startswith("worker") and name.endswith(host_pid), name
        assert worker_id.startswith(name) and worker_id.count("@") == 1, worker_id
    async with run_worker(app, worker_name="mail") as named:
        assert named.name == "mail"
    await app.close()


def test_queue_names_take_an_optional_weight() -> None:
    assert parse_queue_names(["critical:3", "bulk", "shard:2:1"]) == (
        ("critical", "bulk", "shard:2"),
        {"critical": 3, "shard:2": 1},
    )
    weighted = WorkerConfig(queues=("critical", "bulk"), queue_weights={"critical": 3})
    assert weighted.resolved_queue_order is QueueOrder.WEIGHTED
    assert weighted.describe_queues(("critical", "bulk")) == "critical:3, bulk:1 (weighted order)"
    assert WorkerConfig().resolved_queue_order is QueueOrder.FAIR
    with pytest.raises(ConfigurationError, match="apply to the weighted order"):
        WorkerConfig(queues=("a",), queue_weights={"a": 2}, queue_order="strict")
    with pytest.raises(ConfigurationError, match="not among the queues"):
        WorkerConfig(queues=("a",), queue_weights={"b": 2})
    with pytest.raises(ConfigurationError, match="whole number >= 1"):
        WorkerConfig(queues=("a",), queue_weights={"a": 0})
    with pytest.raises(ConfigurationError, match="expected one of fair, strict, weighted"):
        WorkerConfig(queue_order="random")


async def test_the_command_line_takes_weights_and_an_order(harness: Harness) -> None:
    harness.write_app("@app.task\nasync def noop():\n    pass\n")
    worker = harness.start(
        "--queue-name", "critical:3", "--queue-name", "bulk", "--skip-default-queue"
    )
    worker.wait_for(r"ready: consuming critical:3, bulk:1 \(weighted order\)")
    refused = harness.start("--queue-name", "critical:3", "--queue-order", "strict", ready=False)
    assert refused.wait_exit() == 2
    assert "queue weights apply to the weighted order" in refused.output, refused.output


def test_the_fastapi_example_starts_a_worker_on_its_task_queue() -> None:
    """The worker command in examples/fastapi_service.py's docstring consumes every queue
    its tasks go to (else the request waits forever)."""
    pytest.importorskip("fastapi")
    path = Path(__file__).resolve().parents[2] / "examples" / "fastapi_service.py"
    spec = importlib.util.spec_from_file_location("fastapi_service_docstring", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    [command] = [
        shlex.split(line) for line in (example.__doc__ or "").splitlines() if "rediq worker" in line
    ]
    names = [command[i + 1] for i, arg in enumerate(command) if arg == "--queue-name"]
    queues, weights = parse_queue_names(names)
    config = WorkerConfig(
        queues=queues, queue_weights=weights, skip_default_queue="--skip-default-queue" in command
    )
    consumed = config.resolved_queues(example.app.default_options.queue)
    assert unconsumed_queues(example.app, consumed) == {}, " ".join(command)


async def test_the_budget_grants_free_slots_by_the_order_and_takes_unused_ones_back() -> None:
    budget = Budget(4, ("a", "b"))
    assert await budget.acquire("a") == 4, "the only waiting queue gets every free slot"
    budget.settle("a", 1)  # its claim found one task: three slots are free again at once
    assert budget.free == 3 and budget.held == 1
    both = [asyncio.ensure_future(budget.acquire(q)) for q in "ab"]
    await asyncio.sleep(0)
    assert budget.spare == 0, "free slots someone waits for are not spare"
    granted = await asyncio.wait_for(asyncio.gather(*both), WAIT_S)
    assert granted == [2, 1], "fair: one slot each in turn"
    budget.settle("a", 0)
    budget.settle("b", 1)
    assert budget.admit(5) == 2, "a fetch that waited for work keeps what still fits"
    assert budget.free == 0
    waiting = asyncio.ensure_future(budget.acquire("b"))
    budget.give()
    assert await asyncio.wait_for(waiting, WAIT_S) == 1
    cancelled = asyncio.ensure_future(budget.acquire("a"))
    await asyncio.sleep(0)
    cancelled.cancel()
    budget.settle("b", 0)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert budget.free == 1, "a cancelled wait holds no slot"


@pytest.mark.parametrize(
    ("order", "weights", "expected"),
    [
        (QueueOrder.FAIR, {}, "abcabcabc"),
        (QueueOrder.STRICT, {}, "aaaaaaaaa"),
        (QueueOrder.WEIGHTED, {"a": 3, "c": 2}, "acabcaaca"),
    ],
)
async def test_slots_freed_one_at_a_time_go_by_the_order(
    order: QueueOrder, weights: dict[str, int], expected: str
) -> None:
    budget = Budget(1, ("a", "b", "c"), order, weights)
    budget.held = 1
    granted: list[str] = []
    for _ in expected:
        waiters = {q: asyncio.ensure_future(budget.acquire(q)) for q in "abc"}
        await asyncio.sleep(0)
        budget.give()
        done, pending = await asyncio.wait(
            waiters.values(), timeout=WAIT_S, return_when="FIRST_COMPLETED"
        )
        [queue] = [q for q, w in waiters.items() if w in done]
        granted.append(queue)
        budget.settle(queue, 1)
        for waiter in pending:
            waiter.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    assert "".join(granted) == expected


async def test_the_shards_of_a_queue_claim_in_turn_with_every_free_slot() -> None:
    """A sharded queue's shards take turns, and one claim of a shard at a time gets every
    slot that is free: claims as large as an unsharded queue's (so as few script calls
    per task), not the free slots scattered over every shard's fetcher."""
    shards = ("q#0of3", "q#1of3", "q#2of3")
    budget = Budget(9, (*shards, "other"), groups={s: "q" for s in shards})
    waiting = {q: asyncio.ensure_future(budget.acquire(q)) for q in (*shards, "other")}
    for _ in range(5):  # the acquires run, the grant runs, the granted ones resume
        await asyncio.sleep(0)
    done = {q for q, w in waiting.items() if w.done()}
    assert done == {"q#0of3", "other"}, "one shard's claim at a time"
    assert (waiting["q#0of3"].result(), waiting["other"].result()) == (5, 4)
    budget.settle("other", 4)
    budget.settle("q#0of3", 2)  # it found two tasks: three slots are free again
    next_shard = await asyncio.wait_for(waiting["q#1of3"], WAIT_S)
    assert next_shard == 3 and not waiting["q#2of3"].done(), "the next shard, in turn"
    budget.settle("q#1of3", 3)
    budget.give()
    assert await asyncio.wait_for(waiting["q#2of3"], WAIT_S) == 1
