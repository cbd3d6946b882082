"""Enqueueing: one batch-native ``enqueue`` script call per queue, all in one round trip."""

from __future__ import annotations

from collections.abc import Sequence

from rediq_core.broker import EnqueueOutcome, TaskState
from rediq_core.message import TaskMessage

from .keys import new_nonce
from .records import text
from .scripts import ScriptCall, run_batch
from .session import Session

__all__ = ["enqueue", "enqueue_args", "enqueue_calls"]

#: Tasks per enqueue script call: a batch that large is one atomic step that keeps the
#: server busy for about a millisecond.
_BATCH = 500


def enqueue_args(message: TaskMessage, nonce: bytes) -> list[bytes | str | int]:
    """The arguments of one task in ``enqueue_tasks`` (``scripts/_prelude.lua``)."""
    return [
        message.id,
        message.envelope(),
        message.payload,
        message.priority,
        _ms(message.eta_ms),
        _ms(message.delay_ms),
        message.result_ttl_s,
        nonce,
    ]


def enqueue_calls(session: Session, messages: Sequence[TaskMessage]) -> list[ScriptCall]:
    """The ``enqueue`` calls that store ``messages``: one per queue and batch, in the
    order of the messages. Each call carries a nonce per task: sending the same calls
    again (a retry after a broken connection) never stores a task twice."""
    by_queue: dict[str, list[TaskMessage]] = {}
    for m in messages:
        by_queue.setdefault(m.queue, []).append(m)
    calls = []
    nonce = new_nonce()
    for queue, batch in by_queue.items():
        keys = session.keys.queue(queue)
        for i in range(0, len(batch), _BATCH):
            chunk = batch[i : i + _BATCH]
            calls.append(
                session.scripts.enqueue.call(
                    [*keys.all, *(keys.result(m.id) for m in chunk)],
                    [part for m in chunk for part in enqueue_args(m, nonce)],
                    chunk,
                )
            )
    return calls


async def enqueue(
    session: Session, messages: Sequence[TaskMessage], calls: Sequence[ScriptCall]
) -> list[EnqueueOutcome]:
    """Store every message (each batch atomically) in one round trip.

    The queue set (namespace metadata, another slot) is updated by an idempotent SADD
    before the scripts, once per queue and refresh period of this broker; a crash between
    the two leaves a queue name without tasks, never a task without its queue name.
    """
    if not messages:
        return []
    async with session.sending:  # a burst waits for connections, never runs the pool out
        new_queues = session.queue_names.stale({m.queue for m in messages})
        if new_queues:
            await session.client.sadd(session.keys.queues, *new_queues)
            session.queue_names.mark(new_queues)
        replies = await run_batch(session.client, calls, session.enqueue_wait, session.line)
    outcomes: dict[int, EnqueueOutcome] = {}
    for call, reply in zip(calls, replies, strict=True):
        for m, answer in zip(call.items, reply, strict=True):
            outcomes[id(m)] = EnqueueOutcome(
                text(answer[3]) or m.id if len(answer) > 3 else m.id,  # a unique key's holder
                bool(int(answer[0])),
                TaskState(text(answer[1]) or ""),
                int(answer[2]) if len(answer) > 2 else m.result_ttl_s,
            )
    return [outcomes[id(m)] for m in messages]


def _ms(value: int | None) -> int | str:
    return "" if value is None else value
