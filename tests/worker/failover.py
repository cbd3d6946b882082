"""A worker draining tasks while the master it uses is SIGKILLed and a replica promoted.

:func:`drain_through_failover` runs one ``rediq worker`` subprocess on six queues, feeds it
5,000 tasks from this process (keeping a backlog, so enqueues are still going on when the
master dies), SIGKILLs a master once 1,500 tasks ran, waits for the promotion, restarts the
killed server (it comes back as a replica, as it would in production) and waits until
every task ran or nothing is left in any queue. Every execution is appended to a log file
by the task itself, so lost tasks and duplicates are counted outside Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rediq_redis.durability import NotDurableError

from .conftest import Harness

TOTAL = 5_000
BATCH = 100
KILL_AFTER = 1_500
BACKLOG = 600
DRAIN_TIMEOUT_S = 120.0

APP = """\
import json, os, time
from rediq import Rediq

app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
            namespace=os.environ["REDIQ_TEST_NAMESPACE"],
            redis_config=json.loads({config!r}))
LOG = {log!r}

@app.task
async def work(i, queue):
    with open(LOG, "a") as f:
        f.write(f"t{{i}} {{time.time():.4f}} {{queue}}\\n")
"""


@dataclass
class Report:
    acknowledged: int
    #: enqueues stored on the master that no replica confirmed in time (NotDurableError)
    unconfirmed: int
    executed: int
    lost: int
    duplicates: int
    stall_s: float
    promotion_s: float
    enqueue_errors: int

    def line(self) -> str:
        return (
            f"acknowledged={self.acknowledged} unconfirmed={self.unconfirmed} executed={self.executed} lost={self.lost}"
            f" duplicates={self.duplicates} stall={self.stall_s:.2f}s"
            f" promotion={self.promotion_s:.2f}s enqueue_errors={self.enqueue_errors}"
        )


def _executions(log: Path) -> list[tuple[str, float, str]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append((parts[0], float(parts[1]), parts[2]))
    return rows


async def _wait(condition: Callable[[], Any], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout_s} s")
        await asyncio.sleep(0.05)  # bounded wait on a subprocess's progress


async def drain_through_failover(
    harness: Harness,
    *,
    queues: list[str],
    config: dict[str, Any],
    kill: Callable[[], Any],
    promoted: Callable[[Any], None],
    recover: Callable[[Any], None],
    killed_queues: set[str],
    consume: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Report:
    """See the module docstring. ``kill()`` SIGKILLs a master and returns what
    ``promoted(it)`` (blocks until a replica took over) and ``recover(it)`` need. The
    worker consumes ``consume`` (default: ``queues``), with ``env`` added to its own."""
    log = harness.dir / "executions.log"
    m = harness.write_app(APP.format(config=json.dumps(config), log=str(log)), header="")
    options = [opt for q in consume or queues for opt in ("--queue-name", q)]
    worker = harness.start(
        *options,
        "--skip-default-queue",
        "--worker-task-concurrency",
        "20",
        "--worker-queue-size",
        "50",
        env={"REDIQ_LEASE_MS": "3000", **(env or {})},
    )
    acknowledged: set[str] = set()
    unconfirmed: set[str] = set()
    errors = 0

    async def produce() -> None:
        nonlocal errors
        for start in range(0, TOTAL, BATCH):
            calls = [
                m.work(i, queues[i % len(queues)]).options(
                    queue=queues[i % len(queues)], task_id=f"t{i}"
                )
                for i in range(start, start + BATCH)
            ]
            await _wait(
                lambda: _backlog_below(log, len(acknowledged) + len(unconfirmed)),
                "the worker keeps up with the producer",
                60,
            )
            ids = {f"t{i}" for i in range(start, start + BATCH)}
            while True:
                try:
                    await m.app.enqueue_many(calls)
                except NotDurableError:
                    # stored on the master, not confirmed by a replica: sending it again
                    # would re-create the tasks that already ran
                    unconfirmed.update(ids)
                    errors += 1
                    break
                except Exception:  # not acknowledged: send the same ids again
                    errors += 1
                    await asyncio.sleep(0.1)  # producer backoff during the failover
                    continue
                acknowledged.update(ids)
                break

    async def _backlog_below(log: Path, sent: int) -> bool:
        return sent - len(_executions(log)) < BACKLOG

    async def ran(count: int) -> bool:
        return len(_executions(log)) >= count

    producer = asyncio.ensure_future(produce())
    try:
        await _wait(lambda: ran(KILL_AFTER), f"{KILL_AFTER} tasks ran before the kill", 60)
        killed_at = time.time()
        victim = kill()
        await asyncio.to_thread(promoted, victim)
        promotion_s = time.time() - killed_at
        await asyncio.to_thread(recover, victim)
        await asyncio.wait_for(producer, 120)
    finally:
        producer.cancel()

    async def drained() -> bool:
        executed = {i for i, _, _ in _executions(log)}
        if acknowledged | unconfirmed <= executed:
            return True
        stats = [await m.app.get_broker().queue_stats(q) for q in queues]
        return all(s.pending == s.scheduled == s.active == 0 for s in stats)

    await _wait(drained, "every acknowledged task ran (or nothing is left queued)", DRAIN_TIMEOUT_S)
    assert worker.proc.poll() is None, f"the worker died:\n{worker.output[-4000:]}"
    (harness.dir / "worker.log").write_text(worker.output)
    rows = _executions(log)
    runs = Counter(i for i, _, _ in rows)
    after = sorted(t for _, t, q in rows if q in killed_queues and t >= killed_at)
    gaps = [b - a for a, b in zip([killed_at, *after], after, strict=False)]
    return Report(
        acknowledged=len(acknowledged),
        unconfirmed=len(unconfirmed),
        executed=len(runs),
        lost=len(acknowledged - set(runs)),
        duplicates=sum(n - 1 for n in runs.values()),
        stall_s=max(gaps, default=time.time() - killed_at),
        promotion_s=promotion_s,
        enqueue_errors=errors,
    )
