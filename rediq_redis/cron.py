"""Cron schedules in Redis: specs, last fired ticks and pauses in the queue's own slot.

Every key a cron script touches is a key of the schedule's queue (``{NS:queue}``), so
firing a tick -- compare-and-set of the last fired tick plus the enqueue of its run -- is
one atomic script. The set of queues with schedules and the change channel are
namespace metadata (``{NS}``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping

from rediq_core.cron_records import (
    CronEntry,
    CronFire,
    CronRegistration,
    FireResult,
    ScheduleSpec,
)
from rediq_core.message import TaskMessage

from .channels import channel_messages
from .keys import new_nonce
from .producer import enqueue_args
from .records import text
from .scripts import CronScripts
from .session import Session

__all__ = ["changes", "entries", "fire", "forget", "register", "set_paused"]

log = logging.getLogger("rediq.cron")


async def register(
    session: Session, scripts: CronScripts, queue: str, specs: Mapping[str, str], replace: bool
) -> CronRegistration:
    keys = session.keys
    await session.client.sadd(keys.cron_queues, queue)
    await session.client.sadd(keys.queues, queue)
    args = [
        "store" if replace else "refresh",
        *(part for name, spec in sorted(specs.items()) for part in (name, spec)),
    ]
    changed, conflicting = await scripts.register(session.client, keys.queue(queue).all, args)
    registration = CronRegistration(
        [text(n) or "" for n in changed], [text(n) or "" for n in conflicting]
    )
    for name in registration.changed:
        await session.client.publish(keys.cron_channel, name)
    return registration


async def fire(
    session: Session, scripts: CronScripts, message: TaskMessage, schedule: str, tick_ms: int | None
) -> CronFire:
    """Atomically: CAS the last fired tick, enqueue ``message`` (as enqueue.lua does:
    the queue's keys and the task's result key, then its ``enqueue_tasks`` arguments)."""
    m = message
    enqueue = enqueue_args(m, new_nonce())  # the producer's very arguments
    args = [schedule, "" if tick_ms is None else tick_ms, *enqueue]
    keys = session.keys.queue(m.queue).for_task(m.id)
    outcome, previous = await scripts.fire(session.client, keys, args)
    previous_text = text(previous)
    return CronFire(FireResult(text(outcome) or ""), int(previous_text) if previous_text else None)


async def entries(session: Session, queue: str | None) -> list[CronEntry]:
    keys = session.keys
    if queue is None:
        queues = sorted(text(q) or "" for q in await session.client.smembers(keys.cron_queues))
    else:
        queues = [queue]
    found: list[CronEntry] = []
    for name in queues:
        q = keys.queue(name)
        async with session.client.pipeline(transaction=False) as pipe:
            for part in ("cron", "cron_tick", "cron_task", "cron_seen"):
                pipe.hgetall(q.key(part))
            pipe.smembers(q.key("cron_paused"))
            specs, ticks, tasks, seen, paused = await pipe.execute()
        paused_names = {text(p) for p in paused}
        for raw_name, raw_spec in specs.items():
            tick, task = ticks.get(raw_name), tasks.get(raw_name)
            try:
                spec = ScheduleSpec.from_json(raw_spec)
            except ValueError as exc:
                log.warning("cron: skipping schedule %r of queue %s: %s", text(raw_name), name, exc)
                continue
            found.append(
                CronEntry(
                    spec=spec,
                    last_tick_ms=int(tick) if tick else None,
                    last_task_id=text(task),
                    paused=text(raw_name) in paused_names,
                    seen_ms=int(seen.get(raw_name) or 0),
                )
            )
    return found


async def set_paused(
    session: Session, scripts: CronScripts, queue: str, schedule: str, paused: bool
) -> bool:
    args = [schedule, "1" if paused else "0"]
    return bool(await scripts.pause(session.client, session.keys.queue(queue).all, args))


async def forget(session: Session, scripts: CronScripts, queue: str, schedule: str) -> bool:
    keys = session.keys.queue(queue).all
    return bool(await scripts.forget(session.client, keys, [schedule]))


def changes(session: Session) -> AsyncGenerator[str, None]:
    """The names of schedules whose stored spec changed."""
    return channel_messages(session, session.keys.cron_channel)
