"""Enqueueing: one ``enqueue`` script call per message, all in one pipeline."""

from __future__ import annotations

from collections.abc import Sequence

from rediq_core.broker import EnqueueOutcome, TaskState
from rediq_core.message import TaskMessage

from .records import text
from .session import Session

__all__ = ["enqueue"]


async def enqueue(session: Session, messages: Sequence[TaskMessage]) -> list[EnqueueOutcome]:
    """Store every message (each atomically) in one round trip.

    The queue set (namespace metadata, another slot) is updated by an idempotent SADD in
    the same pipeline, before the scripts; a crash between the two leaves a queue name
    without tasks, never a task without its queue name.
    """
    if not messages:
        return []
    async with session.client.pipeline(transaction=False) as pipe:
        for queue in sorted({m.queue for m in messages}):
            pipe.sadd(session.keys.queues, queue)
        for message in messages:
            await session.scripts.enqueue(
                pipe,
                session.keys.queue(message.queue).for_task(message.id),
                [
                    message.id,
                    message.envelope(),
                    message.payload,
                    message.priority,
                    "" if message.eta_ms is None else message.eta_ms,
                ],
            )
        replies = await pipe.execute()
    outcomes = replies[len(replies) - len(messages) :]
    return [
        EnqueueOutcome(m.id, bool(int(reply[0])), TaskState(text(reply[1]) or ""))
        for m, reply in zip(messages, outcomes, strict=True)
    ]
