"""Enqueueing: one ``enqueue`` script call per message, all in one round trip."""

from __future__ import annotations

from collections.abc import Sequence

from rediq_core.broker import EnqueueOutcome, TaskState
from rediq_core.message import TaskMessage

from .records import text
from .scripts import ScriptCall, run_batch
from .session import Session

__all__ = ["enqueue", "enqueue_calls"]


def enqueue_calls(session: Session, messages: Sequence[TaskMessage]) -> list[ScriptCall]:
    """One ``enqueue`` call per message, each with its own reply key: sending the same
    calls again (a retry after a broken connection) never stores a task twice."""
    return [
        session.scripts.enqueue.call(
            session.keys.queue(m.queue).for_call(m.id),
            [m.id, m.envelope(), m.payload, m.priority, _ms(m.eta_ms), _ms(m.delay_ms)],
        )
        for m in messages
    ]


async def enqueue(
    session: Session, messages: Sequence[TaskMessage], calls: Sequence[ScriptCall]
) -> list[EnqueueOutcome]:
    """Store every message (each atomically) in one round trip.

    The queue set (namespace metadata, another slot) is updated by an idempotent SADD
    before the scripts, once per queue and refresh period of this broker; a crash between
    the two leaves a queue name without tasks, never a task without its queue name.
    """
    if not messages:
        return []
    new_queues = session.queue_names.stale({m.queue for m in messages})
    if new_queues:
        await session.client.sadd(session.keys.queues, *new_queues)
        session.queue_names.mark(new_queues)
    replies = await run_batch(session.client, calls, session.enqueue_wait)
    return [
        EnqueueOutcome(
            m.id,
            bool(int(reply[0])),
            TaskState(text(reply[1]) or ""),
            int(reply[2]) if len(reply) > 2 else m.result_ttl_s,
        )
        for m, reply in zip(messages, replies, strict=True)
    ]


def _ms(value: int | None) -> int | str:
    return "" if value is None else value
