"""What every role's contract class shares: the test data, bounded waits and the base class.

The suite asserts order and conditions, never a wall-clock window, so a slow or loaded
machine cannot fail it for the wrong reason: "not before its due time" is checked on the
broker's own clock (when a lease began, :attr:`TaskRecord.started_at_ms`), "woken at
once" as a fetch that returns while the next deadline it knows of is a minute away, and
every wait is bounded (a broker that needs longer is broken). Latencies are measured by
``benchmarks/run.py`` (pickup latency, delayed-task lateness), not here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Protocol

import pytest

from rediq_core import defaults
from rediq_core.message import TaskMessage, new_task_id
from rediq_core.records import (
    CancelOutcome,
    Delivery,
    FetchBatch,
    Lease,
    Settlement,
    TaskError,
    TaskRecord,
)
from rediq_core.roles import Consumer, Control, Producer, Registry, Results, Role

__all__ = [
    "FAR_MS",
    "LEASE_MS",
    "QUEUE",
    "WAIT_S",
    "WAKE_WAIT_S",
    "WORKER",
    "CoreBroker",
    "Record",
    "RoleContract",
    "announce",
    "broker_now",
    "claim_beside_sentinel",
    "enqueue_one",
    "failure",
    "fetch",
    "fetch_nothing",
    "fetch_one",
    "finished_while_fetching",
    "lease",
    "make_message",
    "started_at",
    "success",
    "until_announced",
]


class CoreBroker(Producer, Consumer, Results, Control, Registry, Protocol):
    """A broker with the core roles: what most contract tests need to set a case up."""


QUEUE = "contract"
WORKER = "worker-1"
LEASE_MS = 10_000
#: Upper bound of every wait in this suite; a broker that needs longer is broken.
WAIT_S = 5.0
#: Bound of a wait that a wake-up must end, far below FAR_MS: a fetch or a wait that ends
#: within it was woken, it did not sleep out its deadline.
WAKE_WAIT_S = 20.0
#: A deadline far enough away that nothing in a test reaches it.
FAR_MS = 60_000

Record = Callable[[str, object], None]


def make_message(queue: str = QUEUE, **overrides: object) -> TaskMessage:
    """A valid message with a fresh id; any field may be overridden."""
    fields: dict[str, object] = {
        "id": new_task_id(),
        "name": "contract.task",
        "queue": queue,
        "payload": b"\x00payload\xff",
        "serializer": "json",
        "priority": 0,
        "max_retries": 0,
        "timeout_ms": None,
        "result_ttl_s": 60,
    }
    fields.update(overrides)
    return TaskMessage(**fields)  # type: ignore[arg-type]


async def fetch(
    broker: Consumer,
    *,
    limit: int = 100,
    lease_ms: int = LEASE_MS,
    worker_id: str = WORKER,
    queue: str = QUEUE,
    wait: bool = True,
) -> FetchBatch:
    """A fetch that must return within WAIT_S."""
    return await asyncio.wait_for(
        broker.fetch(queue, worker_id=worker_id, limit=limit, lease_ms=lease_ms, wait=wait),
        WAIT_S,
    )


async def fetch_nothing(broker: Consumer, within_s: float = 0.3, **kwargs: object) -> None:
    """Assert that a fetch stays blocked for ``within_s`` (and cancel it: loses nothing).

    Nothing may be ready: a slower machine can only make this pass, never fail."""
    task = asyncio.ensure_future(
        broker.fetch(
            str(kwargs.get("queue", QUEUE)),
            worker_id=str(kwargs.get("worker_id", WORKER)),
            limit=100,
            lease_ms=LEASE_MS,
        )
    )
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if done:
        raise AssertionError(f"fetch returned {task.result()} but nothing should be ready")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def enqueue_one(broker: Producer, **overrides: object) -> TaskMessage:
    queue = str(overrides.pop("queue", QUEUE))
    message = make_message(queue, **overrides)
    [outcome] = await broker.enqueue([message])
    assert outcome.accepted and outcome.task_id == message.id
    return message


async def fetch_one(broker: Consumer, **kwargs: object) -> Delivery:
    batch = await fetch(broker, **kwargs)  # type: ignore[arg-type]
    assert len(batch.deliveries) == 1, batch
    return batch.deliveries[0]


def success(message: TaskMessage, result: bytes = b"ok", delivery: int | None = None) -> Settlement:
    return Settlement(message.id, message.queue, result=result, delivery=delivery)


def failure(
    message: TaskMessage, retry_delay_ms: int | None = None, error: TaskError | None = None
) -> Settlement:
    return Settlement(
        message.id,
        message.queue,
        error=error or TaskError("ValueError", "boom", "Traceback: ..."),
        retry_delay_ms=retry_delay_ms,
    )


def lease(message: TaskMessage, delivery: int = 1) -> Lease:
    return Lease(message.id, delivery)


async def started_at(broker: Results, message: TaskMessage) -> int:
    """When the task's current lease began, on the broker's clock."""
    record = await broker.get_task(message.id, message.queue)
    assert record is not None and record.started_at_ms is not None, record
    return record.started_at_ms


async def claim_beside_sentinel(broker: CoreBroker) -> tuple[int, list[str]]:
    """Enqueue a ready sentinel task of the highest priority and claim everything ready
    with it; settle all of it. Returns when that claim ran, on the broker's clock, and
    the ids leased besides the sentinel: what was ready at that instant."""
    sentinel = await enqueue_one(broker, priority=defaults.PRIORITY_MIN, result_ttl_s=0)
    batch = await fetch(broker)
    ids = [d.message.id for d in batch.deliveries]
    assert ids[:1] == [sentinel.id], ids
    claimed_at = await started_at(broker, sentinel)
    settled = await broker.settle(WORKER, [success(d.message) for d in batch.deliveries])
    assert all(settled), settled
    return claimed_at, ids[1:]


async def broker_now(broker: CoreBroker) -> int:
    """The broker's clock, in epoch ms (it need not be this process's clock)."""
    claimed_at, others = await claim_beside_sentinel(broker)
    assert others == [], f"{others} were ready too"
    return claimed_at


class RoleContract:
    """The base of each role's contract class. ``role`` is the role it tests;
    ``requires`` the other roles its tests use to set cases up (``contracts_for`` refuses
    a broker that declares ``role`` without them). Subclasses provide the ``broker``
    fixture: connected to a fresh, empty store (unique namespace), with the default
    protocol bounds (``MAX_DELIVERIES``)."""

    role: ClassVar[Role]
    requires: ClassVar[frozenset[Role]] = frozenset()

    @pytest.fixture
    def measure(self, record_property: Record) -> Record:
        """Print a measurement (visible with ``-s``) and record it in the JUnit report."""

        def record(name: str, value: object) -> None:
            print(f"\n[measure] {name} = {value}")
            record_property(name, value)

        return record

    async def wait_until_blocked(self, broker: Any, fetches: asyncio.Future[Any]) -> None:
        """Return once the fetch ``fetches`` (started, not awaited) waits for work.

        The default lets the event loop run a few turns: enough for a broker whose fetch
        blocks without I/O (``memory://``). Override it when the fetch talks to a server
        first (e.g. wait until the server lists the blocked connection). A wake-up test
        whose fetch had not blocked yet still passes: it then shows less."""
        for _ in range(20):
            if fetches.done():
                return
            await asyncio.sleep(0)  # a turn of the event loop, not a timed wait


async def finished_while_fetching(broker: CoreBroker, message: TaskMessage) -> TaskRecord:
    """Keep a fetch blocked until the task ends (its claims handle the task's expired
    lease; nothing else is ready); the fetch must lease nothing. The task's end."""
    fetching = asyncio.ensure_future(
        broker.fetch(QUEUE, worker_id="worker-2", limit=100, lease_ms=LEASE_MS)
    )
    try:
        record = await broker.wait_finished(message.id, QUEUE, WAKE_WAIT_S)
        assert record is not None, "the expired lease was not ended within WAKE_WAIT_S"
        assert not fetching.done(), f"the fetch leased {fetching.result()}"
        return record
    finally:
        fetching.cancel()
        await asyncio.gather(fetching, return_exceptions=True)


async def until_announced(
    stream: AsyncIterator[str],
    provoke: Callable[[int], Awaitable[object]],
    expected: str,
    what: str,
) -> float:
    """Call ``provoke(attempt)`` every 0.25 s until ``stream`` yields (a subscription may
    start after the first announcement), check that it yields ``expected``, close the
    stream; return the latency of the announcement that arrived, in ms."""
    next_item = asyncio.ensure_future(anext(stream))
    try:
        for attempt in range(60):
            started = time.perf_counter()
            await provoke(attempt)
            done, _ = await asyncio.wait({next_item}, timeout=0.25)
            if done:
                assert next_item.result() == expected
                return round((time.perf_counter() - started) * 1000, 2)
        raise AssertionError(f"{what} was never announced")
    finally:
        next_item.cancel()
        await asyncio.gather(next_item, return_exceptions=True)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def announce(broker: Control, stream: AsyncIterator[str], task_id: str) -> float:
    """Request the cancellation until the stream announces it; return the latency of the
    announcement that arrived, in ms."""

    async def cancel(_attempt: int) -> None:
        assert await broker.cancel(task_id) is CancelOutcome.REQUESTED

    return await until_announced(stream, cancel, task_id, "cancellation of a running task")
