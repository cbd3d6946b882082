"""Task lookup (the results role) and the control role's single-task operations: cancel,
delete, requeue dead letters, queue stats (result waits: ``results``; listings and bulk
operations: ``operate``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio.client import Pipeline

from rediq_core.broker import CancelOutcome, QueueStats, TaskRecord, TaskState

from .keys import QueueKeys, new_nonce
from .layout import parse_record
from .records import live_record, result_record, text
from .scripts import run_batch
from .session import Session
from .workflows import answered

__all__ = [
    "cancel",
    "delete",
    "find_queue",
    "get_task",
    "lookup",
    "lookup_many",
    "outcomes",
    "queue_stats",
    "queues",
    "requeue_dead",
]


async def queues(session: Session) -> list[str]:
    members = await session.client.smembers(session.keys.queues)
    return sorted(text(m) or "" for m in members)


_WAITING = frozenset(s.value for s in TaskState if s.unfinished)
#: Replies of one task's lookup in a pipeline (see :func:`_queue_lookup`).
_LOOKUP_REPLIES = 6


def _queue_lookup(pipe: Pipeline, keys: QueueKeys, task_id: str) -> None:
    pipe.hget(keys.key("tasks"), task_id)
    pipe.hget(keys.key("errors"), task_id)
    pipe.zscore(keys.key("dead"), task_id)
    pipe.hgetall(keys.result(task_id))
    pipe.zscore(keys.key("scheduled"), task_id)
    pipe.lrange(keys.attempts(task_id), 0, -1)


def _record(
    keys: QueueKeys,
    task_id: str,
    replies: Sequence[Any],
    deadlines: Mapping[tuple[str, str], float | None],
) -> TaskRecord | None:
    raw, error, dead_at, result, due, attempts = replies
    found = parse_record(raw)
    deadline = due
    if found is not None and found.fields["state"] == "active":
        deadline = deadlines.get((keys.tag, found.fields["holder"]))
    record = live_record(task_id, keys.queue, found, error, dead_at, deadline, attempts)
    if record is not None:
        return record
    return result_record(task_id, keys.queue, result) if result else None


async def _holder_deadlines(
    session: Session, holders: Sequence[tuple[QueueKeys, str]]
) -> dict[tuple[str, str], float | None]:
    """The deadline of each (queue, holder number): the lease deadline of the active
    tasks it holds (one pipelined round trip; None: the holder is gone)."""
    wanted = list(dict.fromkeys((keys.tag, holder, keys) for keys, holder in holders))
    if not wanted:
        return {}
    async with session.client.pipeline(transaction=False) as pipe:
        for _, holder, keys in wanted:
            pipe.zscore(keys.key("holders"), holder)
        scores = await pipe.execute()
    return {(tag, holder): score for (tag, holder, _), score in zip(wanted, scores, strict=True)}


async def lookup(session: Session, keys: QueueKeys, task_id: str) -> TaskRecord | None:
    [record] = await lookup_many(session, [(keys, task_id)])
    return record


async def lookup_many(
    session: Session, tasks: Sequence[tuple[QueueKeys, str]]
) -> list[TaskRecord | None]:
    """The records of several tasks (None: no record), in one pipelined round trip, and
    one more for the lease deadlines of those that are active."""
    async with session.client.pipeline(transaction=False) as pipe:
        for keys, task_id in tasks:
            _queue_lookup(pipe, keys, task_id)
        replies = await pipe.execute()
    rows = [replies[i * _LOOKUP_REPLIES : (i + 1) * _LOOKUP_REPLIES] for i in range(len(tasks))]
    holders = []
    for (keys, _), row in zip(tasks, rows, strict=True):
        found = parse_record(row[0])
        if found is not None and found.fields["state"] == "active":
            holders.append((keys, found.fields["holder"]))
    deadlines = await _holder_deadlines(session, holders)
    return [
        _record(keys, task_id, row, deadlines)
        for (keys, task_id), row in zip(tasks, rows, strict=True)
    ]


async def outcomes(
    session: Session, tasks: Sequence[tuple[QueueKeys, str]]
) -> list[TaskRecord | TaskState | None]:
    """What result waiters need of each task, cheaply, in one pipelined round trip (two
    commands a task): its record if it ended, its state if it has not, None if the
    broker holds no record of it. Dead letters are looked up in full."""
    async with session.client.pipeline(transaction=False) as pipe:
        for keys, task_id in tasks:
            pipe.hget(keys.key("tasks"), task_id)
            pipe.hgetall(keys.result(task_id))
        replies = await pipe.execute()
    found: list[TaskRecord | TaskState | None] = []
    dead: list[int] = []
    for i, (keys, task_id) in enumerate(tasks):
        stored, result = parse_record(replies[2 * i]), replies[2 * i + 1]
        state = stored.fields["state"] if stored is not None else None
        if state in _WAITING:
            found.append(TaskState(state))
        elif state == "failed":  # a dead letter: its error and time come from the queue
            found.append(None)
            dead.append(i)
        else:  # no record (or an unreadable one): the result hash tells
            found.append(result_record(task_id, keys.queue, result) if result else None)
    if dead:
        records = await lookup_many(session, [tasks[i] for i in dead])
        for i, record in zip(dead, records, strict=True):
            found[i] = record
    return found


async def get_task(session: Session, task_id: str, queue: str | None) -> TaskRecord | None:
    names = [queue] if queue is not None else await queues(session)
    for name in names:
        record = await lookup(session, session.keys.queue(name), task_id)
        if record is not None:
            return record
    return None


#: Tasks looked up in one pipelined round trip by :func:`get_tasks`.
_LOOKUP_BATCH = 500


async def get_tasks(session: Session, tasks: Sequence[tuple[str, str]]) -> list[TaskRecord | None]:
    found: list[TaskRecord | None] = []
    for start in range(0, len(tasks), _LOOKUP_BATCH):
        chunk = tasks[start : start + _LOOKUP_BATCH]
        found += await lookup_many(session, [(session.keys.queue(q), i) for i, q in chunk])
    return found


async def find_queue(session: Session, task_id: str, queue: str | None) -> str | None:
    if queue is not None:
        return queue
    record = await get_task(session, task_id, None)
    return record.queue if record else None


async def cancel(session: Session, task_id: str, queue: str | None) -> CancelOutcome:
    name = await find_queue(session, task_id, queue)
    if name is None:
        return CancelOutcome.NOT_FOUND
    reply = await session.scripts.cancel(
        session.client,
        session.keys.queue(name).for_task(task_id),
        [task_id, session.keys.cancel_channel, new_nonce()],
    )
    return CancelOutcome(text(await answered(session, name, reply)) or "")


async def delete(session: Session, task_id: str, queue: str | None) -> bool:
    name = await find_queue(session, task_id, queue)
    if name is None:
        return False
    reply = await session.scripts.delete(
        session.client, session.keys.queue(name).for_task(task_id), [task_id, new_nonce()]
    )
    return int(await answered(session, name, reply)) == 1


async def requeue_dead(session: Session, queue: str, task_ids: Sequence[str] | None) -> int:
    keys = session.keys.queue(queue)
    if task_ids is None:
        task_ids = [text(i) or "" for i in await session.client.zrange(keys.key("dead"), 0, -1)]
    if not task_ids:
        return 0
    calls = [session.scripts.requeue_dead.call(keys.for_task(i), [i]) for i in task_ids]
    replies = await run_batch(session.client, calls)
    return sum(int(r) for r in replies)


async def queue_stats(session: Session, queue: str) -> QueueStats:
    keys = session.keys.queue(queue)
    async with session.client.pipeline(transaction=False) as pipe:
        for name in ("pending", "scheduled", "active", "dead", "waiting", "parked"):
            pipe.zcard(keys.key(name))
        pipe.hgetall(keys.key("stats"))
        pending, scheduled, active, dead, waiting, limited, counters = await pipe.execute()

    def counter(name: str) -> int:
        return int(counters.get(name.encode(), 0))

    return QueueStats(
        name=queue,
        pending=pending,
        scheduled=scheduled,
        active=active,
        dead=dead,
        enqueued=counter("enqueued"),
        succeeded=counter("succeeded"),
        failed=counter("failed"),
        retried=counter("retried"),
        waiting=waiting,
        expired=counter("expired"),
        limited=limited,
    )
