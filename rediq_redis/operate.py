"""Operating queues: listings, group cancel/delete, purge by state, dead-letter deletion,
queue overviews and pause/resume (the broker side of ``app.control``).

Group delete finds waiting and dead tasks in the group index and ended ones by their
result hashes (a SCAN: :mod:`rediq_redis.ended`).

Every change is a Lua script call (``pause``, ``resume``, ``purge_state``, ``delete_dead``,
``forget_queue``, and the one-task ``cancel`` / ``delete`` scripts run in pipelined
batches); listings and overviews only read.
"""

from __future__ import annotations

from collections.abc import Sequence

from rediq_core.broker import CancelOutcome, TaskRecord, TaskState
from rediq_core.inspection import COUNTER_NAMES, QueueOverview, TaskPage

from .ended import ended_group_ids
from .history import ring_minutes
from .keys import QUEUE_KEY_NAMES, QueueKeys, new_nonce
from .layout import (
    GROUP_SEPARATOR,
    MINUTE_SLOTS,
    member_id,
    parked_id,
    parse_record,
)
from .records import live_record, text
from .scripts import run_batch
from .session import Session
from .workflows import answered

__all__ = [
    "cancel_group",
    "delete_dead",
    "delete_group",
    "forget_queue",
    "group_ids",
    "list_tasks",
    "pause",
    "purge_tasks",
    "queue_known",
    "queue_overview",
    "resume",
]

#: The sorted set each listable state lives in, and whether it is listed newest first.
_SETS = {
    TaskState.PENDING: ("pending", False),
    TaskState.WAITING: ("waiting", False),
    TaskState.LIMITED: ("parked", False),
    TaskState.SCHEDULED: ("scheduled", False),
    TaskState.ACTIVE: ("active", False),
    TaskState.FAILED: ("dead", True),
}
_PURGEABLE = {
    TaskState.PENDING: "pending",
    TaskState.WAITING: "waiting",
    TaskState.LIMITED: "limited",
    TaskState.SCHEDULED: "scheduled",
    TaskState.FAILED: "failed",
}
_GROUP_PAGE = 500
#: Priority bands the oldest-pending estimate compares.
_OLDEST_BANDS = 32


def _member_task(state: TaskState, member: str) -> str:
    """The task id of a member of the sorted set ``state`` lives in."""
    if state is TaskState.PENDING:
        return member_id(member)
    if state is TaskState.LIMITED:
        return parked_id(member)
    return member


def _check_state(state: TaskState, allowed: dict[TaskState, object]) -> None:
    if state not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise ValueError(f"state {state.value!r} cannot be used here; use one of: {names}")


async def _records(
    session: Session, keys: QueueKeys, ids: Sequence[str], set_name: str
) -> list[TaskRecord]:
    """Live records of ``ids`` in one round trip, and one more for the lease deadlines of
    active ones (tasks that ended meanwhile are left out)."""
    if not ids:
        return []
    async with session.client.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.key("tasks"), ids)
        pipe.hmget(keys.key("errors"), ids)
        pipe.zmscore(keys.key(set_name), list(ids))
        raws, errors, scores = await pipe.execute()
    parsed = [parse_record(raw) for raw in raws]
    holders = list(
        dict.fromkeys(
            r.fields["holder"] for r in parsed if r is not None and r.fields["state"] == "active"
        )
    )
    deadlines: dict[str, float | None] = {}
    if holders:
        found = await session.client.zmscore(keys.key("holders"), holders)
        deadlines = dict(zip(holders, found, strict=True))
    records: list[TaskRecord] = []
    for task_id, record, error, score in zip(ids, parsed, errors, scores, strict=True):
        deadline = score
        if record is not None and record.fields["state"] == "active":
            deadline = deadlines.get(record.fields["holder"])
        live = live_record(task_id, keys.queue, record, error, score, deadline)
        if live is not None:
            records.append(live)
    return records


async def list_tasks(
    session: Session, queue: str, state: TaskState, limit: int, cursor: str | None
) -> TaskPage:
    _check_state(state, dict(_SETS))
    set_name, newest_first = _SETS[state]
    keys = session.keys.queue(queue)
    try:
        offset = max(int(cursor or 0), 0)
    except ValueError:
        raise ValueError(f"bad cursor {cursor!r}: pass a next_cursor a listing returned") from None
    limit = max(limit, 1)
    read = session.client.zrevrange if newest_first else session.client.zrange
    members = [text(m) or "" for m in await read(keys.key(set_name), offset, offset + limit)]
    more = len(members) > limit
    members = members[:limit]
    ids = [_member_task(state, m) for m in members]
    records = await _records(session, keys, ids, set_name)
    return TaskPage(records, str(offset + limit) if more else None)


async def group_ids(session: Session, queue: str, group: str) -> list[str]:
    """Every task id of ``queue`` tagged ``group`` (from the group index)."""
    key = session.keys.queue(queue).key("groups")
    separator = GROUP_SEPARATOR.encode()
    prefix = group.encode() + separator
    start, ids = b"[" + prefix, []
    while True:
        reply = await session.client.zrangebylex(
            key, start, b"[" + prefix + b"\xff", start=0, num=_GROUP_PAGE
        )
        page = [m if isinstance(m, bytes) else str(m).encode() for m in reply]
        # a group named "<group>\n..." shares the prefix: its members have a "\n" left
        ids += [m[len(prefix) :].decode() for m in page if separator not in m[len(prefix) :]]
        if len(page) < _GROUP_PAGE:
            return ids
        start = b"(" + page[-1]


async def _queues_of(session: Session, queue: str | None) -> list[str]:
    from .control import queues

    return [queue] if queue is not None else await queues(session)


async def _waiting_first(session: Session, keys: QueueKeys, ids: list[str]) -> list[str]:
    """``ids`` with running tasks last: cancelling one frees a worker slot, which must
    not go to a task of the same group that is about to be cancelled."""
    if not ids:
        return ids
    async with session.client.pipeline(transaction=False) as pipe:
        for start in range(0, len(ids), _GROUP_PAGE):
            pipe.hmget(keys.key("tasks"), ids[start : start + _GROUP_PAGE])
        raws = [raw for page in await pipe.execute() for raw in page]
    running = [_state(raw) == "active" for raw in raws]
    return [i for _, i in sorted(zip(running, ids, strict=True), key=lambda pair: pair[0])]


def _state(raw: bytes | None) -> str | None:
    record = parse_record(raw)
    return record.fields["state"] if record is not None else None


async def cancel_group(session: Session, group: str, queue: str | None) -> dict[str, CancelOutcome]:
    outcomes: dict[str, CancelOutcome] = {}
    for name in await _queues_of(session, queue):
        keys = session.keys.queue(name)
        ids = await _waiting_first(session, keys, await group_ids(session, name, group))
        for start in range(0, len(ids), _GROUP_PAGE):
            chunk = ids[start : start + _GROUP_PAGE]
            calls = [
                session.scripts.cancel.call(
                    keys.for_task(i), [i, session.keys.cancel_channel, new_nonce()]
                )
                for i in chunk
            ]
            replies = await run_batch(session.client, calls)
            for task_id, reply in zip(chunk, replies, strict=True):
                outcomes[task_id] = CancelOutcome(text(await answered(session, name, reply)) or "")
    return outcomes


async def delete_group(session: Session, group: str, queue: str | None) -> int:
    """Delete the group's tasks that are not running: those of the group index, and the
    ended ones whose result is kept."""
    names = await _queues_of(session, queue)
    ended = await ended_group_ids(session, names, group) if names else {}
    total = 0
    for name in names:
        keys = session.keys.queue(name)
        ids = list(dict.fromkeys([*await group_ids(session, name, group), *ended.get(name, [])]))
        for start in range(0, len(ids), _GROUP_PAGE):
            calls = [
                session.scripts.delete.call(keys.for_task(i), [i, new_nonce()])
                for i in ids[start : start + _GROUP_PAGE]
            ]
            for reply in await run_batch(session.client, calls):
                total += int(await answered(session, name, reply))
    return total


async def purge_tasks(session: Session, queue: str, states: Sequence[TaskState]) -> int:
    for state in states:
        _check_state(state, dict(_PURGEABLE))
    keys = session.keys.queue(queue).all
    total = 0
    for state in dict.fromkeys(states):
        if state is TaskState.FAILED:  # dead letters have results to delete too
            total += await _delete_all_dead(session, queue)
            continue
        while True:
            reply = await session.scripts.purge_state(
                session.client, keys, [_PURGEABLE[state], session.settings.purge_batch]
            )
            removed = int(await answered(session, queue, reply))
            total += removed
            if removed == 0:
                break
    return total


async def _delete_all_dead(session: Session, queue: str) -> int:
    key, total = session.keys.queue(queue).key("dead"), 0
    while True:
        ids = [text(i) or "" for i in await session.client.zrange(key, 0, _GROUP_PAGE - 1)]
        if not ids:
            return total
        total += await delete_dead(session, queue, ids)


async def delete_dead(session: Session, queue: str, task_ids: Sequence[str] | None) -> int:
    if task_ids is None:
        return await _delete_all_dead(session, queue)
    keys = session.keys.queue(queue)
    total = 0
    for start in range(0, len(task_ids), _GROUP_PAGE):
        chunk = list(task_ids[start : start + _GROUP_PAGE])
        per_task = [keys.result(i) for i in chunk]
        total += int(
            await session.scripts.delete_dead(session.client, [*keys.all, *per_task], chunk)
        )
    return total


async def queue_overview(session: Session, queue: str, minutes: int) -> QueueOverview:
    keys = session.keys.queue(queue)
    minutes = min(max(minutes, 1), MINUTE_SLOTS)
    async with session.client.pipeline(transaction=False) as pipe:
        for name in ("pending", "scheduled", "active", "dead", "waiting", "parked"):
            pipe.zcard(keys.key(name))
        pipe.exists(keys.key("paused"))
        pipe.hgetall(keys.key("stats"))
        pipe.hgetall(keys.key("minutes"))
        (
            pending,
            scheduled,
            active,
            dead,
            waiting,
            limited,
            paused,
            stats,
            ring,
        ) = await pipe.execute()
    now, oldest = await session.scripts.oldest_pending(session.client, keys.all, [_OLDEST_BANDS])
    oldest_age = max(0.0, (int(now) - int(oldest)) / 1000) if int(oldest) >= 0 else None
    return QueueOverview(
        name=queue,
        paused=bool(paused),
        pending=pending,
        scheduled=scheduled,
        active=active,
        dead=dead,
        oldest_pending_age_s=oldest_age,
        totals={name: int(stats.get(name.encode(), 0)) for name in COUNTER_NAMES},
        minutes=ring_minutes(ring, int(now), minutes),
        waiting=waiting,
        limited=limited,
    )


async def pause(session: Session, queue: str) -> bool:
    await session.client.sadd(session.keys.queues, queue)
    return int(await session.scripts.pause(session.client, session.keys.queue(queue).all, [])) == 1


async def resume(session: Session, queue: str) -> bool:
    keys = session.keys.queue(queue).all
    return int(await session.scripts.resume(session.client, keys, [])) == 1


#: Keys that do not make a queue known: the tombstones of ended tasks (replay memory,
#: which expires by itself within two replay windows and outlives ``forget_queue``).
_TRANSIENT = frozenset({"ended_a", "ended_b"})


async def _holds_anything(session: Session, keys: QueueKeys) -> bool:
    names = [keys.key(n) for n in QUEUE_KEY_NAMES if n not in _TRANSIENT]
    return int(await session.client.exists(*names)) > 0


async def queue_known(session: Session, queue: str) -> bool:
    if await session.client.sismember(session.keys.queues, queue):
        return True
    return await _holds_anything(session, session.keys.queue(queue))


async def forget_queue(session: Session, queue: str) -> bool:
    """Forget an empty queue: the script drops its own keys, then its name leaves the
    queue set. A task enqueued in between (by a producer that added the name before)
    puts the name back at once."""
    keys = session.keys.queue(queue)
    if not int(await session.scripts.forget_queue(session.client, keys.all, [])):
        return False
    await session.client.srem(session.keys.queues, queue)
    session.queue_names.discard(queue)
    if int(await session.client.exists(*[keys.key(n) for n in ("tasks", "paused")])) > 0:
        await session.client.sadd(session.keys.queues, queue)
    return True
